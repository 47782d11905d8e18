"""Paired significance read from stored runs: one run's two strategies, or one strategy across
two runs, on the questions both answered (the test itself is eval.stats.paired)."""

from __future__ import annotations

from eval.metrics import DEFAULT_METRIC
from eval.stats.paired import PairedTest, paired_test
from eval.views.run_view import RunView, check_metric, seed_of


def compare_strategies(view: RunView, a: str, b: str, metric: str = DEFAULT_METRIC) -> PairedTest:
    """Paired test of strategies `a` and `b` of one run on `metric`, questions matched by qid."""
    check_metric(view, metric)
    view.result(a), view.result(b)  # clear error for a name that did not finish
    return paired_test(
        view.scores(a, metric),
        view.scores(b, metric),
        names=(a, b),
        metric=metric,
        groups=view.groups(),  # whole source-passage / near-duplicate groups flipped
        seed=seed_of(view),
    )


def compare_runs(
    view_a: RunView,
    view_b: RunView,
    strategy: str,
    metric: str = DEFAULT_METRIC,
    strategy_b: str | None = None,
) -> PairedTest:
    """Paired test of one strategy across two runs (History page), questions matched by qid.

    `strategy_b` defaults to `strategy`. Only questions both runs answered count; runs on
    different test splits may share none (then n = 0 and p is None).
    """
    strategy_b = strategy_b or strategy
    check_metric(view_a, metric)
    check_metric(view_b, metric)
    view_a.result(strategy), view_b.result(strategy_b)
    return paired_test(
        view_a.scores(strategy, metric),
        view_b.scores(strategy_b, metric),
        names=(f"{strategy} ({view_a.run.id})", f"{strategy_b} ({view_b.run.id})"),
        metric=metric,
        groups=view_b.groups() | view_a.groups(),
        seed=seed_of(view_a),
    )
