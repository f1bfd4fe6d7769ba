"""Decision rules of the claims ledger: an interval against a threshold fixed before the run.

Every claim is judged the same way (issue 15, "Claims as data"): a measurement gives a point
estimate, its 95% interval (rliable's stratified bootstrap or a seeded bootstrap, see
:mod:`maxbench.repro.claims.statistics`) and the number of independent runs behind it; the
claim's rule, written in ``suites/claims/claims.yaml`` before anything ran, turns that into one
of four verdicts:

* ``above t`` — holds when the whole interval lies above ``t`` (low > t), fails when it lies at
  or below ``t`` (high <= t), inconclusive when it straddles ``t``;
* ``below t`` — the mirror image: holds when high < t, fails when low >= t;
* ``within [a, b]`` — holds when the interval lies inside [a, b], fails when it lies entirely
  outside, inconclusive when it overlaps an end;
* fewer runs than the claim's minimum: inconclusive whatever the interval; no runs at all (the
  experiment has not been run at this scale): not run.

A claim with several tests holds when every test holds; it fails when any test fails; otherwise
it is not run when a test was not run, else inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Estimate",
    "Judgement",
    "Missing",
    "Rule",
    "Verdict",
    "combine",
    "judge",
]


class Verdict(str, Enum):
    """The four verdicts of the ledger."""

    holds = "holds"
    fails = "fails"
    inconclusive = "inconclusive"
    not_run = "not run"


@dataclass(frozen=True)
class Estimate:
    """A statistic, its 95% interval and the number of independent runs behind it."""

    value: float
    low: float
    high: float
    n: int
    detail: str = ""

    def text(self, digits: int = 3) -> str:
        """``value [low, high]`` with ``digits`` significant digits."""
        return f"{_g(self.value, digits)} [{_g(self.low, digits)}, {_g(self.high, digits)}]"


@dataclass(frozen=True)
class Missing:
    """No measurement: the experiment was not run at this scale (or its files are absent)."""

    reason: str


@dataclass(frozen=True)
class Rule:
    """``kind`` is ``above``, ``below`` or ``within``; ``low``/``high`` the threshold(s)."""

    kind: str
    low: float
    high: float

    @classmethod
    def parse(cls, data: object) -> Rule:
        """``{above: t}``, ``{below: t}`` or ``{within: [a, b]}`` (the catalogue's syntax)."""
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(
                f"a rule is one of {{above: t}}, {{below: t}}, {{within: [a, b]}}: got {data!r}"
            )
        ((kind, value),) = data.items()
        if kind in ("above", "below"):
            threshold = _number(value, kind)
            return cls(kind, threshold, threshold)
        if kind == "within":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError(f"within takes [low, high], got {value!r}")
            low, high = (_number(v, "within") for v in value)
            if low > high:
                raise ValueError(f"within [{low}, {high}]: low is above high")
            return cls(kind, low, high)
        raise ValueError(f"unknown rule {kind!r}: use above, below or within")

    def text(self) -> str:
        """The rule in words, e.g. ``holds if the 95% CI lies above 0``."""
        if self.kind == "above":
            return f"CI above {_g(self.low)}"
        if self.kind == "below":
            return f"CI below {_g(self.low)}"
        return f"CI within [{_g(self.low)}, {_g(self.high)}]"


@dataclass(frozen=True)
class Judgement:
    """A verdict and why."""

    verdict: Verdict
    reason: str


def judge(rule: Rule, estimate: Estimate | Missing, min_runs: int) -> Judgement:
    """Apply ``rule`` to ``estimate`` (see the module docstring)."""
    if isinstance(estimate, Missing):
        return Judgement(Verdict.not_run, estimate.reason)
    if not all(math.isfinite(x) for x in (estimate.value, estimate.low, estimate.high)):
        why = f" ({estimate.detail})" if estimate.detail else ""
        return Judgement(Verdict.inconclusive, f"the statistic is not defined{why}")
    if estimate.n < min_runs:
        return Judgement(
            Verdict.inconclusive, f"{estimate.n} runs, fewer than the rule's minimum {min_runs}"
        )
    low, high = estimate.low, estimate.high
    if rule.kind == "above":
        verdict = _verdict(low > rule.low, high <= rule.low)
    elif rule.kind == "below":
        verdict = _verdict(high < rule.low, low >= rule.low)
    else:
        inside = rule.low <= low and high <= rule.high
        outside = high < rule.low or low > rule.high
        verdict = _verdict(inside, outside)
    return Judgement(verdict, f"{estimate.text()} vs {rule.text()}")


def combine(verdicts: list[Verdict]) -> Verdict:
    """A claim's verdict from its tests' (see the module docstring)."""
    if not verdicts:
        return Verdict.not_run
    if Verdict.fails in verdicts:
        return Verdict.fails
    if Verdict.not_run in verdicts:
        return Verdict.not_run
    if Verdict.inconclusive in verdicts:
        return Verdict.inconclusive
    return Verdict.holds


def _verdict(holds: bool, fails: bool) -> Verdict:
    if holds:
        return Verdict.holds
    if fails:
        return Verdict.fails
    return Verdict.inconclusive


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} takes a finite number, got {value!r}")
    return float(value)


def _g(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without an exponent for ordinary sizes."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    text = f"{value:.{digits}g}"
    return "0" if text == "-0" else text
