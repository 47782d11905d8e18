"""Statistical power of a paired comparison: the smallest difference a test set can detect,
computed for the test the comparison actually runs.

- Binary scores on independent questions: McNemar's exact test. Its power is exact: the
  number of discordant questions M is Binomial(n, q) (q the observed discordance rate) and,
  given M = m, the questions only the first got right are Binomial(m, (1 + gap / q) / 2); the
  power sums the exact test's rejection region over both.
- Anything else (graded scores, or questions in groups): the sign-flip permutation test, whose
  power is simulated, seeded: whole groups of the observed differences, centred and shifted by
  the candidate gap, are drawn with replacement and each draw is tested with its own random
  sign patterns (the same draws for every gap, so power rises with the gap).

The minimum detectable gap is the smallest gap with power >= `power` at level `alpha` (found by
bisection); None when no gap the data allow reaches it (too few discordant questions or groups).
The normal-approximation formulas below (Cohen 1988, ch. 2),

    MDD = (z[1 - alpha/2] + z[power]) * s / sqrt(n),   n = ceil(((z + z) * s / delta) ** 2),

only seed those searches and size question counts too large to simulate: at the gap they call
"80% power" the exact tests reach only 0.69-0.77. Power is that of one test at `alpha`;
Holm's correction over several pairs makes the first test in the family stricter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
from scipy.stats import binom

from eval.stats.groups import group_codes, group_sums, labels_of, n_groups

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


MAX_NEEDED = 1_000_000  # questions: beyond, "needs more than a million" is answer enough
SIM_GROUPS = 200  # above this many groups the count needed comes from the normal formula
N_SIMS, N_FLIPS = 500, 500  # simulated data sets, and sign patterns testing each


def mcnemar_power(n: int, discordant: float, gap: float, *, alpha: float = ALPHA) -> float:
    """Exact power of the two-sided exact McNemar test (reject when p < alpha) on `n`
    independent questions with discordance rate `discordant` and a true gap `gap` (share only
    the first got right minus share only the second got right)."""
    if n < 1 or discordant <= 0:
        return 0.0
    theta = min(1.0, max(0.0, (1.0 + gap / discordant) / 2.0))
    m = np.arange(n + 1)
    # the largest k with 2 P(X <= k) < alpha under Binomial(m, 1/2): reject when min(B, m-B) <= k
    k = binom.ppf(alpha / 2, m, 0.5)
    k = np.where(2 * binom.cdf(k, m, 0.5) < alpha, k, k - 1)
    reject = np.where(
        k >= 0, binom.cdf(k, m, theta) + binom.sf(m - k - 1, m, theta), 0.0
    )  # lower and upper tails, disjoint since k < m / 2
    return float(np.sum(binom.pmf(m, n, discordant) * reject))


def _bisect(power_at, lo: float, hi: float, target: float, steps: int = 30) -> float | None:
    """The smallest x in (lo, hi] with power_at(x) >= target (power rising in x), or None."""
    if power_at(hi) < target:
        return None
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power_at(mid) >= target else (mid, hi)
    return hi


class SignFlipPower:
    """Simulated power of the grouped sign-flip test (eval.stats.paired) on data like the
    observed differences `diffs` (one group label per difference in `labels`, or none)."""

    def __init__(self, diffs, labels=None, *, alpha: float = ALPHA, seed: int = 0):
        d = np.asarray(diffs, dtype=np.float64)
        codes = group_codes(labels, int(d.size))
        self.alpha, self.seed = alpha, seed
        self.centred = group_sums(d - d.mean(), codes)  # no true difference left
        self.sizes = np.bincount(codes).astype(np.float64)
        self.groups = n_groups(codes)
        self._draws: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _draw(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        if g not in self._draws:
            rng = np.random.default_rng(self.seed)
            idx = rng.integers(0, self.groups, size=(N_SIMS, g))
            signs = rng.choice((1.0, -1.0), size=(g, N_FLIPS))
            self._draws[g] = (idx, signs)
        return self._draws[g]

    def power(self, gap: float, groups: int | None = None) -> float:
        """Share of simulated test sets of `groups` groups (default: as many as observed) with
        true mean difference `gap` in which the test finds p < alpha."""
        g = groups or self.groups
        idx, signs = self._draw(g)
        sums = self.centred[idx] + gap * self.sizes[idx]  # (sims, groups)
        n = self.sizes[idx].sum(axis=1, keepdims=True)
        observed = np.abs(sums.sum(axis=1, keepdims=True)) / n
        flipped = np.abs(sums @ signs) / n  # (sims, flips)
        p = (1 + np.sum(flipped >= observed - 1e-12, axis=1)) / (1 + N_FLIPS)
        return float(np.mean(p < self.alpha))


@dataclass
class PowerLine:
    """What one paired comparison can tell: its n (and independent groups), the spread of the
    differences, the smallest detectable difference for the test run (`test`), and the
    questions a chosen difference would need."""

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
    test: str = "normal approximation"
    groups: int | None = None
    needed_approx: bool = False  # n_needed from the normal formula (too many to simulate)

    @property
    def detectable(self) -> bool:
        """Whether the observed gap is at least what this test set can detect."""
        return (
            self.mdd is not None and self.mean_diff is not None and abs(self.mean_diff) >= self.mdd
        )

    def sentence(self) -> str:
        """'rag vs lora: 40 questions detect a gap of 0.12 or more; 0.05 would need 230.'"""
        if self.n < 2:
            return f"{self.a} vs {self.b}: too few shared questions ({self.n}) to judge power."
        if not self.sd:
            return (
                f"{self.a} vs {self.b}: the difference is {self.mean_diff or 0.0:+.3f} on every "
                f"one of the {self.n} questions, so there is no spread to judge power from."
            )
        units = f"{self.n} questions"
        if self.groups is not None and self.groups != self.n:
            units += f" ({self.groups} groups)"
        how = f"{self.power:.0%} power, alpha {self.alpha:g}, {self.test}"
        if self.n_needed is None:
            need = f"{self.target:g} would need more than {MAX_NEEDED:,} questions"
        else:
            approx = "about " if self.needed_approx else ""
            need = f"{self.target:g} would need {approx}{self.n_needed:,} questions"
        if self.mdd is None:
            return f"{self.a} vs {self.b}: {units} cannot detect any gap ({how}); {need}."
        return (
            f"{self.a} vs {self.b}: {units} detect a gap of {self.mdd:.3f} or more ({how}); {need}."
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "detectable": self.detectable, "sentence": self.sentence()}


def _mcnemar_needed(discordant: float, target: float, alpha: float, power: float) -> int | None:
    """Smallest n (doubling, then bisection) at which the exact test reaches `power`."""
    if target <= 0 or target > discordant:
        return None
    hi = 2
    while mcnemar_power(hi, discordant, target, alpha=alpha) < power:
        hi *= 2
        if hi > MAX_NEEDED:
            return None
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (
            (lo, mid)
            if mcnemar_power(mid, discordant, target, alpha=alpha) >= power
            else (
                mid,
                hi,
            )
        )
    return hi


def power_line(
    a_scores: Mapping[str, float],
    b_scores: Mapping[str, float],
    *,
    names: tuple[str, str],
    metric: str,
    target: float,
    groups: Mapping[str, str] | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
    seed: int = 0,
) -> PowerLine:
    """Power figures of the paired comparison a - b on the questions both ({qid: score})
    share, for the test the comparisons run on them: exact McNemar for binary scores on
    ungrouped questions, else the (grouped) sign-flip test, simulated. Differences without
    spread give an MDD of 0 and a sentence saying the scores do not vary."""
    common = [q for q in a_scores if q in b_scores]
    pa, pb = [a_scores[q] for q in common], [b_scores[q] for q in common]
    diffs = [x - y for x, y in zip(pa, pb, strict=True)]
    n = len(diffs)
    sd = paired_sd(diffs)
    mean = sum(diffs) / n if n else None
    labels = labels_of(common, groups)
    g = len(set(labels)) if labels is not None else n
    binary = n > 0 and all(v in (0.0, 1.0) for v in pa + pb)
    args = (*names, metric, n, mean, sd)
    if sd is None or sd == 0:
        mdd = 0.0 if sd == 0 else None
        return PowerLine(*args, mdd, target, None, alpha, power, "no spread", g)
    if binary and g == n:
        q = sum(1 for d in diffs if d != 0) / n
        mdd = _bisect(lambda x: mcnemar_power(n, q, x, alpha=alpha), 0.0, q, power)
        needed = _mcnemar_needed(q, target, alpha, power)
        return PowerLine(*args, mdd, target, needed, alpha, power, "McNemar exact", g)
    sim = SignFlipPower(diffs, labels, alpha=alpha, seed=seed)
    spread = float(np.std(sim.centred, ddof=1)) if g > 1 else 0.0  # of the group sums
    size = n / g  # questions per group, on average
    # a gap this large moves every group sum beyond the spread: the search's upper end
    hi = 4 * _z_sum(alpha, power) * max(spread, 1e-9) / (size * math.sqrt(max(g, 1))) + 1e-9
    hi = max(hi, 2 * max(abs(d) for d in diffs))
    mdd = _bisect(sim.power, 0.0, hi, power, steps=12)
    n_groups_needed = questions_needed(spread / size, target, alpha=alpha, power=power)
    approx = True
    if n_groups_needed is not None and n_groups_needed <= SIM_GROUPS:
        # refine with the simulated test around the normal formula's count
        lo, up = max(1, n_groups_needed // 2), min(SIM_GROUPS, 2 * n_groups_needed)
        if sim.power(target, up) >= power:
            while up - lo > 1:
                mid = (lo + up) // 2
                lo, up = (lo, mid) if sim.power(target, mid) >= power else (mid, up)
            n_groups_needed, approx = up, False
    needed = None if n_groups_needed is None else math.ceil(n_groups_needed * size)
    test = "sign-flip, simulated" + (" over groups" if g != n else "")
    return PowerLine(*args, mdd, target, needed, alpha, power, test, g, approx)


def paired_sd(diffs: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1) of paired differences; None for fewer than two."""
    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
