"""Model cards, readiness checks and version info."""

from __future__ import annotations

import asyncio
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from typing import Any

from gateway.state import GatewayState


def model_cards(st: GatewayState) -> list[dict[str, Any]]:
    """``citer`` (the router), ``slm``, ``llm`` and ``speculative`` (the LLM's tokens,
    drafted by the SLM); ``citer:<share>`` is accepted too."""
    created = int(st.started_at)
    s = st.settings
    llm = llm_name(st)
    routing = st.setup.describe()
    routing["target_share_models"] = "citer:<share in [0, 1]>" if routing["calibrated"] else None
    # owned_by "citer" tells a remote engine on another gateway that position p is drawn
    # from the stream (seed, p); max_model_len (vLLM's field) is prompt + completion.
    common = {"object": "model", "created": created, "owned_by": "citer",
              "max_model_len": st.scheduler.max_context}  # fmt: skip
    spec = {"model": llm, "draft_model": s.slm, "routing": {"policy": "speculative"},
            "drafting": drafting(st)}  # fmt: skip
    return [
        {"id": "citer", **common, "citer": {"slm": s.slm, "llm": llm, "routing": routing}},
        {"id": "slm", **common, "citer": {"model": s.slm, "routing": {"policy": "slm"}}},
        {"id": "llm", **common, "citer": {"model": llm, "routing": {"policy": "llm"}}},
        {"id": "speculative", **common, "citer": spec},
    ]  # fmt: skip


def drafting(st: GatewayState) -> dict[str, Any]:
    """Up to how many running sequences the SLM drafts now, and what set that: the
    setting, or the start-up timing (CITER_SPECULATIVE_MAX_BATCH=auto) with its rows and
    the share of drafts the LLM keeps (engines.draft_gate)."""
    gate = st.scheduler.draft_gate
    out = {"max_batch": gate.limit(), "acceptance": gate.describe()}
    if st.spec_probe is None:
        return {**out, "set_by": "CITER_SPECULATIVE_MAX_BATCH"}
    return {**out, "set_by": "probe", "probe": st.spec_probe.describe()}


def llm_name(st: GatewayState) -> str:
    """The LLM folder, or "<model> at <url>" when the LLM is remote."""
    return st.scheduler.llm.info.name if st.settings.llm_url else st.settings.llm


async def readiness(st: GatewayState) -> tuple[bool, dict[str, str]]:
    """Models loaded and stepping, and the tenant store answering (within 2 s)."""
    checks = {"engine": "ok" if st.engine.alive else "stopped"}
    try:
        await asyncio.wait_for(st.store.get_tenant("-ready-probe-"), timeout=2.0)
        checks["store"] = "ok"
    except Exception as e:
        checks["store"] = f"unreachable: {type(e).__name__}"
    return all(v == "ok" for v in checks.values()), checks


def version(st: GatewayState) -> dict[str, Any]:
    try:
        v = pkg_version("citer")
    except PackageNotFoundError:
        v = "unknown"
    return {"version": v, "policy": st.setup.policy, "slm": st.settings.slm, "llm": llm_name(st)}
