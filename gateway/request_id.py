"""``X-Request-ID``: a caller's own request id, echoed back (vLLM and proxies do).

A request that carries ``X-Request-ID`` gets it back in the ``x-request-id`` response
header, errors and streams included, instead of the gateway's own id (which stays
the completion's ``id``). Ids are 1-128 characters of ``[A-Za-z0-9._:-]`` (a UUID, a
trace id); any other value is refused with 400 naming the header, before any work.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import bad_request

HEADER = b"x-request-id"
VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def set_header(message: dict, name: bytes, value: bytes) -> dict:
    """An ASGI ``http.response.start`` message with header ``name`` (lowercase) set to
    ``value``, replacing any the app sent."""
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != name]
    return {**message, "headers": [*headers, (name, value)]}


class RequestIdMiddleware:
    """Pure ASGI (a BaseHTTPMiddleware would buffer streams)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = [v for k, v in scope.get("headers", []) if k.lower() == HEADER]
        if not given:
            return await self.app(scope, receive, send)
        if len(given) > 1 or not VALID.fullmatch(given[0]):
            err = bad_request(
                "X-Request-ID must be one header of 1-128 characters from [A-Za-z0-9._:-].",
                "x-request-id",
            )
            return await err.response()(scope, receive, send)
        rid = given[0]

        async def echo(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = set_header(message, HEADER, rid)
            await send(message)

        return await self.app(scope, receive, echo)
