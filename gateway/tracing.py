"""OpenTelemetry: one tracer provider per gateway (never the process-global one).

Each request is one trace: a root span ``{operation} {model}`` with ``gen_ai.*``
attributes (OpenTelemetry GenAI semantic conventions) and the routing stats,
and child spans ``budget.reserve``, ``engine.queue`` (waiting for a batch seat),
``engine.prefill`` (submit -> first token: the scheduler's admission at its next
step and the prefill), ``engine.decode`` (first -> last token) and ``budget.settle``.

Exporter: the one passed in (tests use the SDK's in-memory exporter), else
OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else none.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Tracer

log = logging.getLogger("citer.gateway")


def make_tracer(
    service_name: str, otlp_endpoint: str | None, exporter: SpanExporter | None = None
) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter reads OTEL_EXPORTER_OTLP_* itself (endpoint + /v1/traces, headers).
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("tracing: exporting spans by OTLP/HTTP to %s", otlp_endpoint)
    return provider, provider.get_tracer("citer.gateway")
