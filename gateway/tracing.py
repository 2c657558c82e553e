"""OpenTelemetry: one tracer provider per gateway (never the process-global one).

Each request is one trace: a root span ``{operation} {model}`` with ``gen_ai.*``
attributes (OpenTelemetry GenAI semantic conventions) and the routing stats,
and child spans ``budget.reserve``, ``engine.queue`` (waiting for a batch seat),
``engine.prefill`` (submit -> first token: the scheduler's admission at its next
step and the prefill), ``engine.decode`` (first -> last token) and ``budget.settle``.

Above them, every HTTP request (refused ones too: 400, 401, 404, 429, 503) gets a
server span from the maintained FastAPI instrumentation, which continues a caller's
W3C ``traceparent``; the request's spans are its children, and the response carries
the trace id in ``x-trace-id``. /health, /ready and /metrics are not traced (probes
and scrapes would drown the rest), nor each ASGI send/receive of a stream.

Exporter: the one passed in (tests use the SDK's in-memory exporter), else OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, over HTTP (protobuf) or gRPC as
``OTEL_EXPORTER_OTLP_PROTOCOL`` says, else none.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Tracer

from gateway.request_id import set_header

log = logging.getLogger("citer.gateway")
UNTRACED = "health,ready,metrics"  # excluded_urls: regexes searched in the URL
TRACE_HEADER = b"x-trace-id"


def make_tracer(
    service_name: str,
    otlp_endpoint: str | None,
    exporter: SpanExporter | None = None,
    protocol: str = "http/protobuf",
) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif otlp_endpoint:
        # Each exporter reads OTEL_EXPORTER_OTLP_* itself (endpoint, headers, TLS, timeout;
        # HTTP appends /v1/traces to the endpoint, gRPC dials it as given).
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("tracing: exporting spans by OTLP (%s) to %s", protocol, otlp_endpoint)
    return provider, provider.get_tracer("citer.gateway")


def instrument(app: Any, provider: TracerProvider) -> None:
    """Server spans for every request (outermost), and the trace id on every response."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app.add_middleware(TraceIdMiddleware)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=UNTRACED, exclude_spans=["receive", "send"]
    )


class TraceIdMiddleware:
    """``x-trace-id``: the trace the server span belongs to (32 hex digits)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tag(message: dict) -> None:
            if message["type"] == "http.response.start":  # once, not per streamed chunk
                ctx = trace.get_current_span().get_span_context()
                if ctx.is_valid:
                    message = set_header(message, TRACE_HEADER, f"{ctx.trace_id:032x}".encode())
            await send(message)

        return await self.app(scope, receive, tag)
