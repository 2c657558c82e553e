"""Pure parts: cost arithmetic, fixed windows, config validation."""

from __future__ import annotations

import random

import pytest

from gateway.tenancy import Prices, TenancySettings, TenantConfig, actual_cost, worst_case_cost
from gateway.tenancy.cost import to_micros, window

PRICES = Prices(slm_prompt=0.1, slm_completion=0.2, llm_prompt=1.0, llm_completion=3.0)


def test_costs_are_per_1k_tokens() -> None:
    assert actual_cost(PRICES, 1000, 0, 0, 0) == pytest.approx(0.1)
    assert actual_cost(PRICES, 1000, 500, 2000, 250) == pytest.approx(0.1 + 0.1 + 2.0 + 0.75)
    # SLM only: prompt read by the SLM + every answer token written and read back by it.
    assert worst_case_cost(PRICES, 1000, 100, llm_allowed=False) == pytest.approx(0.1 + 0.03)
    # With the LLM: both prefill the prompt; an answer token costs at most the dearer
    # write plus a read by each model (SLM read-back + LLM catch-up) = 3.0 + 0.1 + 1.0.
    assert worst_case_cost(PRICES, 1000, 100, llm_allowed=True) == pytest.approx(1.1 + 0.41)


def test_worst_case_bounds_every_possible_run() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        prompt, max_tokens = rng.randint(0, 500), rng.randint(0, 300)
        llm_written = rng.randint(0, max_tokens)
        slm_written = rng.randint(0, max_tokens - llm_written)
        cost = actual_cost(
            PRICES,
            # Each answer token may be read back by the SLM and caught up on by the LLM.
            slm_prompt=prompt + rng.randint(0, llm_written + slm_written),
            slm_completion=slm_written,
            llm_prompt=rng.randint(0, prompt + slm_written + llm_written),  # prefill + catch-up
            llm_completion=llm_written,
        )
        worst = worst_case_cost(PRICES, prompt, max_tokens, llm_allowed=True)
        assert to_micros(cost) <= to_micros(worst)
        slm_only = actual_cost(PRICES, prompt + rng.randint(0, slm_written), slm_written, 0, 0)
        assert slm_only <= worst_case_cost(PRICES, prompt, max_tokens, llm_allowed=False) + 1e-12


def test_negative_token_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        worst_case_cost(PRICES, 10, -1, llm_allowed=True)
    with pytest.raises(ValueError, match=">= 0"):
        actual_cost(PRICES, 0, -3, 0, 0)


@pytest.mark.parametrize(("period", "seconds"), [("1h", 3600), ("1d", 86400), ("30d", 2592000)])
def test_windows_are_fixed_and_epoch_aligned(period: str, seconds: int) -> None:
    now = 1_800_000_123.5
    start, reset = window(period, now)  # type: ignore[arg-type]
    assert start % seconds == 0 and start <= now < reset == start + seconds
    assert window(period, reset) == (reset, reset + seconds)  # type: ignore[arg-type]
    assert window(period, reset - 0.001)[0] == start  # type: ignore[arg-type]


def test_period_none_never_resets() -> None:
    assert window("none", 5e9) == (0, None)


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"budget": {"limit": -1}}, "budget.limit", "[0, 1e+09]"),
        ({"budget": {"limit": 1, "period": "2d"}}, "budget.period", "'1h', '1d', '30d' or 'none'"),
        ({"max_llm_share": 1.5}, "max_llm_share", "[0, 1]"),
        ({"max_concurrent": 0}, "max_concurrent", "[1, 100000]"),
        ({"prices": {"llm_prompt": -0.5}}, "prices.llm_prompt", "[0, 1e+06]"),
        ({"policy": "queue"}, "policy", "'degrade' or 'reject'"),
    ],
)
def test_invalid_config_names_field_and_range(changes: dict, field: str, allowed: str) -> None:
    base = {"budget": {"limit": 10.0}, **changes}
    with pytest.raises(ValueError) as err:
        TenantConfig.model_validate(base)
    assert field in str(err.value) and allowed in str(err.value)


def test_with_changes_validates() -> None:
    config = TenantConfig(budget={"limit": 5})  # type: ignore[arg-type]
    assert config.with_changes(policy="reject").policy == "reject"
    with pytest.raises(ValueError, match="max_llm_share"):
        config.with_changes(max_llm_share=-0.1)


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITER_TENANCY_STORE_URL", "redis://redis:6379/0")
    monkeypatch.setenv("CITER_TENANCY_RESERVATION_TTL_S", "0.5")
    with pytest.raises(ValueError, match=r"reservation_ttl_s[\s\S]*\[1, 86400\]"):
        TenancySettings()
    monkeypatch.setenv("CITER_TENANCY_RESERVATION_TTL_S", "120")
    settings = TenancySettings()
    assert settings.store_url == "redis://redis:6379/0" and settings.reservation_ttl_s == 120
