"""Logging set-up: text (the default) or one JSON object per line (CITER_LOG_FORMAT=json).

In JSON every record is ``{"ts", "level", "logger", "message", ...}``; each finished
request adds one ``citer.requests`` record with its id (the caller's X-Request-ID
when it sent one), tenant, model, outcome and finish reason, tokens, latency and LLM
share: what a log pipeline indexes. In text format that record is logged at debug.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

REQUESTS = logging.getLogger("citer.requests")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def request_done(json_logs: bool, fields: dict[str, Any]) -> None:
    """One record per finished request (info in JSON, debug in text)."""
    REQUESTS.log(logging.INFO if json_logs else logging.DEBUG, "request done",
                 extra={"fields": fields})  # fmt: skip
