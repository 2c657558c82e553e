"""Admin request bodies (tenant configs reuse ``gateway.tenancy.TenantConfig``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from gateway.tenancy import TenantConfig


class CreateTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # 1-64 chars of [a-z0-9_.-]
    config: TenantConfig
    issue_key: bool = True  # return a first API key with the tenant


CLEARABLE = ("max_llm_share", "max_concurrent", "rpm", "tpm")  # optional: None = off


class UpdateTenant(BaseModel):
    """Fields to change; the rest keep their values (budget, prices are replaced whole)."""

    model_config = ConfigDict(extra="forbid")

    budget: dict[str, Any] | None = None
    prices: dict[str, Any] | None = None
    policy: str | None = None
    max_llm_share: float | None = None
    max_concurrent: int | None = None
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (prompt + max_tokens) per minute
    clear: list[str] = []  # optional fields to reset to None (unlimited): CLEARABLE
