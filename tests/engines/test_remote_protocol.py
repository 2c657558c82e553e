"""The remote engine's wire protocol against a scripted OpenAI-style server (a real HTTP
server on a thread): what it sends, how it reads vLLM's answer shape, retries, refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engines.remote import RemoteConfig, RemoteEngine
from engines.types import SamplingParams, SeqWork

VOCAB, EOS = 100, (2,)


class Stub:
    """Serves GET /v1/models and answers POST /v1/completions from ``script``."""

    def __init__(self, owned_by: str = "vllm", max_model_len: int = 64) -> None:
        self.cards = [{"id": "m", "object": "model", "owned_by": owned_by,
                       "max_model_len": max_model_len}]  # fmt: skip
        self.script: list[tuple[int, Any]] = []  # (status, JSON body) per POST, in order
        self.bodies: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": stub.cards})

            def do_POST(self) -> None:
                n = int(self.headers["Content-Length"])
                stub.bodies.append(json.loads(self.rfile.read(n)))
                self._send(*stub.script.pop(0))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def answer(ids: list[int], logprobs: dict | None = None) -> tuple[int, dict]:
    """vLLM's completions answer with return_token_ids."""
    choice = {"index": 0, "text": "", "token_ids": ids, "logprobs": logprobs,
              "finish_reason": "length", "prompt_token_ids": None}  # fmt: skip
    return 200, {"object": "text_completion", "choices": [choice], "usage": {"prompt_tokens": 1}}


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.server.shutdown()


def engine(stub: Stub, **cfg: Any) -> RemoteEngine:
    cfg.setdefault("deadline_s", 30.0)  # deadlines are not under test here
    return RemoteEngine(RemoteConfig(stub.url, model="m", **cfg), VOCAB, EOS, 512)


def work(seq: int, start: int, new: list[int], n_out: int = 1, **sp: Any) -> SeqWork:
    return SeqWork(seq, start, new, SamplingParams(**sp), seed=42, n_out=n_out)


def test_token_ids_out_and_in_with_a_fresh_seed_per_call(stub: Stub) -> None:
    eng = engine(stub)
    try:
        assert eng.positional is False and eng.info.max_context == 64  # the server's limit
        stub.script += [answer([7, 8, 9]), answer([11])]
        out = eng.step([work(1, 0, [5, 6], n_out=3, temperature=0.7, top_k=5)])
        assert out.tokens == [[7, 8, 9]] and out.failed is None
        assert eng.cache_len(1) == 4  # prompt + the outputs but the last (not fed yet)
        out = eng.step([work(1, 4, [9, 3], n_out=1, temperature=0.7)])
        first, second = stub.bodies
        assert first["prompt"] == [5, 6] and second["prompt"] == [5, 6, 7, 8, 9, 3]
        assert (first["max_tokens"], first["top_k"], first["model"]) == (3, 5, "m")
        assert first["return_token_ids"] is True and "top_k" not in second
        assert len({first["seed"], second["seed"], 42}) == 3  # never one stream twice
        assert out.tokens == [[11]]
    finally:
        eng.close()


def test_log_probs_named_by_token_id(stub: Stub) -> None:
    eng = engine(stub)
    try:
        top = {"token_id:3": -1.5, "token_id:7": -0.5, "token_id:9": -3.0}  # k best + chosen
        lp = {"tokens": ["token_id:7"], "token_logprobs": [-0.5], "top_logprobs": [top]}
        stub.script.append(answer([7], lp))
        out = eng.step([work(1, 0, [5], logprobs=2)])
        assert stub.bodies[0]["return_tokens_as_token_ids"] is True
        (tlp,) = out.logprobs[0]
        assert tlp.logprob == -0.5 and tlp.top == ((7, -0.5), (3, -1.5))  # best first, k = 2
    finally:
        eng.close()


def test_overload_is_retried_a_bad_request_is_not(stub: Stub) -> None:
    eng = engine(stub, retries=2, backoff_s=0.01)
    try:
        stub.script += [(503, {"error": {}}), (503, {"error": {}}), answer([4])]
        assert eng.step([work(1, 0, [5])]).tokens == [[4]] and eng.stats.attempts == 3
        stub.script.append((400, {"error": {"message": "prompt too long"}}))
        out = eng.step([work(2, 0, [5])])
        assert out.failed == ["http_400"] and out.tokens == [[]] and eng.stats.attempts == 4
        assert eng.cache_len(2) == 0  # a failed call leaves no trace
    finally:
        eng.close()


@pytest.mark.parametrize(
    "reply",
    [
        (200, {"choices": [{"text": "hi"}]}),  # no token_ids: the server ignored the field
        answer([7, 8]),  # more tokens than asked
        answer([VOCAB + 1]),  # not the SLM's vocabulary
        (200, {"choices": [{"token_ids": [7]}], "usage": {"slm_tokens": 1}}),  # a citer SLM
    ],
    ids=["no-token-ids", "too-many", "outside-vocab", "cloud-slm"],
)
def test_unusable_answers_fail_the_call(stub: Stub, reply) -> None:
    eng = engine(stub, cooldown_s=0.0)
    try:
        stub.script.append(reply)
        out = eng.step([work(1, 0, [5])])
        assert out.failed == ["bad_response"] and eng.stats.failed["bad_response"] == 1
    finally:
        eng.close()


def test_start_up_rejects_a_server_that_is_not_openai_compatible(stub: Stub) -> None:
    stub.cards = [{"id": "other"}]
    with pytest.raises(ValueError, match="does not serve model 'm'"):
        engine(stub)
