"""Locust users for the citer gateway (run by ``make loadtest``; see loadtests/run.py).

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \
        --citer-tenants build/loadtest/tenants.json --headless -u 8 -r 2 -t 60s

StreamingChatUser: OpenAI streaming chat (``/v1/chat/completions``, stream=True)
    on the spec's steady tenants (user i on tenant i mod n), task-suite prompts, a
    routing policy drawn per request from ``common.policy_mix``. Besides the POST
    (Locust times it to the response headers) it reports, per policy name:
      TTFT  time from sending the request to the first content chunk, ms
      ITL   the request's mean inter-token latency, ms: (last content - first
            content) / (completion tokens - 1); a step releases several tokens at
            once, so single gaps are mostly ~0 and say little (vLLM's TPOT)
    A stream without [DONE] or usage, or with an error event, is a failure.
BudgetExhaustionUser (one user): the tenant with a tiny budget and policy
    ``reject``; once its budget is spent every request is a 429
    ``insufficient_quota`` with ``x-should-retry: false``. Those are the expected
    answer: the POST is marked a success and counted as BUDGET "429 insufficient_quota".
"""

from __future__ import annotations

import itertools
import json
import random
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from locust import HttpUser, between, constant, events, task

from loadtests.common import Policy, chat_body, content_of, policy_mix, prompts, sse_data

CHAT = "/v1/chat/completions"
BUDGET_MAX_TOKENS = 32


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--citer-tenants",
        default="",
        env_var="CITER_LOADTEST_TENANTS",
        help="tenants JSON written by loadtests/run.py (holds API keys)",
    )
    parser.add_argument(
        "--citer-max-tokens",
        type=int,
        default=64,
        env_var="CITER_LOADTEST_MAX_TOKENS",
        help="max_tokens of each streamed chat request",
    )
    parser.add_argument(
        "--citer-prompts",
        type=int,
        default=200,
        env_var="CITER_LOADTEST_PROMPTS",
        help="test-split items the prompts are drawn from (<= 1000)",
    )


@lru_cache(maxsize=2)
def _spec(path: str) -> dict[str, Any]:
    if not path:
        raise ValueError("--citer-tenants (CITER_LOADTEST_TENANTS) is required")
    return json.loads(Path(path).read_text())


@lru_cache(maxsize=2)
def _prompts(n: int) -> list[list[dict[str, str]]]:
    return prompts(n)


def _report(kind: str, name: str, ms: float, length: int = 0) -> None:
    events.request.fire(
        request_type=kind,
        name=name,
        response_time=ms,
        response_length=length,
        exception=None,
        context={},
    )


class StreamingUser(HttpUser):
    abstract = True

    def read_stream(self, resp: Any) -> tuple[str | None, float, float, dict | None]:
        """(problem or None, first content time, last content time, usage) of an SSE body."""
        first = last = 0.0
        usage, done = None, False
        for line in resp.iter_lines():
            if line.strip() == b"data: [DONE]":
                done = True
                continue
            chunk = sse_data(line)
            if chunk is None:
                continue
            if "error" in chunk:
                return f"error event: {chunk['error'].get('message')}", first, last, usage
            if content_of(chunk):
                last = time.perf_counter()
                first = first or last
            usage = chunk.get("usage") or usage
        if not done or usage is None:
            return "stream ended without usage and [DONE]", first, last, usage
        return None, first, last, usage


class StreamingChatUser(StreamingUser):
    weight = 4
    wait_time = between(0.05, 0.5)
    _ids = itertools.count()  # spreads users over the steady tenants

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        steady = _spec(opts.citer_tenants)["steady"]
        tenant = steady[next(self._ids) % len(steady)]
        self.headers = {"Authorization": f"Bearer {tenant['key']}"}
        models = self.client.get("/v1/models", name="/v1/models", headers=self.headers)
        models = models.json()["data"]
        self.policies: list[Policy] = policy_mix(models)
        self.prompts = _prompts(opts.citer_prompts)
        self.max_tokens: int = opts.citer_max_tokens

    @task
    def stream_chat(self) -> None:
        policy = random.choice(self.policies)
        body = chat_body(policy, random.choice(self.prompts), self.max_tokens)
        t0 = time.perf_counter()
        with self.client.post(
            CHAT,
            json=body,
            headers=self.headers,
            stream=True,
            catch_response=True,
            name=f"chat {policy.name}",
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:300]}")
                return
            problem, first, last, usage = self.read_stream(resp)
            if problem:
                resp.failure(problem)
                return
            resp.success()
        tokens = usage["completion_tokens"]
        if first:
            _report("TTFT", policy.name, 1e3 * (first - t0), tokens)
        if tokens > 1 and last > first:
            _report("ITL", policy.name, 1e3 * (last - first) / (tokens - 1), tokens)


class BudgetExhaustionUser(StreamingUser):
    fixed_count = 1  # one user whatever -u says
    wait_time = constant(0.2)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        tenant = _spec(opts.citer_tenants)["budget"]
        if tenant is None:
            raise ValueError("the tenants file has no budget tenant")
        self.headers = {"Authorization": f"Bearer {tenant['key']}"}
        self.prompts = _prompts(opts.citer_prompts)

    @task
    def spend(self) -> None:
        body = chat_body(Policy("citer", "citer"), random.choice(self.prompts), BUDGET_MAX_TOKENS)
        t0 = time.perf_counter()
        with self.client.post(
            CHAT,
            json=body,
            headers=self.headers,
            stream=True,
            catch_response=True,
            name="budget chat",
        ) as resp:
            if resp.status_code == 429:
                error = resp.json().get("error", {})
                if error.get("code") != "insufficient_quota":
                    resp.failure(f"429 with code {error.get('code')!r}, not insufficient_quota")
                elif resp.headers.get("x-should-retry") != "false":
                    resp.failure("insufficient_quota without x-should-retry: false")
                else:
                    resp.success()  # the expected answer once the budget is spent
                    _report("BUDGET", "429 insufficient_quota", 1e3 * (time.perf_counter() - t0))
                return
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:300]}")
                return
            problem, *_ = self.read_stream(resp)
            if problem:
                resp.failure(problem)
                return
            resp.success()
            _report("BUDGET", "200 served", 1e3 * (time.perf_counter() - t0))
