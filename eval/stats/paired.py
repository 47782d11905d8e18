"""Paired significance: is one strategy's lead real, on the same questions (one run or two)?"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from eval.metrics import DEFAULT_METRIC, metric_label
from eval.stats.groups import group_codes, group_sums, labels_of, n_groups

EXACT_MAX = 14  # up to this many groups with a non-zero difference, every sign pattern is tried
TIE_TOL = 1e-12  # float sums of the same values in another order must still count as ties


@dataclass
class PairedTest:
    """A two-sided paired sign-flip permutation test on per-question score differences (a - b),
    flipping whole groups (eval.stats.groups) where the questions have them."""

    a: str
    b: str
    metric: str
    n: int  # questions scored for both
    mean_diff: float | None
    p_value: float | None
    significant: bool
    exact: bool  # every sign pattern enumerated (few groups differ) rather than sampled
    groups: int | None = None  # independent groups among the n questions

    def sentence(self) -> str:
        if self.n == 0 or self.p_value is None:
            return (
                f"{self.a} and {self.b} share no scored questions on {metric_label(self.metric)}."
            )
        verdict = "significant" if self.significant else "not significant"
        units = "" if self.groups in (None, self.n) else f" in {self.groups} independent groups"
        return (
            f"{self.a} − {self.b} on {metric_label(self.metric)}: {self.mean_diff:+.3f} over "
            f"{self.n} questions{units}, p = {self.p_value:.3g} ({verdict} at 0.05)."
        )


def sign_flip_p(
    sums: np.ndarray, n: int, *, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, bool]:
    """(p, exact) of the two-sided sign-flip test of the mean difference: `sums` are the
    groups' summed differences (a question's own difference when it is its own group), `n` the
    questions. Under the null the sign of each group's sum is a coin flip (the strategy labels
    swapped for the whole group at once). Groups summing to 0 do not change the statistic, so
    with up to EXACT_MAX non-zero groups every pattern of the others is enumerated (exact p);
    above, `n_resamples` seeded random patterns with the +1 correction, so p is never 0."""
    d = np.asarray(sums, dtype=np.float64)
    d = d[d != 0.0]
    if d.size == 0:
        return 1.0, True
    observed = abs(d.sum()) / n
    if d.size <= EXACT_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=int(d.size))))
        stats = np.abs(signs @ d) / n
        return float(np.mean(stats >= observed - TIE_TOL)), True
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_resamples, d.size))
    stats = np.abs(signs @ d) / n
    return float((1 + np.sum(stats >= observed - TIE_TOL)) / (1 + n_resamples)), False


def paired_test(
    a: dict[str, float],
    b: dict[str, float],
    *,
    names: tuple[str, str] = ("a", "b"),
    metric: str = DEFAULT_METRIC,
    groups: Mapping[str, str] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedTest:
    """Sign-flip permutation test (`sign_flip_p`) on the questions both score dicts
    ({qid: score}) share. `groups` (qid -> group id) flips the questions of one group together;
    without it every question is its own group. Identical scores give p = 1."""
    common = [q for q in a if q in b]
    d = np.asarray([a[q] - b[q] for q in common], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return PairedTest(*names, metric, 0, None, None, False, True, 0)
    codes = group_codes(labels_of(common, groups), n)
    p, exact = sign_flip_p(group_sums(d, codes), n, n_resamples=n_resamples, seed=seed)
    mean = float(d.mean()) if np.any(d) else 0.0
    return PairedTest(*names, metric, n, mean, p, p < alpha, exact, n_groups(codes))
