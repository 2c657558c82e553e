"""The published OpenAPI document: what a client generator or a fuzzer needs to call
the gateway correctly.

The endpoints read their bodies themselves (size limit and JSON checks before
pydantic, off the event loop: ``gateway.body``), so FastAPI cannot see them; this
module adds to the generated document:
- each JSON request body, from the same pydantic model that validates it;
- every error status an operation can answer, in OpenAI's error shape (``Error``),
  and never 422, which the gateway does not send;
- the bearer scheme on /v1 and /admin, and the real media types of the 200
  answers (SSE streams, Prometheus text).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from gateway.admin.protocol import CreateTenant, UpdateTenant
from gateway.chat.protocol import ChatCompletionRequest
from gateway.completions.protocol import CompletionRequest
from gateway.tokenize import DetokenizeRequest, TokenizeRequest

REF = "#/components/schemas/{model}"
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("/v1/chat/completions", "post"): ChatCompletionRequest,
    ("/v1/completions", "post"): CompletionRequest,
    ("/admin/tenants", "post"): CreateTenant,
    ("/admin/tenants/{tenant_id}", "patch"): UpdateTenant,
    ("/tokenize", "post"): TokenizeRequest,
    ("/detokenize", "post"): DetokenizeRequest,
}
TOKENS = ("/tokenize", "/detokenize")  # behind the API key like /v1
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
WHY = {
    "400": "Invalid request (OpenAI error shape, names the field)",
    "401": "Missing or wrong bearer key",
    "403": "The admin API is disabled (no CITER_ADMIN_KEY)",
    "404": "Unknown model, tenant, key or hold",
    "409": "The tenant exists",
    "413": "Body larger than CITER_MAX_BODY_BYTES",
    "429": "Budget exhausted or too many concurrent requests",
    "500": "The engine failed while decoding this request",
    "503": "At capacity, queue timeout or shutting down (Retry-After)",
}


def _errors(path: str, method: str, has_body: bool) -> list[str]:
    codes = ["400"] if has_body else []
    if path.startswith("/v1/") or path in TOKENS:
        codes.append("401")
    if path.startswith("/admin/"):
        codes += ["401", "403", "404"]
        if (path, method) == ("/admin/tenants", "post"):
            codes.append("409")
    if path.startswith("/v1/models/") or path in TOKENS:
        codes.append("404")
    if path == "/metrics":
        codes.append("401")
    if has_body:
        codes.append("413")
    if path in ("/v1/chat/completions", "/v1/completions"):
        codes += ["404", "429", "500", "503"]
    if path == "/ready":
        codes.append("503")
    return codes


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for (path, method), model in BODIES.items():
        js = model.model_json_schema(ref_template=REF)
        schemas.update(js.pop("$defs", {}))
        schemas[model.__name__] = js
        op = doc["paths"][path][method]
        op["requestBody"] = {
            "required": True,
            "content": _json({"$ref": REF.format(model=model.__name__)}),
        }
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            if path in ("/v1/chat/completions", "/v1/completions"):
                ok = {"description": "The answer, or its server-sent events when stream is true"}
                ok["content"] = {
                    **_json({"type": "object"}),
                    "text/event-stream": {"schema": {"type": "string"}},
                }
                responses["200"] = ok
            if path == "/metrics":
                responses["200"] = {
                    "description": "Prometheus text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            if path.startswith(("/v1/", "/admin/")) or path in ("/metrics", *TOKENS):
                op["security"] = [{"bearer": []}]
            for code in _errors(path, method, (path, method) in BODIES):
                responses[code] = {
                    "description": WHY[code],
                    "content": _json({"$ref": "#/components/schemas/Error"}),
                }
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
