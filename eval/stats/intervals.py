"""Statistics over per-question scores: means with bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.stats.groups import group_codes, group_sums, n_groups, small_sample_scale, widen


@dataclass
class Interval:
    """A mean over `n` scored questions and its 95% interval; all None when no question was
    scored (the metric does not apply). The store keeps it as {"mean", "low", "high", "n"}."""

    mean: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def to_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Interval:
        """The interval from its stored form; missing keys (or no dict) read as not measured."""
        d = d or {}
        return cls(d.get("mean"), d.get("low"), d.get("high"), int(d.get("n") or 0))


def intervals_from_dict(d: Mapping[str, Any] | None) -> dict[str, Interval]:
    """{metric: Interval} from the stored {metric: {"mean", "low", "high", "n"}}."""
    return {m: Interval.from_dict(iv) for m, iv in (d or {}).items()}


def intervals_to_dict(intervals: Mapping[str, Interval]) -> dict[str, dict]:
    """The stored form of {metric: Interval}: the inverse of `intervals_from_dict`."""
    return {m: iv.to_dict() for m, iv in intervals.items()}


def bootstrap_ci(
    scores: Sequence[float | None],
    *,
    groups: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Mean of the non-None scores and its percentile bootstrap interval.

    `groups` (one label per score, eval.stats.groups) makes it a cluster bootstrap: whole
    groups are drawn with replacement and each resample's mean is its questions' mean (the
    ratio of the drawn groups' sums to their sizes). Without groups every question is its own
    group, the plain bootstrap. The percentile ends are widened by `small_sample_scale` (a
    t-adjusted percentile interval; a few percent at 25 groups, nothing at hundreds), so that
    few groups still cover 95%. Seeded, so the same scores give the same interval.
    No scores -> all None; one score (or one group) -> a zero-width interval.
    """
    keep = [i for i, s in enumerate(scores) if s is not None]
    x = np.asarray([scores[i] for i in keep], dtype=np.float64)
    if x.size == 0:
        return Interval(None, None, None, 0)
    mean = float(x.mean())
    codes = group_codes(None if groups is None else [groups[i] for i in keep], x.size)
    g = n_groups(codes)
    if g == 1:
        return Interval(mean, mean, mean, int(x.size))
    means = cluster_bootstrap_means(x, codes, n_resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    ends = np.quantile(means, [alpha, 1.0 - alpha])
    low, high = widen(mean, ends, small_sample_scale(g, confidence), x.min(), x.max())
    return Interval(mean, float(low), float(high), int(x.size))


def cluster_bootstrap_means(
    x: np.ndarray, codes: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """The means of `n_resamples` seeded cluster bootstrap resamples of `x` (group codes from
    eval.stats.groups): G groups drawn with replacement, each resample's mean the drawn groups'
    summed scores over their summed sizes. Singleton groups give the plain bootstrap's draws."""
    g = n_groups(codes)
    sums, sizes = group_sums(x, codes), np.bincount(codes).astype(np.float64)
    idx = np.random.default_rng(seed).integers(0, g, size=(n_resamples, g))
    return sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, or None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
