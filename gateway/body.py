"""Reading a request body: size limit, JSON that every part of the gateway can hold.

    read_json(request, limit)  bytes, 413 past ``limit`` (checked while reading);
                               ClientGone if the client leaves before the end
      -> decode_json (a worker thread: a 1 MB body never stalls the event loop)
         JSON object only; every number finite (no NaN / Infinity / 1e999); nesting
         at most MAX_DEPTH deep; every string valid Unicode (no lone surrogates,
         which no response or tokenizer could encode)      -> 400 naming the problem

After this, a value can be echoed in an error, tokenized, logged or put in a span
without raising: hostile bodies end here with a 400 and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from gateway.errors import APIError, ClientGone, bad_request

MAX_DEPTH = 32  # nesting levels of arrays/objects; OpenAI bodies need about 6


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object of the body; 413 past ``limit`` bytes, 400 for bad JSON."""
    declared = request.headers.get("content-length")
    too_big = APIError(
        413, f"The request body exceeds the limit of {limit} bytes.", code="request_too_large"
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_big
    except ClientDisconnect as e:
        raise ClientGone from e
    return await asyncio.to_thread(decode_json, bytes(body))


def decode_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as e:
        raise _too_deep() from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad_request(f"We could not parse the JSON body of your request ({e}).") from e
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    _check_tree(data)
    return data


def _refuse_constant(name: str) -> float:
    raise bad_request(f"The JSON body contains {name}: every number must be finite.")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise bad_request(f"The JSON body contains {text[:40]}, which overflows a float.")
    return x


def _too_deep() -> APIError:
    return bad_request(f"The JSON body is nested deeper than {MAX_DEPTH} levels.")


def _check_tree(data: dict[str, Any]) -> None:
    """Depth and Unicode checks, iteratively (a deep body must not exhaust the stack)."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(node, dict):
            for k, v in node.items():
                _check_text(k)
                if isinstance(v, (dict, list)):
                    todo.append((v, depth + 1))
                elif isinstance(v, str):
                    _check_text(v)
        elif isinstance(node, list):
            for v in node:
                if isinstance(v, (dict, list)):
                    todo.append((v, depth + 1))
                elif isinstance(v, str):
                    _check_text(v)


def _check_text(s: str) -> None:
    if s.isascii():
        return
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise bad_request(
            "The JSON body contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
            "escape), which is not valid Unicode text."
        ) from e
