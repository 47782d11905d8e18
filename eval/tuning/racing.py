"""Racing: a trial of an untrained arm is scored batch by batch and stopped once clearly behind.

Every trial of an arm answers the validation pairs in the same (seeded) order, so after n pairs
a trial and the leader (the best finished trial, the default at first) can be compared pair by
pair on the same n. The trial reports its running mean to Optuna as an intermediate value (step
= pairs answered) and its per-pair scores so far in a user attribute; `RacePruner` stops it when
the 95% paired-bootstrap interval of (trial - leader) over those pairs lies wholly below 0.
Finalists so answer every validation pair and clear losers a few batches, which is what makes
validating on all the training pairs affordable. A trial that reports no racing scores (a trained
arm reporting its validation loss) is left to the fallback pruner (successive halving).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.stats.intervals import bootstrap_ci

RACE_ATTR = "racing"  # a running trial's per-pair validation scores so far
# Pairs a trial answers before it can be raced out: fewer make the bootstrap interval too
# narrow to trust (it underestimates the spread of a mean of a handful of scores).
MIN_RACE_PAIRS = 16


def leader_scores(study: Any) -> list[float] | None:
    """Per-pair scores of the study's best complete trial (ties: the default), or None."""
    from optuna.trial import TrialState

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("scores")
    ]
    if not done:
        return None
    best = max(done, key=lambda t: (t.value, bool(t.user_attrs.get("default"))))
    return list(best.user_attrs["scores"])


def clearly_behind(
    running: Sequence[float],
    leader: Sequence[float] | None,
    min_pairs: int = MIN_RACE_PAIRS,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Sequence[int] | None = None,
) -> bool:
    """Whether `running` (a trial's scores on the first n validation pairs) is behind the
    leader's scores on the same n pairs beyond noise: the upper end of the paired bootstrap
    interval of their mean difference (whole `groups` resampled: one label per validation
    pair, None for each pair its own) is below 0."""
    n = len(running)
    if leader is None or n < min_pairs or len(leader) < n:
        return False
    diffs = [float(a) - float(b) for a, b in zip(running, leader[:n], strict=True)]
    labels = None if groups is None else list(groups[:n])
    high = bootstrap_ci(diffs, groups=labels, confidence=confidence, seed=seed).high
    return high is not None and high < 0.0


class RacePruner:
    """An Optuna pruner (its `prune(study, trial)` interface): races trials that report
    per-pair scores under RACE_ATTR against the leader, defers the others to `fallback`."""

    def __init__(
        self,
        fallback: Any,
        min_pairs: int = MIN_RACE_PAIRS,
        confidence: float = 0.95,
        seed: int = 0,
        groups: Sequence[int] | None = None,
    ):
        self.fallback, self.min_pairs = fallback, min_pairs
        self.confidence, self.seed, self.groups = confidence, seed, groups

    def prune(self, study: Any, trial: Any) -> bool:
        running = trial.user_attrs.get(RACE_ATTR)
        if running is None:
            return bool(self.fallback.prune(study, trial))
        return clearly_behind(
            running, leader_scores(study), self.min_pairs, self.confidence, self.seed, self.groups
        )
