"""The soak's checks on made-up snapshots: a clean run passes, and each kind of leak
(a request, a cache, memory, a reservation, a cost) fails the check that names it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from loadtests.soak_check import MIB, Ledger, Snapshot, evaluate, table

PRICES = {"slm_prompt": 1.0, "slm_completion": 2.0, "llm_prompt": 10.0, "llm_completion": 20.0}
TOKENS = {"slm_prompt": 300, "slm_completion": 500, "llm_prompt": 200, "llm_completion": 50}
SPENT = (300 * 1.0 + 500 * 2.0 + 200 * 10.0 + 50 * 20.0) / 1000  # 4.3 cost units


def usage(**changes: Any) -> dict[str, Any]:
    requests = {"granted": 10, "degraded": 0, "rejected": 0, "completed": 8, "aborted": 2,
                "failed": 0}  # fmt: skip
    u = {"spent": SPENT, "reserved": 0.0, "active_requests": 0, "tokens": dict(TOKENS),
         "requests": requests}  # fmt: skip
    return {**u, **changes}


def clean() -> tuple[Snapshot, Snapshot, dict[str, Ledger]]:
    before = Snapshot(0, 0, 0, 0, 0, 400 * MIB, 5, {"t": 1.0}, {"t": usage(spent=1.0)})
    after = Snapshot(0, 0, 0, 0, 0, 410 * MIB, 7, {"t": SPENT}, {"t": usage()})
    # 8 answers read to the end cost 3.5; the 2 abandoned ones 0.8, within [0.1, 2.0].
    ledger = Ledger(granted=10, seen=8, seen_cost=3.5, abandoned=2, abandoned_chunks=7,
                    abandoned_floor=0.1, abandoned_worst=2.0)  # fmt: skip
    return before, after, {"t": ledger}


def failing(before: Snapshot, after: Snapshot, ledgers: dict[str, Ledger]) -> list[str]:
    return [c.name for c in evaluate(before, after, ledgers, PRICES, 64) if not c.ok]


def test_a_clean_run_passes_every_check() -> None:
    checks = evaluate(*clean(), PRICES, 64)
    assert len(checks) == 6 + 7 and all(c.ok for c in checks), checks
    assert "RSS MiB" in table(*clean()[:2])


def _set(attr: str, value: Any) -> Callable[[Snapshot, Ledger], None]:
    return lambda after, ledger: setattr(after, attr, value)


LEAKS: dict[str, tuple[Callable[[Snapshot, Ledger], None], str]] = {
    "request still running": (_set("running", 1), "running requests == 0"),
    "request unsettled": (_set("in_flight", 1), "requests in flight == 0"),
    "LLM cache left": (_set("kv_llm", 1), "LLM KV caches == 0"),
    "RSS grew": (_set("rss_bytes", 500 * MIB), "RSS back within 64 MiB of baseline"),
    "reservation left": (lambda a, _: a.usage["t"].update(reserved=1.5),
                         "t: nothing reserved or active"),
    "a failed request": (lambda a, _: a.usage["t"]["requests"].update(failed=1, aborted=1),
                         "t: every request settled once, none failed"),
    "client saw a 503": (lambda _, led: setattr(led, "refused", 1),
                         "t: granted == client 200s, no refusal or error event"),
    "an error event": (lambda _, led: setattr(led, "errors", 1),
                       "t: granted == client 200s, no refusal or error event"),
    "abandoned cost above worst case": (lambda _, led: setattr(led, "abandoned_worst", 0.5),
                                        "t: spent == settled costs the clients saw"),
    "seen costs exceed spend": (lambda _, led: setattr(led, "seen_cost", 4.3),
                                "t: spent == settled costs the clients saw"),
    "metric disagrees": (lambda a, _: a.spend_metric.update(t=4.0),
                         "t: /metrics spend == store spend"),
    "tokens disagree": (lambda a, _: a.usage["t"]["tokens"].update(llm_completion=60),
                        "t: spent == billed tokens x prices"),
}  # fmt: skip


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_each_leak_fails_its_own_check(leak: str) -> None:
    before, after, ledgers = copy.deepcopy(clean())
    mutate, expected = LEAKS[leak]
    mutate(after, ledgers["t"])
    assert failing(before, after, ledgers) == [expected]


def test_without_disconnects_spend_must_equal_what_was_seen() -> None:
    before, after, _ = clean()
    after.usage["t"]["requests"].update(completed=10, aborted=0)
    exact = {"t": Ledger(granted=10, seen=10, seen_cost=SPENT)}
    assert failing(before, after, exact) == []
    short = {"t": Ledger(granted=10, seen=10, seen_cost=SPENT - 0.001)}  # one token unseen
    assert failing(before, after, short) == ["t: spent == settled costs the clients saw"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"disconnect": 1.5}, "disconnect"),
        ({"clients": 0}, "clients"),
        ({"duration_s": -1}, "duration"),
    ],
)
def test_soak_config_refuses_bad_values(bad: dict[str, Any], message: str) -> None:
    from loadtests.soak import SoakConfig

    with pytest.raises(ValueError, match=message):
        SoakConfig(**bad)
