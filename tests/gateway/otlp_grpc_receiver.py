"""An OTLP/gRPC trace receiver in its own process: ``python otlp_grpc_receiver.py PORT OUT``
serves the collector's TraceService on 127.0.0.1:PORT and appends one JSON line per
received span to OUT (trace and span ids in hex, parent, name, string attributes)."""

from __future__ import annotations

import json
import sys
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out: str) -> None:
        self.out = out

    def Export(self, request, context):  # noqa: N802 (the generated service's naming)
        with open(self.out, "a") as f:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        row = {
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(),
                            "name": s.name,
                            "attributes": {a.key: a.value.string_value for a in s.attributes},
                        }
                        f.write(json.dumps(row) + "\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(out), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
