"""Racing: a trial of an untrained arm is scored batch by batch and stopped once clearly behind.

Every trial of an arm answers the validation pairs in the same (seeded) order, so after n pairs
a trial and the leader (the best finished trial, the default at first) can be compared pair by
pair on the same n. The trial reports its running mean to Optuna as an intermediate value (step
= pairs answered) and its per-pair scores so far in a user attribute; `RacePruner` stops it
- at any batch, when the 95% paired-bootstrap interval of (trial - leader) over those pairs lies
  wholly below 0 (clearly behind), and
- with rungs (`tuning.racing: rungs`, the default), at 16, 48, 144, ... pairs (x3 each), when it
  is not ahead of the leader on the same pairs: successive halving against the leader.

Rungs are what make validating on every training pair affordable. Waiting for "clearly behind"
alone let a setting as good as the default answer every pair (on the sample, 294 answers per
trial: the quick budget's 600 s ran out after two or three trials). A setting is adopted only on
evidence (its paired gain's 95% lower bound above 0 over all validation pairs), so the trade is
a real gain missed now and then, never noise adopted: a gain just large enough to clear that
bound on 294 pairs (1.96 standard errors) is ahead on the first 16 pairs 68% of the time and on
the first 48 79%; twice that gain, 82% and 94%. A setting no better than the leader goes on past
each rung about half the time (ties stop: they have shown nothing the leader lacks). Finalists
answer every pair; the rest a few batches. A
trial that reports no racing scores (a trained arm reporting its validation loss) is left to the
fallback pruner (successive halving on the loss).

The default answers only as far as a rival needs. Its own trial stops at the first rung; a rival
that goes past the pairs the default has answered answers the default on them as well (with the
default's settings, batch by batch, the same batches as its own) and records them under
DEFAULT_ATTR, so the two are always compared on the same pairs. The default is measured on every
validation pair exactly when some rival is (a finalist), which the evidence rule needs; when
every rival stops at the first rung, the default was kept after 16 answers instead of all of
them. On the sample with the bundled model the default's own trial was most of an untrained
arm's search (336 of 772 s for RAG, 1,127 of 1,730 s for few-shot on split seed 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.stats.intervals import bootstrap_ci

RACE_ATTR = "racing"  # a running trial's per-pair validation scores so far
# The default's per-pair scores as far as a rival answered them for it (a prefix of the pairs).
DEFAULT_ATTR = "default_scores"
# Pairs a trial answers before it can be raced out: fewer make the bootstrap interval too
# narrow to trust (it underestimates the spread of a mean of a handful of scores).
MIN_RACE_PAIRS = 16
RUNG_FACTOR = 3  # rungs at MIN_RACE_PAIRS x 3^k pairs


def rung_between(before: int, now: int, first: int = MIN_RACE_PAIRS) -> int | None:
    """The rung (pairs) a trial passed going from `before` to `now` answered pairs, or None."""
    rung = first
    while rung <= now:
        if rung > before:
            return rung
        rung *= RUNG_FACTOR
    return None


def not_ahead(running: Sequence[float], leader: Sequence[float]) -> bool:
    """Whether `running` scores no higher in total than the leader's on the same first pairs."""
    n = len(running)
    return sum(map(float, running)) <= sum(map(float, leader[:n])) + 1e-9


def expected_answers(n_val: int, first: int = MIN_RACE_PAIRS) -> float:
    """Pairs a trial after the default is expected to answer under rungs, if it goes on past
    each rung half the time (a setting about as good as the leader): the estimate's figure."""
    total, reach, done, rung = 0.0, 1.0, 0, first
    while done < n_val:
        upto = min(rung, n_val)
        total += reach * (upto - done)
        done, reach, rung = upto, reach / 2, rung * RUNG_FACTOR
    return total


def default_scores(study: Any) -> list[float] | None:
    """The default's per-pair validation scores so far: the longest of its own trial's and
    those rivals answered for it (running rivals included); None before its trial finished."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    own = next(
        (t for t in trials if t.user_attrs.get("default") and t.state == TrialState.COMPLETE),
        None,
    )
    if own is None or not own.user_attrs.get("scores"):
        return None
    known = [list(own.user_attrs["scores"])]
    known += [list(t.user_attrs[DEFAULT_ATTR]) for t in trials if t.user_attrs.get(DEFAULT_ATTR)]
    return max(known, key=len)


def contenders(study: Any) -> list[tuple[Any, list[float]]]:
    """The complete trials that stand for a setting of their own (a redraw repeats another),
    each with its per-pair scores: the default's as far as they are known."""
    from optuna.trial import TrialState

    lead = default_scores(study)
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("default"):
            if lead:
                out.append((t, lead))
        elif t.user_attrs.get("scores") and "repeat_of" not in t.user_attrs:
            out.append((t, list(t.user_attrs["scores"])))
    return out


def best_of(done: list[tuple[Any, list[float]]]) -> tuple[Any, list[float]]:
    """The contender with the highest mean score (ties: the default)."""

    def rank(ts: tuple[Any, list[float]]) -> tuple[float, bool]:
        return sum(ts[1]) / len(ts[1]), bool(ts[0].user_attrs.get("default"))

    return max(done, key=rank)


def leader_scores(study: Any) -> list[float] | None:
    """Per-pair scores of the study's best complete setting (ties: the default), or None. A
    rival that finished answered every pair, and so did the default then (for it)."""
    done = contenders(study)
    return best_of(done)[1] if done else None


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
    per-pair scores under RACE_ATTR against the leader (clearly behind at any batch; with
    `rungs`, not ahead at a rung), defers the others to `fallback`."""

    def __init__(
        self,
        fallback: Any,
        min_pairs: int = MIN_RACE_PAIRS,
        confidence: float = 0.95,
        seed: int = 0,
        groups: Sequence[int] | None = None,
        rungs: bool = True,
    ):
        self.fallback, self.min_pairs, self.rungs = fallback, min_pairs, rungs
        self.confidence, self.seed, self.groups = confidence, seed, groups

    def prune(self, study: Any, trial: Any) -> bool:
        running = trial.user_attrs.get(RACE_ATTR)
        if running is None:
            return bool(self.fallback.prune(study, trial))
        leader = leader_scores(study)
        if leader is None or len(leader) < len(running):
            return False
        n = len(running)
        if clearly_behind(running, leader, self.min_pairs, self.confidence, self.seed, self.groups):
            return True
        if not self.rungs:
            return False
        before = max((step for step in trial.intermediate_values if step < n), default=0)
        return rung_between(before, n, self.min_pairs) is not None and not_ahead(running, leader)
