"""The FastAPI application: ``create_app(settings)``; all state is built in the lifespan.

    lifespan start: models (build_pair; the LLM remote with CITER_LLM_URL)
                    -> router (policy / card) -> Scheduler -> AsyncEngine (step thread)
                    -> tenant store -> bootstrap tenant
                    -> metrics + tracer -> app.state.citer = GatewayState
    lifespan end:   end queued runs -> stop the step thread (running streams end
                    "abort") -> wait for every run to settle its budget -> close the store
                    (the remote LLM's pool closes after the step thread stops)

Model loading runs in a worker thread, so even start-up never blocks the loop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway.errors import install_handlers
from gateway.request_id import RequestIdMiddleware
from gateway.settings import GatewaySettings
from gateway.tracing import instrument, make_tracer

log = logging.getLogger("citer.gateway")
SHUTDOWN_GRACE_S = 10.0  # how long shutdown waits for pumps to settle their budgets


def create_app(settings: GatewaySettings | None = None, span_exporter: Any = None) -> FastAPI:
    """``span_exporter``: an OTel SpanExporter (tests pass the in-memory one)."""
    from gateway import openapi
    from gateway.admin.router import router as admin_router
    from gateway.chat.router import router as chat_router
    from gateway.completions.router import router as completions_router
    from gateway.info.router import router as info_router
    from gateway.tokenize import router as tokenize_router

    cfg = settings or GatewaySettings()
    tracing = make_tracer(cfg.otel_service_name, cfg.otel_endpoint, span_exporter,
                          cfg.otel_protocol)  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await build_state(cfg, tracing)
        app.state.citer = state
        try:
            yield
        finally:
            await shutdown(state)

    app = FastAPI(title="citer gateway", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    install_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    origins = [o.strip() for o in cfg.cors_origins.split(",") if o.strip()]
    if origins:  # off by default: only the origins an operator names may call from a browser
        app.add_middleware(
            CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"], expose_headers=["x-request-id", "x-citer-degraded"],
        )  # fmt: skip
    for r in (chat_router, completions_router, info_router, admin_router, tokenize_router):
        app.include_router(r)
    openapi.install(app)
    instrument(app, tracing[0])
    return app


async def build_state(cfg: GatewaySettings, tracing: tuple[Any, Any]) -> Any:
    """``tracing``: (tracer provider, tracer) of ``gateway.tracing.make_tracer``."""
    from engines.async_engine import AsyncEngine
    from engines.pair import PairConfig, build_pair
    from engines.scheduler import Scheduler, SchedulerConfig
    from gateway.metrics import Metrics
    from gateway.routing import build_router_setup
    from gateway.state import GatewayState
    from gateway.tenancy import open_store

    remote = cfg.remote_llm()
    pair_cfg = PairConfig(
        slm=cfg.slm, llm=cfg.llm, device=cfg.device, dtype=cfg.dtype, remote=remote,
        engine=cfg.engine, vllm_gpu_memory=(cfg.vllm_slm_memory, cfg.vllm_llm_memory),
        vllm_kv_cache_gib=cfg.vllm_kv_cache_gib, slm_quant=cfg.slm_quant,
        llm_quant=cfg.llm_quant, slm_compile=cfg.slm_compile, llm_compile=cfg.llm_compile,
    )  # fmt: skip
    pair = await asyncio.to_thread(build_pair, pair_cfg)
    probe = await asyncio.to_thread(speculative_probe, cfg, pair)  # before the KV reserve
    if cfg.kv_reserve_tokens:
        try:
            await asyncio.to_thread(pair.reserve_kv, cfg.max_batch, cfg.kv_reserve_tokens)
        except (RuntimeError, MemoryError) as e:  # torch's allocation failure
            raise ValueError(
                f"CITER_KV_RESERVE_TOKENS={cfg.kv_reserve_tokens} x CITER_MAX_BATCH="
                f"{cfg.max_batch}: the KV cache does not fit ({e}); lower either"
            ) from e
        log.info("KV cache: room for %d sequences x %d tokens reserved", cfg.max_batch,
                 cfg.kv_reserve_tokens)  # fmt: skip
    if remote is not None:
        log.info(
            "LLM: remote, %s (deadline %.3g s, then the SLM's token)",
            pair.llm.info.name,
            remote.deadline_s,
        )
    setup = await asyncio.to_thread(build_router_setup, cfg, pair)
    log.info(
        "routing: policy %s, default threshold %.4g (%s)",
        setup.policy,
        setup.default_threshold,
        setup.note,
    )
    sched_cfg = SchedulerConfig(
        window=cfg.window,
        max_batch=cfg.max_batch,
        max_tokens_cap=cfg.max_tokens_cap,
        defer_steps=cfg.defer_steps,
        defer_fill=cfg.defer_fill,
        adaptive_max_batch=cfg.adaptive_max_batch,
        verify=cfg.verify,
        speculative_max_batch=cfg.speculative_max_batch if probe is None else probe.max_batch,
        speculative_costs=() if probe is None else probe.rows,
    )
    scheduler = Scheduler(pair.slm, pair.llm, setup.router, pair.tokenizer, sched_cfg)
    engine = AsyncEngine(scheduler)
    tenancy = cfg.tenancy()
    store = await open_store(
        tenancy.store_url, reservation_ttl_s=tenancy.reservation_ttl_s, namespace=tenancy.namespace
    )
    log.info("tenant store: %s", "redis" if tenancy.store_url else "embedded (in-process)")
    provider, tracer = tracing
    longest = scheduler.max_context - 1  # the answer needs at least one position
    state = GatewayState(
        settings=cfg,
        scheduler=scheduler,
        engine=engine,
        tokenizer=pair.tokenizer,
        setup=setup,
        store=store,
        metrics=Metrics(),
        tracer=tracer,
        tracer_provider=provider,
        max_prompt_tokens=min(cfg.max_prompt_tokens or longest, longest),
        max_token_chars=await asyncio.to_thread(max_token_chars, pair.tokenizer),
        hold_ttl_s=tenancy.reservation_ttl_s,
        spec_probe=probe,
    )
    state.metrics.watch(scheduler, state)
    gc.collect()
    gc.freeze()  # start-up objects (models, tokenizers, grammar tables) leave the GC's scans
    engine.start()
    if cfg.bootstrap_tenant:
        await bootstrap_tenant(state)
    return state


def speculative_probe(cfg: GatewaySettings, pair: Any) -> Any:
    """CITER_SPECULATIVE_MAX_BATCH=auto: time drafting against the LLM alone on this
    machine (engines.spec_probe); None when the setting is a number."""
    from engines.spec_probe import ACCEPTANCE, SpecProbe, probe

    if cfg.speculative_max_batch != "auto":
        return None
    if not cfg.verify:
        return SpecProbe(0, cfg.window, ACCEPTANCE, (), "not timed: verify is off")
    result = probe(pair.slm, pair.llm, cfg.window, cfg.max_batch)
    pair.release_kv()  # the probe's caches are freed; their memory goes back too
    log.info("speculative drafting: up to %d running sequences (%s)", result.max_batch,
             result.reason)  # fmt: skip
    return result


def max_token_chars(tokenizer: Any) -> int:
    """Characters the longest vocabulary entry can spell: byte-level and SentencePiece
    vocabularies write each character (or byte) of a token as one character."""
    return max(1, *(len(t) for t in tokenizer.get_vocab()))


async def bootstrap_tenant(st: Any) -> None:
    """Create the bootstrap tenant if missing and write a fresh key for it to a file.

    A key can be shown only when issued, so a key file that exists for an existing
    tenant is kept (its key may still be valid); otherwise a new key is written.
    """
    from gateway.tenancy import Budget, TenantConfig

    cfg, store = st.settings, st.store
    tid, path = cfg.bootstrap_tenant, cfg.bootstrap_key_file
    if await store.get_tenant(tid) is None:
        config = TenantConfig(
            budget=Budget(limit=cfg.bootstrap_budget, period="1d"), prices=cfg.bootstrap_prices
        )
        await store.create_tenant(tid, config)
    elif path.is_file():
        log.info("bootstrap tenant %s exists; API key file %s kept", tid, path)
        return
    key = await store.issue_key(tid)
    if not path.parent.exists():  # a folder of our own: keep its secrets out of git
        path.parent.mkdir(parents=True)
        (path.parent / ".gitignore").write_text("*\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.plaintext + "\n")
    log.info("bootstrap tenant %s: API key (id %s) written to %s", tid, key.key_id, path)


async def shutdown(st: Any) -> None:
    st.closing = True  # new requests: 503
    await asyncio.to_thread(st.engine.stop)  # queued and running end "abort" and settle
    for engine in (st.scheduler.slm, st.scheduler.llm):  # e.g. a remote LLM's pool
        await asyncio.to_thread(engine.close)
    tasks = [run.task for run in list(st.runs) if run.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    await st.store.close()
    st.tracer_provider.shutdown()
