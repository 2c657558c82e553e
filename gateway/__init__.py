"""The OpenAI-compatible HTTP gateway (``citer serve``; ``gateway.app.create_app``).

Data flow of one request::

    HTTP -> {chat,completions}/router.py (auth: gateway.auth)
         -> serving.py: body (gateway.body: size, finite JSON, off the event loop),
            strict pydantic protocol (gateway.fields: unknown and unimplemented
            fields refused), model name + routing field (gateway.routing), prompt
            tokens (a worker thread), sampling params (gateway.common)
         -> gateway.admission.start: scheduler limits (400), capacity (503),
            budget reservation (429, gateway.budget), routing params -> the
            gateway.runner.Run task: batch seat (503 past CITER_QUEUE_TIMEOUT_S)
            -> AsyncEngine, hold renewed
         -> gateway.streaming: SSE chunks or a whole answer (log-probs in OpenAI's
            shapes: gateway.logprobs); a disconnect aborts the Run
         -> Run settles the budget, records metrics (gateway.metrics) and the trace
            (gateway.tracing)

Endpoint packages: ``chat``, ``completions``, ``info`` (models, health, ready,
version, metrics, usage), ``admin`` (tenants, keys, holds); tenants and budgets
live in ``gateway.tenancy``; settings in ``gateway.settings``; the published
OpenAPI document in ``gateway.openapi``.
"""
