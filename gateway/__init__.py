"""The OpenAI-compatible HTTP gateway (``citer serve``; ``gateway.app.create_app``).

Data flow of one request::

    HTTP -> {chat,completions}/router.py (auth: gateway.auth)
         -> serving.py: body limits, pydantic protocol, model name + routing field
            (gateway.routing), prompt tokens, sampling params (gateway.common)
         -> gateway.runner.start_run: queue slot (503), budget reservation (429,
            gateway.budget), routing params -> Run task: batch seat -> AsyncEngine
         -> gateway.streaming: SSE chunks or a whole answer (log-probs in OpenAI's
            shapes: gateway.logprobs); a disconnect aborts the Run
         -> Run settles the budget, records metrics (gateway.metrics) and the trace
            (gateway.tracing)

Endpoint packages: ``chat``, ``completions``, ``info`` (models, health, ready,
version, metrics, usage), ``admin`` (tenants and keys); tenants and budgets
live in ``gateway.tenancy``; settings in ``gateway.settings``.
"""
