"""Gateway settings, read from ``CITER_*`` environment variables (or a dotenv file).

Each field maps 1:1 onto an environment variable (``CITER_`` + the upper-case
name) and so onto a Helm value; the README's settings table lists them all.
The tenant store's own settings stay in ``gateway.tenancy.TenancySettings``
(``CITER_TENANCY_*``); ``REDIS_URL`` is accepted as a shorthand for its URL.
Everything validates when built and a bad value names its variable.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engines.remote import RemoteConfig
from engines.scheduler import SchedulerConfig
from gateway.tenancy import Prices, TenancySettings
from router_models.card import DEFAULT_CARD
from router_models.registry import router_names

SCHED = SchedulerConfig()  # the scheduler's defaults are the gateway's
MIN_ADMIN_KEY_CHARS = 32  # for admin and metrics keys on a non-loopback bind
# Keys printed in this repository's docs and Makefile: fine on 127.0.0.1 only.
KNOWN_KEYS = frozenset({"sk-citer-admin-dev", "sk-admin-test", "changeme", "admin"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _weak(key: str) -> str | None:
    """Why a key must not guard a public bind, or None."""
    if key in KNOWN_KEYS:
        return "a well-known development key"
    if len(key) < MIN_ADMIN_KEY_CHARS:
        return f"shorter than {MIN_ADMIN_KEY_CHARS} characters"
    return None


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITER_", extra="ignore")

    # -- network --
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)  # 0 = any free port (tests)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # json: one JSON object per log line, with one record per finished request
    log_format: Literal["text", "json"] = "text"
    # Browser origins allowed to call the API (CORS), comma-separated, "*" for any;
    # empty: no CORS headers (browsers on other origins are refused), the default.
    cors_origins: str = ""

    # -- models and routing --
    slm: str = "models/demo/slm"  # HF model folder of the small model
    llm: str = "models/demo/llm"  # HF model folder of the large model (same tokenizer)
    device: str = "cpu"  # cpu, cuda or cuda:N
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # hf engine on the cpu, bfloat16: weight-only int8 linears for either model
    # (engines.quant); changes its tokens slightly (BENCHMARKS "int8 weights")
    slm_quant: Literal["none", "int8"] = "none"
    llm_quant: Literal["none", "int8"] = "none"
    # hf engine: torch.compile that model's decoder stack at load (engines.compiled); needs
    # a C++ compiler on the CPU; start-up takes 20-65 s longer per demo model on 2 cores
    slm_compile: bool = False
    llm_compile: bool = False
    # None: "citer" when router_card holds a router.json, else "confidence" (logged, and
    # shown in /v1/models) until a CITER router is trained for the pair.
    policy: str | None = None  # a name of router_models.registry.ROUTERS
    router_card: str = DEFAULT_CARD
    threshold: float | None = None  # default routing threshold; None = the router's own
    window: int = Field(SCHED.window, ge=1, le=64)  # SLM run-ahead drafts per step
    max_batch: int = Field(SCHED.max_batch, ge=1, le=4096)  # sequences decoded together
    # KV-cache positions per sequence each hf engine allocates for max_batch sequences at
    # start (memory: max_batch x this x the model's bytes per position); 0: grow on
    # demand. Either way the memory is kept while idle, so only the first burst allocates.
    kv_reserve_tokens: int = Field(0, ge=0, le=1_048_576)
    # Deferred LLM batching: a sequence routed to the LLM waits (parked) until
    # defer_fill of the running sequences are parked or it has waited defer_steps steps.
    defer_steps: int = Field(SCHED.defer_steps, ge=0, le=64)  # 0: off (the LLM runs at once)
    defer_fill: float = Field(SCHED.defer_fill, gt=0, le=1)
    # Adaptive run-ahead per sequence while at most this many sequences decode: 1 draft
    # after an LLM cut, doubling to `window`; 0: off.
    adaptive_max_batch: int = Field(SCHED.adaptive_max_batch, ge=0, le=4096)
    # One LLM pass verifies every routed position of the drafted window (hf engine).
    verify: bool = SCHED.verify
    # The `speculative` model drafts while at most this many sequences decode; above it
    # the LLM decodes those requests alone (the same tokens). 0: never drafts. auto:
    # timed at start-up on this machine (engines.spec_probe), up to max_batch.
    speculative_max_batch: Annotated[int, Field(ge=0, le=4096)] | Literal["auto"] = "auto"
    # Backend of both models: hf (transformers) or vllm (two vLLM engines in this process;
    # needs vLLM installed: the cuda image, or `make vllm-venv` for the CPU build).
    engine: Literal["hf", "vllm"] = "hf"
    vllm_slm_memory: float = Field(0.2, gt=0, lt=1)  # vllm on cuda: device-memory share, SLM
    vllm_llm_memory: float = Field(0.6, gt=0, lt=1)  # the LLM's; both sum to <= 0.95
    vllm_kv_cache_gib: float = Field(0.5, gt=0)  # vllm on cpu: KV-cache space per engine, GiB

    # -- remote LLM (edge + cloud): with llm_url the LLM runs there, not from `llm` --
    # OpenAI-compatible base URL of a server that takes token-id prompts and returns
    # token ids (vLLM, or another citer gateway); "/v1" is appended if missing.
    llm_url: str | None = None
    llm_model: str = "llm"  # the server's model name; a citer gateway's LLM alone is "llm"
    llm_api_key: SecretStr | None = None  # Bearer key of that server; None: none sent
    # Fail open: past this (seconds, retries included) a step's LLM positions get the
    # SLM's tokens instead.
    llm_deadline_s: float = Field(2.0, gt=0, le=600)
    llm_retries: int = Field(2, ge=0, le=10)  # after a connection error, 429 or 5xx
    llm_backoff_s: float = Field(0.05, ge=0, le=60)  # before retry i: backoff * 2**(i-1) s
    llm_pool_size: int = Field(32, ge=1, le=4096)  # persistent connections = calls in flight
    # After a step whose LLM calls all failed, none are made for this long (doubling per
    # failed retry, up to 16x); then the next step tries the server again.
    llm_cooldown_s: float = Field(1.0, ge=0, le=600)

    # -- limits --
    max_queue: int = Field(64, ge=0)  # requests waiting beyond max_batch; more -> 503
    retry_after_s: int = Field(1, ge=1)  # Retry-After on 503 (queue full)
    max_body_bytes: int = Field(1_048_576, ge=1024)  # larger request bodies -> 413
    max_prompt_tokens: int | None = Field(None, ge=1)  # None: the models' context - 1
    max_tokens_cap: int = Field(SCHED.max_tokens_cap, ge=1)  # largest max_tokens asked
    default_max_tokens: int = Field(256, ge=1)  # when a request gives none

    # A request still queued for a batch seat this long after it arrived ends with 503
    # + Retry-After and its budget hold is released; must stay below the hold's TTL
    # (CITER_TENANCY_RESERVATION_TTL_S). Running requests renew their hold instead.
    queue_timeout_s: float = Field(60.0, gt=0, le=3600)

    # -- tenants --
    # Bearer key of /admin/*; unset: admin API off (403). On a non-loopback host a key
    # shorter than MIN_ADMIN_KEY_CHARS or a well-known one refuses to start.
    admin_key: SecretStr | None = None
    # Bearer key that may read the per-tenant series of /metrics (the admin key may too);
    # without a key /metrics shows only series summed over tenants.
    metrics_key: SecretStr | None = None
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL"))
    # Created at start-up if missing, with one key written to bootstrap_key_file
    # (mode 0600), so `make serve` works without an admin call. None: no tenant.
    bootstrap_tenant: str | None = None
    bootstrap_key_file: Path = Path(".citer/api-key")
    bootstrap_budget: float = Field(1000.0, ge=0)  # cost units per day
    bootstrap_prices: Prices = Prices(
        slm_prompt=0.01, slm_completion=0.02, llm_prompt=0.1, llm_completion=0.2
    )  # cost units per 1k tokens
    # Prices of a tenant the admin API creates without any (JSON, cost units per 1k tokens)
    default_prices: Prices = Prices(
        slm_prompt=0.01, slm_completion=0.02, llm_prompt=0.1, llm_completion=0.2
    )

    # -- observability --
    # Standard OTel variables: set the endpoint and every request's trace is exported by
    # OTLP over HTTP (protobuf, the default) or gRPC.
    otel_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    otel_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf",
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
        ),
    )
    otel_service_name: str = Field(
        "citer-gateway", validation_alias=AliasChoices("OTEL_SERVICE_NAME", "CITER_SERVICE_NAME")
    )

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError(
                f"CITER_DEFAULT_MAX_TOKENS={self.default_max_tokens} exceeds "
                f"CITER_MAX_TOKENS_CAP={self.max_tokens_cap}"
            )
        if self.policy is not None and self.policy not in router_names():
            raise ValueError(
                f"CITER_POLICY={self.policy!r}: must be one of {', '.join(router_names())}"
            )
        if self.threshold is not None and self.threshold != self.threshold:
            raise ValueError("CITER_THRESHOLD=nan: must be a number")
        if self.llm_url == "":  # an empty variable means unset
            self.llm_url = None
        if self.llm_url is not None and not self.llm_url.startswith(("http://", "https://")):
            raise ValueError(f"CITER_LLM_URL={self.llm_url!r}: must be an http(s):// URL")
        if self.llm_url is not None and self.engine != "hf":
            raise ValueError("CITER_LLM_URL: a remote LLM pairs with CITER_ENGINE=hf (the SLM's)")
        for name, quant in (
            ("CITER_SLM_QUANT", self.slm_quant),
            ("CITER_LLM_QUANT", self.llm_quant),
        ):
            if quant != "none" and (self.engine, self.device, self.dtype) != (
                "hf",
                "cpu",
                "bfloat16",
            ):
                raise ValueError(
                    f"{name}={quant} runs on CITER_ENGINE=hf, CITER_DEVICE=cpu, "
                    f"CITER_DTYPE=bfloat16 (got {self.engine}, {self.device}, {self.dtype})"
                )
        for name, on in (("CITER_SLM_COMPILE", self.slm_compile),
                         ("CITER_LLM_COMPILE", self.llm_compile)):  # fmt: skip
            if on and self.engine != "hf":
                raise ValueError(f"{name}: compiles the hf engine's models (CITER_ENGINE=hf)")
        if self.llm_url is not None and self.llm_compile:
            raise ValueError("CITER_LLM_COMPILE: a remote LLM's server runs its own engine")
        if self.llm_url is not None and self.llm_quant != "none":
            raise ValueError("CITER_LLM_QUANT: a remote LLM's server decides its own weights")
        ttl = self.tenancy().reservation_ttl_s
        if self.queue_timeout_s >= ttl:
            raise ValueError(
                f"CITER_QUEUE_TIMEOUT_S={self.queue_timeout_s:g} must be below "
                f"CITER_TENANCY_RESERVATION_TTL_S={ttl:g}: a queued request's budget hold "
                "would expire before it starts"
            )
        for name, key in (
            ("CITER_ADMIN_KEY", self.admin_key),
            ("CITER_METRICS_KEY", self.metrics_key),
        ):
            weak = key is not None and _weak(key.get_secret_value())
            if weak and not is_loopback(self.host):
                raise ValueError(
                    f"{name} is {weak} and CITER_HOST={self.host} is not a loopback address: "
                    f"set a random key of at least {MIN_ADMIN_KEY_CHARS} characters, e.g. "
                    '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
                )
        return self

    def resolved_policy(self) -> str:
        """The routing policy to serve: explicit, or citer iff the card exists, else the
        confidence score (from top-8 log-probs on vllm, which returns no logits)."""
        if self.policy is not None:
            return self.policy
        if (Path(self.router_card) / "router.json").is_file():
            return "citer"
        return "logprob" if self.engine == "vllm" else "confidence"

    def remote_llm(self) -> RemoteConfig | None:
        """The remote LLM engine's config when ``llm_url`` is set."""
        if self.llm_url is None:
            return None
        key = self.llm_api_key.get_secret_value() if self.llm_api_key else None
        return RemoteConfig(
            url=self.llm_url, model=self.llm_model, api_key=key,
            deadline_s=self.llm_deadline_s, retries=self.llm_retries,
            backoff_s=self.llm_backoff_s, pool_size=self.llm_pool_size,
            cooldown_s=self.llm_cooldown_s,
        )  # fmt: skip

    def tenancy(self) -> TenancySettings:
        t = TenancySettings()
        if t.store_url is None and self.redis_url:
            t = t.model_copy(update={"store_url": self.redis_url})
        return t
