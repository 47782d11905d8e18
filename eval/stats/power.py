"""Statistical power of a paired comparison: the smallest difference a test set can detect.

For paired per-question differences d with standard deviation s over n questions, a two-sided
test at level alpha has power `power` against a true mean difference

    MDD = (z[1 - alpha/2] + z[power]) * s / sqrt(n)

(the normal approximation of the paired t-test; the sign-flip permutation test the dashboards
run has the same large-sample power). Turned around, a chosen difference delta needs

    n = ceil(((z[1 - alpha/2] + z[power]) * s / delta) ** 2)

questions. Both are the textbook formulas (e.g. Cohen 1988, ch. 2); no scipy needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

ALPHA = 0.05
POWER = 0.8


def _z_sum(alpha: float, power: float) -> float:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must be in (0, 1)")
    z = NormalDist().inv_cdf
    return z(1 - alpha / 2) + z(power)


def min_detectable_difference(
    sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """The smallest true mean difference detected with probability `power` at level `alpha`,
    for paired differences with standard deviation `sd` over `n` questions (None for n < 2)."""
    if n < 2:
        return None
    return _z_sum(alpha, power) * sd / math.sqrt(n)


def questions_needed(
    sd: float, delta: float, *, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Questions needed to detect a true mean difference `delta` (None when delta <= 0; 2 at
    least, since a spread needs two questions)."""
    if delta <= 0:
        return None
    return max(2, math.ceil((_z_sum(alpha, power) * sd / delta) ** 2))


@dataclass
class PowerLine:
    """What one paired comparison can tell: its n, the spread of the differences, the smallest
    detectable difference, and the questions a chosen difference would need."""

    a: str
    b: str
    metric: str
    n: int
    mean_diff: float | None
    sd: float | None
    mdd: float | None
    target: float
    n_needed: int | None
    alpha: float = ALPHA
    power: float = POWER

    @property
    def detectable(self) -> bool:
        """Whether the observed gap is at least what this test set can detect."""
        return (
            self.mdd is not None and self.mean_diff is not None and abs(self.mean_diff) >= self.mdd
        )

    def sentence(self) -> str:
        """'rag vs lora: 40 questions detect a gap of 0.12 or more; 0.05 would need 230.'"""
        if self.mdd is None:
            return f"{self.a} vs {self.b}: too few shared questions ({self.n}) to judge power."
        if not self.sd:
            return (
                f"{self.a} vs {self.b}: the difference is {self.mean_diff:+.3f} on every one of "
                f"the {self.n} questions, so there is no spread to judge power from."
            )
        need = f"{self.target:g} would need {self.n_needed:,} questions"
        return (
            f"{self.a} vs {self.b}: {self.n} questions detect a gap of {self.mdd:.3f} or more "
            f"({self.power:.0%} power, alpha {self.alpha:g}); {need}."
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "detectable": self.detectable, "sentence": self.sentence()}


def power_line(
    a_scores: Mapping[str, float],
    b_scores: Mapping[str, float],
    *,
    names: tuple[str, str],
    metric: str,
    target: float,
    alpha: float = ALPHA,
    power: float = POWER,
) -> PowerLine:
    """Power figures of the paired comparison a - b on the questions both ({qid: score}) share.

    Differences without spread (sd 0: e.g. two strategies scoring alike everywhere) give an MDD
    of 0, as the formula says; the sentence then says the scores do not vary instead.
    """
    common = [q for q in a_scores if q in b_scores]
    diffs = [a_scores[q] - b_scores[q] for q in common]
    n = len(diffs)
    sd = paired_sd(diffs)
    mean = sum(diffs) / n if n else None
    mdd = min_detectable_difference(sd, n, alpha=alpha, power=power) if sd is not None else None
    needed = questions_needed(sd, target, alpha=alpha, power=power) if sd is not None else None
    return PowerLine(*names, metric, n, mean, sd, mdd, target, needed, alpha, power)


def paired_sd(diffs: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1) of paired differences; None for fewer than two."""
    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
