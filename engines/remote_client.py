"""HTTP side of the remote LLM engine: a pooled httpx client, deadlines, retries, a circuit.

    RemoteClient.post_all(bodies, parse)   (called on the scheduler's thread)
      circuit open -> every call fails "circuit_open" at once (no network)
      else, all bodies at once on the client's event-loop thread:
        POST {base}/completions; after a connection error, 429 or 5xx retry with
        backoff_s * 2**i while the deadline allows; parse(i, json) -> value
      at deadline_s (from the start of the batch) calls still running are
      cancelled: "timeout"
    -> one CallResult per body: the parsed value, or why there is none

Circuit: a batch whose calls all failed opens it for cooldown_s, doubled per
consecutive failed batch up to 16 x; the first batch after that is the probe
(half-open) and any answer closes it. A cloud that comes back is used again
within one cooldown, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("citer.remote")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # worth another attempt
MAX_COOLDOWN_FACTOR = 16  # the longest circuit-open wait, in cooldowns


class RemoteError(Exception):
    """A request to the server that did not produce a usable answer (reason in args[0])."""


@dataclass
class CallResult:
    value: Any = None  # parse()'s result; None when the call failed
    reason: str | None = None  # None: ok; timeout, unreachable, http_<status>, bad_response, ...
    seconds: float = 0.0  # wall time of the call, retries and backoff included
    sent: int = 0  # bytes sent: request line, headers and body, every attempt
    received: int = 0  # bytes received: status line, headers and body


@dataclass
class RemoteStats:
    """Counters since start; the scheduler thread writes, scrapes read (GIL-atomic)."""

    calls: int = 0  # LLM calls asked for (one per sequence per step)
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by reason, circuit_open included
    attempts: int = 0  # HTTP requests sent (retries included)
    bytes_sent: int = 0
    bytes_received: int = 0
    tokens_sent: int = 0  # prompt token ids of answered calls (each sends the whole prefix)
    tokens_received: int = 0  # token ids those calls returned
    ok_seconds: float = 0.0  # summed wall time of the successful calls
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # ok calls, s
    circuit_opened: int = 0  # times the circuit opened


def _head_bytes(line: str, headers: httpx.Headers) -> int:
    """HTTP/1.1 framing size: start line + headers + blank line (CRLF each)."""
    return len(line) + 2 + sum(len(k) + len(v) + 4 for k, v in headers.raw) + 2


class RemoteClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        deadline_s: float,
        retries: int,
        backoff_s: float,
        pool_size: int,
        cooldown_s: float,
    ) -> None:
        self.deadline_s, self.retries, self.backoff_s = deadline_s, retries, backoff_s
        self.cooldown_s = cooldown_s
        self.stats = RemoteStats()
        self._failures = 0  # consecutive failed batches
        self._open_until = 0.0  # time.monotonic() before which no call is made
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="citer-remote-llm", daemon=True
        )
        self._thread.start()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)

        async def make() -> httpx.AsyncClient:  # bound to the client's own loop
            return httpx.AsyncClient(
                base_url=base_url, headers=headers, limits=limits, timeout=None
            )

        self._http = self._run(make())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def circuit_open(self) -> bool:
        return time.monotonic() < self._open_until

    def get(self, path: str, timeout_s: float) -> httpx.Response:
        """One GET (start-up checks); RemoteError("unreachable" / "timeout") on failure."""

        async def go() -> httpx.Response:
            async with asyncio.timeout(timeout_s):
                return await self._http.get(path)

        try:
            return self._run(go())
        except TimeoutError as e:
            raise RemoteError("timeout") from e
        except httpx.TransportError as e:
            raise RemoteError(f"unreachable ({type(e).__name__})") from e

    def post_all(
        self, bodies: list[dict[str, Any]], parse: Callable[[int, Any], Any]
    ) -> list[CallResult]:
        st = self.stats
        st.calls += len(bodies)
        if self.circuit_open:
            st.failed["circuit_open"] += len(bodies)
            return [CallResult(reason="circuit_open") for _ in bodies]
        results: list[CallResult] = self._run(self._post_all(bodies, parse))
        for r in results:
            st.bytes_sent += r.sent
            st.bytes_received += r.received
            if r.reason is None:
                st.ok += 1
                st.ok_seconds += r.seconds
                st.latencies.append(r.seconds)
            else:
                st.failed[r.reason] += 1
        self._settle(results)
        return results

    def _settle(self, results: list[CallResult]) -> None:
        """Close the circuit on any answer; open it when a whole batch failed."""
        if not results:
            return
        if any(r.reason is None for r in results):
            if self._failures:
                log.warning("remote LLM answers again: LLM tokens resume")
            self._failures, self._open_until = 0, 0.0
            return
        self._failures += 1
        wait = self.cooldown_s * min(2 ** (self._failures - 1), MAX_COOLDOWN_FACTOR)
        self._open_until = time.monotonic() + wait
        self.stats.circuit_opened += 1
        reasons = sorted({r.reason or "" for r in results})
        log.warning(
            "remote LLM failed (%s): the SLM writes its tokens; next try in %.2g s",
            ", ".join(reasons),
            wait,
        )

    async def _post_all(
        self, bodies: list[dict[str, Any]], parse: Callable[[int, Any], Any]
    ) -> list[CallResult]:
        deadline = time.monotonic() + self.deadline_s
        calls = [self._post(i, b, parse, deadline) for i, b in enumerate(bodies)]
        return list(await asyncio.gather(*calls))

    async def _post(
        self, i: int, body: dict[str, Any], parse: Callable[[int, Any], Any], deadline: float
    ) -> CallResult:
        t0 = time.monotonic()
        res = CallResult(reason="timeout")
        content = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout_at(self._loop.time() + deadline - t0):
                for attempt in range(self.retries + 1):
                    if attempt:
                        await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                    if await self._attempt(i, content, parse, res):
                        break
        except TimeoutError:
            res.reason, res.value = "timeout", None
        res.seconds = time.monotonic() - t0
        return res

    async def _attempt(
        self, i: int, content: bytes, parse: Callable[[int, Any], Any], res: CallResult
    ) -> bool:
        """One HTTP request into ``res``; True when done (answered, or not worth a retry)."""
        req = self._http.build_request(
            "POST", "completions", content=content, headers={"Content-Type": "application/json"}
        )
        self.stats.attempts += 1
        res.sent += _head_bytes(f"POST {req.url.raw_path.decode()} HTTP/1.1", req.headers)
        res.sent += len(content)
        try:
            resp = await self._http.send(req)
        except httpx.TransportError as e:  # refused, reset, dropped mid-answer
            res.reason = "unreachable"
            log.debug("remote LLM: %s", e)
            return False
        res.received += _head_bytes(f"HTTP/1.1 {resp.status_code}", resp.headers)
        res.received += len(resp.content)
        if resp.status_code != 200:
            res.reason = f"http_{resp.status_code}"
            if resp.status_code not in RETRY_STATUS:
                log.warning("remote LLM refused a call (%s): %s", resp.status_code, resp.text[:300])
            return resp.status_code not in RETRY_STATUS
        try:
            res.value, res.reason = parse(i, resp.json()), None
        except (ValueError, KeyError, TypeError, IndexError) as e:
            res.reason = "bad_response"
            log.warning("remote LLM: unusable answer (%s)", e)
        return True

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._http.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
