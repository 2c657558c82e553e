"""Pure cost arithmetic: worst case before a request, actual cost after it.

Units: prices are cost units per 1k tokens, results are cost units (floats).
Stores convert to integer micro-units (``to_micros``) so that sums are exact
and identical in Python and in Redis Lua.

Token accounting (what the engine reports when a request ends):
- ``slm_prompt``: prompt tokens the SLM read (may include LLM-written tokens it
  had to read back; the worst case below covers both conventions);
- ``slm_completion`` / ``llm_completion``: committed answer tokens by author;
- ``llm_prompt``: prompt tokens the LLM prefilled plus catch-up tokens (SLM
  tokens committed since the LLM's last call). Cropped drafts (the SLM's, and
  those the LLM was fed to verify and dropped) are not billed.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.tenancy.config import PERIOD_SECONDS, Period, Prices

MICROS = 1_000_000  # micro-units per cost unit
PER_TOKENS = 1_000  # prices are quoted per this many tokens


@dataclass(frozen=True)
class TokenCounts:
    slm_prompt: int = 0
    slm_completion: int = 0
    llm_prompt: int = 0
    llm_completion: int = 0

    @property
    def llm_share(self) -> float:
        """LLM-written / all completion tokens (0 when nothing was written)."""
        total = self.slm_completion + self.llm_completion
        return self.llm_completion / total if total else 0.0


def worst_case_cost(
    prices: Prices, prompt_tokens: int, max_tokens: int, llm_allowed: bool
) -> float:
    """Most a request can cost (cost units) with ``prompt_tokens`` and ``max_tokens``.

    This bounds what the scheduler reports (``engines.stats.RequestStats``):
    both models prefill the prompt, and every answer token is written by one
    model and may then be read by *both*: the SLM reads back each step's last
    committed token (its own last draft or the LLM's token) and the LLM's
    catch-up covers every token since its last call, its own last one included.
    SLM only: the SLM reads the prompt, writes every answer token and reads it back.
    """
    if prompt_tokens < 0 or max_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got {prompt_tokens=}, {max_tokens=}")
    prompt = prompt_tokens * prices.slm_prompt  # cost units * 1k
    per_answer_token = prices.slm_completion + prices.slm_prompt
    if llm_allowed:
        prompt += prompt_tokens * prices.llm_prompt
        per_answer_token = (
            max(prices.slm_completion, prices.llm_completion)
            + prices.slm_prompt
            + prices.llm_prompt
        )
    return (prompt + max_tokens * per_answer_token) / PER_TOKENS


def actual_cost(
    prices: Prices, slm_prompt: int, slm_completion: int, llm_prompt: int, llm_completion: int
) -> float:
    """What the tokens actually processed cost (cost units); also for aborted/failed runs."""
    counts = (slm_prompt, slm_completion, llm_prompt, llm_completion)
    if min(counts) < 0:
        raise ValueError(f"token counts must be >= 0, got {counts}")
    return (
        slm_prompt * prices.slm_prompt
        + slm_completion * prices.slm_completion
        + llm_prompt * prices.llm_prompt
        + llm_completion * prices.llm_completion
    ) / PER_TOKENS


def cost_of(prices: Prices, tokens: TokenCounts) -> float:
    return actual_cost(
        prices, tokens.slm_prompt, tokens.slm_completion, tokens.llm_prompt, tokens.llm_completion
    )


def to_micros(cost: float) -> int:
    """Cost units -> integer micro-units (monotonic, so worst >= actual survives rounding)."""
    return round(cost * MICROS)


def from_micros(micros: int) -> float:
    return micros / MICROS


def window(period: Period, now: float) -> tuple[int, int | None]:
    """(start, reset_at) in epoch seconds of the fixed window holding ``now``.

    ``none`` is one window from the epoch that never resets (reset_at None).
    """
    seconds = PERIOD_SECONDS[period]
    if not seconds:
        return 0, None
    start = int(now // seconds) * seconds
    return start, start + seconds
