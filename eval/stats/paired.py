"""Paired significance: is one strategy's lead real, on the same questions (one run or two)?"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from eval.metrics import DEFAULT_METRIC, metric_label


@dataclass
class PairedTest:
    """A two-sided paired sign-flip permutation test on per-question score differences (a - b)."""

    a: str
    b: str
    metric: str
    n: int  # questions scored for both
    mean_diff: float | None
    p_value: float | None
    significant: bool
    exact: bool  # every sign pattern enumerated (small n) rather than sampled

    def sentence(self) -> str:
        if self.n == 0 or self.p_value is None:
            return (
                f"{self.a} and {self.b} share no scored questions on {metric_label(self.metric)}."
            )
        verdict = "significant" if self.significant else "not significant"
        return (
            f"{self.a} − {self.b} on {metric_label(self.metric)}: {self.mean_diff:+.3f} over "
            f"{self.n} questions, p = {self.p_value:.3g} ({verdict} at 0.05)."
        )


def paired_test(
    a: dict[str, float],
    b: dict[str, float],
    *,
    names: tuple[str, str] = ("a", "b"),
    metric: str = DEFAULT_METRIC,
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedTest:
    """Sign-flip permutation test on the questions both score dicts ({qid: score}) share.

    Under the null the sign of each per-question difference is a coin flip. With up to 14
    questions all 2^n sign patterns are enumerated (exact p); above, `n_resamples` seeded random
    patterns with the +1 correction, so p is never 0. Identical scores give p = 1.
    """
    common = [q for q in a if q in b]
    d = np.asarray([a[q] - b[q] for q in common], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return PairedTest(*names, metric, 0, None, None, False, True)
    observed = abs(d.mean())
    if not np.any(d):
        return PairedTest(*names, metric, n, 0.0, 1.0, False, True)
    tol = 1e-12  # float sums of the same values in another order must still count as ties
    if n <= 14:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        stats = np.abs(signs @ d) / n
        p = float(np.mean(stats >= observed - tol))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice((1.0, -1.0), size=(n_resamples, n))
        stats = np.abs(signs @ d) / n
        p = float((1 + np.sum(stats >= observed - tol)) / (1 + n_resamples))
        exact = False
    return PairedTest(*names, metric, n, float(d.mean()), p, p < alpha, exact)
