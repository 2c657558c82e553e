"""``citer serve``: the OpenAI-compatible gateway under uvicorn.

Settings come from ``CITER_*`` environment variables (see gateway.settings and
the README); ``--config FILE`` reads them from a dotenv file first, and the
few flags here override both.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the OpenAI-compatible gateway")
    p.add_argument("--config", help="dotenv file of CITER_* settings (environment wins)")
    p.add_argument("--host", help="bind address (CITER_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (CITER_PORT, default 8000)")
    p.add_argument("--slm", help="SLM model folder (CITER_SLM)")
    p.add_argument("--llm", help="LLM model folder (CITER_LLM)")
    p.add_argument(
        "--llm-url",
        help="run the LLM on this OpenAI-compatible server (vLLM or another citer gateway) "
        "and only the SLM here (CITER_LLM_URL; key: CITER_LLM_API_KEY)",
    )
    p.add_argument("--llm-model", help="the remote server's model name (CITER_LLM_MODEL, llm)")
    p.add_argument("--policy", help="routing policy (CITER_POLICY; default citer if a card exists)")
    p.add_argument(
        "--engine", choices=["hf", "vllm"],
        help="backend of both models (CITER_ENGINE, default hf; vllm: make vllm-venv)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from engines.modelcheck import check_model_folder
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    overrides = {
        k: v
        for k in ("host", "port", "slm", "llm", "policy", "llm_url", "llm_model", "engine")
        if (v := getattr(args, k)) is not None
    }
    try:
        settings = GatewaySettings(_env_file=args.config, **overrides)  # type: ignore[call-arg]
    except ValidationError as e:
        raise ValueError(f"bad setting: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from e
    local = (settings.slm,) if settings.llm_url else (settings.slm, settings.llm)
    for folder in local:  # a one-line error before uvicorn starts
        check_model_folder(folder)
    if settings.engine == "vllm" and settings.resolved_policy() == "citer":
        _check_card_features(settings.router_card)
    from gateway.logs import configure

    configure(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # json: uvicorn's own records go through the root handler too, as JSON
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=15,
    )
    return 0


def _check_card_features(card: str) -> None:
    """A card the vllm engine cannot feed is a one-line error here, not in the lifespan."""
    from engines.vllm_engine import FEATURES
    from router_models.card import read_card
    from router_models.citer import engine_features

    missing = [f for f in engine_features(read_card(card).features) if f not in FEATURES]
    if missing:
        raise ValueError(
            f"router card {card} needs features {missing} but the vllm engine provides only "
            f"{list(FEATURES)}: serve it with --engine hf, train a card for vllm (citer "
            "train-router --features logprobs:top8), or pass --policy logprob"
        )
