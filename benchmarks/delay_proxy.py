"""A loopback TCP proxy that delays every byte by a fixed one-way latency.

    client --(+delay_s)--> proxy --> upstream (127.0.0.1:upstream_port)
    client <--(+delay_s)-- proxy <-- upstream

Each direction forwards chunks in order, each no earlier than ``delay_s`` after
it arrived, so a request/response round trip gains 2 * delay_s and throughput is
not capped (a network with latency, not a slow link). ``delay_s`` and
``upstream_port`` may change while it runs (new chunks / new connections); when
either side closes, so does the other. Runs its own event loop on a thread, for
the edge tests and ``benchmarks/edge.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class DelayProxy:
    def __init__(self, upstream_port: int, delay_s: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s  # one-way, seconds
        self.connections = 0  # accepted so far (a pooled client keeps reusing them)
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        started.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:  # nothing listens upstream: the client sees a reset connection
            cw.close()
            return
        self._writers |= {cw, uw}
        try:
            await asyncio.gather(self._pipe(cr, uw), self._pipe(ur, cw), return_exceptions=True)
        except asyncio.CancelledError:  # close(): end quietly (asyncio's accept callback
            pass  # would log a cancelled handler as an error)
        for w in (cw, uw):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Forward src -> dst, each chunk delay_s after it arrived; close dst at EOF."""
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                at, data = await due.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await src.read(65536):
                due.put_nowait((time.monotonic() + self.delay_s, data))
        finally:
            due.put_nowait((0.0, b""))
            with contextlib.suppress(Exception):
                await sender
            dst.close()

    def drop_connections(self) -> None:
        """Close every open connection (both sides) now."""

        def close_all() -> None:
            for w in list(self._writers):
                w.close()

        self._loop.call_soon_threadsafe(close_all)

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
