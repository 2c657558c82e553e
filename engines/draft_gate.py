"""Speculative drafting's batch limit, kept true while serving (plain Python, no torch).

The start-up probe (``engines.spec_probe``) times the passes at each batch size and
predicts drafting's gain with an assumed share of drafts the LLM keeps (85%). A pair
whose models disagree more on the traffic it serves (another domain, another
language, sampled requests) gains less, and could lose where the probe said drafting
pays. So the gate counts the drafts the LLM actually checked and kept, and predicts the
limit again from the probe's pass times with that share:

    acceptance = (PRIOR_DRAFTS x assumed + kept) / (PRIOR_DRAFTS + checked)
    limit      = the last probed batch size whose gain >= 1 at that acceptance
                 (spec_probe.limit_for: stop at the first size that loses)

``kept`` and ``checked`` fade with a half-life of HALF_LIFE checked drafts, so the share
follows the traffic. While the measured share keeps drafting off (where the assumed one
would draft), nothing is checked; the evidence then halves every SHUT_HALF_LIFE such
steps, so the share drifts back to the assumption and drafting is tried again.

Without the probe's rows (a configured number) the limit is that number: a setting is
kept as set, and the share is still counted and reported. Tokens never depend on the
gate: speculative tokens are the LLM's own whether or not the SLM drafts.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.spec_probe import ACCEPTANCE, ProbeRow, limit_for

PRIOR_DRAFTS = 64.0  # the assumed share weighs as much as this many checked drafts
HALF_LIFE = 2048.0  # checked drafts after which an observation weighs half
SHUT_HALF_LIFE = 256.0  # steps shut by the measured share after which evidence weighs half


@dataclass
class DraftGate:
    fixed: int  # the configured limit: used as is when there are no probe rows
    rows: tuple[ProbeRow, ...] = ()  # the start-up probe's pass times per batch size
    window: int = 8
    assumed: float = ACCEPTANCE
    kept: float = 0.0  # faded count of drafts the LLM kept
    checked: float = 0.0  # faded count of drafts the LLM checked (kept or refused)
    shut_steps: int = 0  # steps the measured share kept drafting off (not faded)

    @property
    def acceptance(self) -> float:
        """The share of drafts the LLM keeps, the assumption blended with the counts."""
        return (PRIOR_DRAFTS * self.assumed + self.kept) / (PRIOR_DRAFTS + self.checked)

    def limit(self) -> int:
        """Speculative sequences draft while at most this many sequences run."""
        if not self.rows:
            return self.fixed
        return limit_for(self.rows, self.window, self.acceptance)

    def drafts(self, running: int, speculative: bool) -> bool:
        """Whether speculative sequences draft in a step with ``running`` sequences.
        ``speculative``: some run this step (a shut step fades the evidence)."""
        if running <= self.limit():
            return True
        if speculative and self.rows and running <= limit_for(self.rows, self.window,
                                                              self.assumed):  # fmt: skip
            self.shut_steps += 1
            self._fade(0.5 ** (1.0 / SHUT_HALF_LIFE))
        return False

    def observe(self, kept: int, checked: int) -> None:
        """Drafts the LLM checked in one step, and how many of them it kept."""
        if checked:
            self._fade(0.5 ** (checked / HALF_LIFE))
            self.kept += kept
            self.checked += checked

    def describe(self) -> dict:
        """The share, and the faded counts behind it (recent drafts weigh most; the
        totals are the citer:speculative_drafts_*_total counters)."""
        return {"assumed": self.assumed, "measured": round(self.acceptance, 4),
                "recent_checked": round(self.checked, 1), "recent_kept": round(self.kept, 1),
                "shut_steps": self.shut_steps}  # fmt: skip

    def _fade(self, factor: float) -> None:
        self.kept *= factor
        self.checked *= factor
