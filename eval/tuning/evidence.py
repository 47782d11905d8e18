"""Whether a tuned setting replaces the default: paired gains on validation, cross-fitted.

The best of a dozen settings on the pairs that chose it looks better than it is (the winner's
curse): on 15-29 validation pairs every tuned arm of the sample "gained" and two did worse on the
test split. So the gain shown is also measured on pairs that did not choose it: the validation
pairs are cut into two halves by near-duplicate group; the best setting on half A is measured
against the default on half B and the best on B against the default on A; the pooled per-pair
differences give the cross-fitted gain (the size-weighted average of the two halves' gains) and
its paired bootstrap interval (whole near-duplicate groups resampled). Under the `evidence`
rule the best setting replaces the default only when the 95% lower bounds of both its plain
gain and the cross-fitted gain are above 0.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.qa import near_duplicate_groups
from core.types import QAPair
from eval.stats.intervals import Interval, bootstrap_ci


def group_labels(pairs: list[QAPair], jaccard: float) -> list[int]:
    """Each pair's near-duplicate group (a number): the independent units the paired
    bootstraps resample whole (eval.stats.intervals.bootstrap_ci's `groups`)."""
    labels = [0] * len(pairs)
    for k, g in enumerate(near_duplicate_groups(pairs, jaccard)):
        for i in g:
            labels[i] = k
    return labels


def halves(pairs: list[QAPair], jaccard: float, seed: int) -> tuple[list[int], list[int]] | None:
    """Indices of `pairs` in two halves, near-duplicate groups kept whole (seeded: each group,
    largest first then shuffled, goes to the smaller half); None with fewer than two groups."""
    groups = near_duplicate_groups(pairs, jaccard)
    if len(groups) < 2:
        return None
    random.Random(seed).shuffle(groups)
    groups.sort(key=len, reverse=True)  # stable: equal sizes keep their shuffled order
    a: list[int] = []
    b: list[int] = []
    for g in groups:
        (a if len(a) <= len(b) else b).extend(g)
    return sorted(a), sorted(b)


def _best_on(candidates: Sequence[Sequence[float]], idx: list[int]) -> int:
    """Index of the candidate with the highest mean over `idx` (ties: the earliest, which is
    the default when it comes first)."""
    means = [sum(c[i] for i in idx) / len(idx) for c in candidates]
    return max(range(len(candidates)), key=lambda k: (means[k], -k))


def crossfit_diffs(
    default: Sequence[float],
    candidates: Sequence[Sequence[float]],
    split: tuple[list[int], list[int]],
) -> list[float]:
    """Per-pair (chosen - default) differences, each pair's chosen setting picked on the other
    half. `candidates` are every complete trial's per-pair scores, the default's first."""
    a, b = split
    diffs = [0.0] * len(default)
    for choose_on, measure_on in ((a, b), (b, a)):
        pick = candidates[_best_on(candidates, choose_on)]
        for i in measure_on:
            diffs[i] = float(pick[i]) - float(default[i])
    return diffs


@dataclass
class Evidence:
    """The best setting's gain over the default on validation, plain and cross-fitted."""

    gain: Interval  # on every validation pair, the ones that chose it
    crossfit: Interval | None  # on pairs that did not choose it (None: one group only)

    @property
    def convincing(self) -> bool:
        """Both 95% lower bounds above 0 (a cross-fitted gain is required)."""
        return all(
            g is not None and g.low is not None and g.low > 0.0 for g in (self.gain, self.crossfit)
        )


def weigh(
    default: Sequence[float],
    best: Sequence[float],
    candidates: Sequence[Sequence[float]],
    split: tuple[list[int], list[int]] | None,
    seed: int = 0,
    groups: Sequence[int] | None = None,
) -> Evidence:
    """The paired gains of `best` over `default` (per-pair scores on the same validation
    pairs), with seeded bootstrap intervals resampling whole `groups` (one label per pair;
    None: each pair its own); `candidates` (default first) feed the cross-fit."""
    diffs = [float(x) - float(d) for x, d in zip(best, default, strict=True)]
    gain = bootstrap_ci(diffs, groups=groups, seed=seed)
    cross = None
    if split is not None:
        crossed = crossfit_diffs(default, candidates, split)
        cross = bootstrap_ci(crossed, groups=groups, seed=seed)
    return Evidence(gain, cross)
