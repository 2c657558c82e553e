"""Bearer keys: tenant keys for /v1/* (the admin key may also list /v1/models), the
admin key for /admin/*, the metrics (or admin) key for the per-tenant series of /metrics.

Tenant keys are looked up by hash in the store on every request, so a revoked
key fails at once (no cache). The admin key comes from ``CITER_ADMIN_KEY``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from gateway.errors import APIError
from gateway.state import State
from gateway.tenancy import Tenant


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(message: str) -> APIError:
    return APIError(
        401,
        message,
        "invalid_request_error",
        None,
        "invalid_api_key",
        {"WWW-Authenticate": "Bearer"},
    )


async def require_tenant(request: Request, st: State) -> Tenant:
    key = bearer(request)
    if key is None:
        raise _unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
        )
    tenant = await st.store.authenticate(key)
    if tenant is None:
        raise _unauthorized("Incorrect API key provided (unknown or revoked).")
    return tenant


async def require_admin(request: Request, st: State) -> None:
    expected = st.settings.admin_key
    if expected is None:
        raise APIError(
            403,
            "The admin API is disabled: set CITER_ADMIN_KEY to enable it.",
            "permission_error",
            code="admin_disabled",
        )
    key = bearer(request)
    if key is None or not _matches(key, expected):
        raise _unauthorized("Incorrect admin key provided.")


async def require_reader(request: Request, st: State) -> None:
    """A tenant key or the admin key (the model list: operators and clients read it)."""
    key = bearer(request)
    if key is not None and _matches(key, st.settings.admin_key):
        return
    await require_tenant(request, st)


def _matches(key: str, expected: SecretStr | None) -> bool:
    return expected is not None and hmac.compare_digest(
        key.encode(), expected.get_secret_value().encode()
    )


def may_read_tenant_metrics(request: Request, st: State) -> bool:
    """True with the metrics or admin key, False without a key; 401 for a wrong key
    (a misconfigured scraper should fail loudly, not silently lose series)."""
    key = bearer(request)
    if key is None:
        return False
    if _matches(key, st.settings.metrics_key) or _matches(key, st.settings.admin_key):
        return True
    raise _unauthorized("Incorrect metrics key provided (CITER_METRICS_KEY or the admin key).")


CurrentTenant = Annotated[Tenant, Depends(require_tenant)]  # handler parameter: the caller
Reader = Depends(require_reader)  # route dependency: a tenant or the admin
