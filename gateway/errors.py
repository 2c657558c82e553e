"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``.

Every failure the gateway answers, including FastAPI's own 404/405 and any
unexpected exception, goes out in this shape, so OpenAI clients raise their
usual exception classes (BadRequestError, AuthenticationError, ...).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("citer.gateway")


CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never received


class ClientGone(Exception):
    """The client disconnected before its request body was complete: counted as a
    client abort (``citer:requests_client_closed``), not a server error."""


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return SafeJSONResponse(self.body(), status_code=self.status, headers=self.headers)


class SafeJSONResponse(JSONResponse):
    """ASCII JSON: a message that quotes client input can always be encoded."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist. Served: citer, citer:<target LLM share "
        "in [0, 1]>, slm, llm (GET /v1/models).",
        "invalid_request_error",
        "model",
        "model_not_found",
    )


def from_validation(err: ValidationError | RequestValidationError) -> APIError:
    """First pydantic error -> 400 naming the field (``messages.0.role``).

    A value that matches no member of a union yields one error per member, each with
    the member's name appended to the location: the field is their common prefix."""
    errors = err.errors()
    first = errors[0]
    loc = [x for x in first.get("loc", ()) if x != "body"]
    siblings = [
        [x for x in e.get("loc", ()) if x != "body"] for e in errors[1:]
    ]  # fmt: skip
    siblings = [s for s in siblings if s[:1] == loc[:1]]
    for other in siblings:
        n = 0
        while n < min(len(loc), len(other)) and loc[n] == other[n]:
            n += 1
        loc = loc[:n]
    param = ".".join(map(str, loc)) or None
    if first.get("type") == "extra_forbidden":
        return bad_request(
            f"Unrecognized request argument supplied: {param} (this gateway does not "
            "implement it; see GET /openapi.json for the fields it takes).",
            param,
            "unsupported_parameter",
        )
    msg = first.get("msg", "invalid value")
    if siblings and len(loc) < len(first.get("loc", ())):  # a union: say what was allowed
        msg = "; ".join(dict.fromkeys(e.get("msg", "") for e in errors[:4]))
    return bad_request(f"{param}: {msg}" if param else msg, param)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return from_validation(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return APIError(exc.status_code, str(exc.detail), kind).response()

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, _: ClientGone) -> Response:
        state = getattr(request.app.state, "citer", None)
        if state is not None:
            state.metrics.client_closed.inc()
        log.info("client closed %s %s before its body was read", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return APIError(500, f"internal error: {type(exc).__name__}", "server_error").response()
