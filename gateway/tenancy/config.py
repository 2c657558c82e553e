"""Typed tenant configuration: budget, prices, policy, share ceiling, concurrency.

Everything validates when built; a bad value raises ``ValueError`` (pydantic's
``ValidationError``) that names the field and its allowed range, e.g.
``max_llm_share: must be within [0, 1], got 1.5``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_settings import BaseSettings, SettingsConfigDict

Period = Literal["1h", "1d", "30d", "none"]
# Windows are fixed and aligned to the Unix epoch; 0 means the budget never resets.
PERIOD_SECONDS: dict[str, int] = {"1h": 3_600, "1d": 86_400, "30d": 2_592_000, "none": 0}
Policy = Literal["degrade", "reject"]

# Budgets are kept in integer micro-units (1e-6 cost units); 1e9 units = 1e15 micro-units
# stays exact in the doubles Redis Lua computes with (2**53 ~ 9e15).
MAX_LIMIT = 1e9
MAX_PRICE = 1e6  # cost units per 1k tokens


def _within(lo: float, hi: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not lo <= value <= hi:
            raise ValueError(f"must be within [{lo:g}, {hi:g}], got {value!r}")
        return value

    return check


Price = Annotated[float, AfterValidator(_within(0.0, MAX_PRICE))]


class Prices(BaseModel):
    """What each kind of token costs, in cost units per 1k tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slm_prompt: Price = 0.0  # prompt tokens the SLM reads
    slm_completion: Price = 0.0  # answer tokens the SLM wrote
    llm_prompt: Price = 0.0  # prompt + catch-up tokens the LLM reads
    llm_completion: Price = 0.0  # answer tokens the LLM wrote


class Budget(BaseModel):
    """A spend limit per fixed window; ``none`` is a lifetime cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: Annotated[float, AfterValidator(_within(0.0, MAX_LIMIT))]  # cost units per period
    period: Period = "30d"


class TenantConfig(BaseModel):
    """Everything an admin can set on a tenant; replaced as a whole on update."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    budget: Budget
    prices: Prices = Prices()
    # What happens when the remaining budget cannot pay for the LLM worst case.
    policy: Policy = "degrade"
    # Ceiling on llm-written / all completion tokens, applied to every request.
    max_llm_share: Annotated[float, AfterValidator(_within(0.0, 1.0))] | None = None
    # Requests running at once (live reservations); None = unlimited.
    max_concurrent: Annotated[int, AfterValidator(_within(1, 100_000))] | None = None
    # Requests and tokens (prompt + max_tokens) admitted per minute; None = unlimited.
    rpm: Annotated[int, AfterValidator(_within(1, 1_000_000_000))] | None = None
    tpm: Annotated[int, AfterValidator(_within(1, 1_000_000_000_000))] | None = None

    def with_changes(self, **changes: Any) -> TenantConfig:
        """A validated copy with some fields replaced (``model_copy`` would not validate)."""
        return TenantConfig.model_validate({**self.model_dump(), **changes})


class TenancySettings(BaseSettings):
    """Store settings read from the environment (``CITER_TENANCY_STORE_URL`` ...)."""

    model_config = SettingsConfigDict(env_prefix="CITER_TENANCY_", extra="forbid")

    store_url: str | None = None  # redis://host:6379/0; unset = embedded in-process store
    # A crashed gateway's reservations return to the budget after this long; keep it
    # above the longest request the HTTP layer allows.
    reservation_ttl_s: Annotated[float, AfterValidator(_within(1.0, 86_400.0))] = 600.0
    namespace: str = "citer"  # Redis key prefix, lets several deployments share a Redis
