"""Routing controls: served model names and the ``routing`` body field -> RoutingParams.

Model names select the policy of one request:

    citer        the gateway's router at its default threshold
    citer:0.2    target LLM token share 0.2, looked up in the router card's calibration
    slm / llm    one model alone (slm: the LLM never writes; llm: it writes every token)
    speculative  the LLM's own tokens, as ``llm``, by speculative decoding: the SLM drafts
                 the window and one LLM pass verifies every draft

The body field ``routing`` refines ``citer`` (``threshold`` or ``target_llm_share``,
``max_llm_tokens``) and asks for per-token sources (``return_sources``). The
tenant's budget decision comes last: an SLM-only reservation forces
``max_llm_tokens = 0``, and a tenant ceiling on the LLM share s becomes the
scheduler's exact per-position check ``RoutingParams.max_llm_share``: the LLM
writes a position only if (llm tokens + 1) / (completion tokens + 1) <= s, so
every prefix of the answer, finished or cut short, has an LLM share <= s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from engines.types import RoutingParams
from gateway.errors import bad_request, model_not_found
from gateway.fields import Strict

log = logging.getLogger("citer.gateway")
MODES = ("citer", "slm", "llm", "speculative")


class RoutingBody(Strict):
    """The ``routing`` request field (unknown keys are refused: they are likely typos)."""

    threshold: float | None = None  # LLM iff router score > threshold
    target_llm_share: float | None = Field(None, ge=0.0, le=1.0)  # via the card's calibration
    max_llm_tokens: int | None = Field(None, ge=0)  # LLM tokens per choice, at most
    return_sources: bool = False  # which model wrote each token, and its router score


@dataclass(frozen=True)
class RouterSetup:
    """The router the scheduler runs, as described to clients."""

    policy: str  # registry name: citer, confidence, ...
    router: Any  # router_models.base.Router
    default_threshold: float
    card: Any | None  # router_models.card.RouterCard for card routers
    note: str  # one line for the start-up log and /v1/models

    def describe(self) -> dict[str, Any]:
        calib = []
        if self.card is not None:
            calib = [
                {"threshold": c.threshold, "llm_share": c.llm_share} for c in self.card.calibration
            ]
        return {
            "policy": self.policy,
            "default_threshold": self.default_threshold,
            "calibrated": bool(calib),
            "calibration": calib,
            "note": self.note,
        }


def build_router_setup(settings: Any, pair: Any) -> RouterSetup:
    """Router of the resolved policy (``GatewaySettings.resolved_policy``)."""
    from router_models.registry import make_router

    policy = settings.resolved_policy()
    card_path = settings.router_card if policy == "citer" else None
    router, thr = make_router(pair, policy, settings.threshold, None, card_path)
    card = router.card
    if policy == "citer":
        note = f"CITER router from {card_path}"
    elif settings.policy is None:
        note = (
            f"no CITER router card at {settings.router_card} (router.json missing): serving "
            f"the training-free '{policy}' policy; citer:<share> needs a calibrated card"
        )
    else:
        note = f"policy '{policy}' set by CITER_POLICY"
    return RouterSetup(policy, router, thr, card, note)


@dataclass(frozen=True)
class RoutePlan:
    mode: str  # citer, slm, llm or speculative: the metrics label
    threshold: float  # LLM iff score > threshold (-inf: the LLM writes every token)
    max_llm_tokens: int | None
    return_sources: bool
    target_llm_share: float | None


def plan_route(model: str, body: RoutingBody | None, setup: RouterSetup) -> RoutePlan:
    """Resolve a model name and routing field (before budgets); 404/400 on bad input."""
    body = body or RoutingBody()
    mode, _, suffix = model.partition(":")
    if mode not in MODES or (suffix and mode != "citer"):
        raise model_not_found(model)
    share = body.target_llm_share
    if suffix:
        try:
            share_in_name = float(suffix)
        except ValueError:
            raise model_not_found(model) from None
        if not 0.0 <= share_in_name <= 1.0:
            raise bad_request(
                f"model '{model}': the target LLM token share must be within [0, 1]", "model"
            )
        if share is not None or body.threshold is not None:
            raise bad_request(
                "give the target LLM share either in the model name or in routing, not both",
                "routing",
            )
        share = share_in_name
    if mode != "citer" and (share is not None or body.threshold is not None):
        raise bad_request(
            f"routing.threshold/target_llm_share apply to the citer model, not '{mode}'",
            "routing",
        )
    if body.threshold is not None and share is not None:
        raise bad_request("pass routing.threshold or target_llm_share, not both", "routing")
    # The gateway's default (CITER_THRESHOLD, else the router's own), resolved once at
    # start-up in RouterSetup; a request's threshold or target share overrides it.
    threshold = setup.default_threshold if body.threshold is None else body.threshold
    if share is not None:
        threshold = _threshold_for(setup, share)
    if mode in ("llm", "speculative"):
        threshold = -math.inf  # every position's score exceeds it
    max_llm = 0 if mode == "slm" else body.max_llm_tokens
    return RoutePlan(mode, threshold, max_llm, body.return_sources, share)


def _threshold_for(setup: RouterSetup, share: float) -> float:
    from router_models.share import threshold_for_share

    if setup.card is None or not setup.card.calibration:
        raise bad_request(
            f"a target LLM share needs a calibrated CITER router card, but this gateway "
            f"serves the '{setup.policy}' policy ({setup.note}); use routing.threshold",
            "model",
        )
    try:
        return float(threshold_for_share(setup.card, share))
    except ValueError as e:
        raise bad_request(str(e), "routing.target_llm_share") from e


def routing_params(
    plan: RoutePlan, llm_allowed: bool, max_llm_share: float | None
) -> RoutingParams:
    """Apply the budget decision and the tenant's LLM-share ceiling to a plan."""
    cap = 0 if not llm_allowed else plan.max_llm_tokens
    share = max_llm_share if llm_allowed else None
    return RoutingParams(plan.threshold, cap, share, speculative=plan.mode == "speculative")
