"""How good the estimate was: the figures predicted before a run (stored with it) against what
the run measured, per strategy, as ratios (actual / predicted; 1 is a perfect estimate)."""

from __future__ import annotations

import pandas as pd

from eval.store.runs import Run
from service.estimate.records import Estimate

COLUMNS = [
    "strategy",
    "predicted_s_per_q",
    "actual_s_per_q",
    "answer_ratio",
    "predicted_prepare_s",
    "actual_prepare_s",
    "prepare_ratio",
]


def _ratio(actual: float | None, predicted: float | None) -> float | None:
    if actual is None or not predicted or predicted <= 0:
        return None
    return actual / predicted


def stored_estimate(run: Run) -> Estimate | None:
    """The estimate stored with the run when it was launched (None for none)."""
    return Estimate.from_dict(run.meta.estimate)


def estimate_accuracy(run: Run) -> pd.DataFrame:
    """One row per finished strategy the stored estimate covered (empty without an estimate):
    seconds per question (the run's mean latency) and preparation seconds, predicted and
    measured, with their ratios. `attrs["total"]` holds (predicted, actual) run seconds when
    the run finished."""
    est = stored_estimate(run)
    predicted = est.measured() if est is not None else {}
    rows = []
    for r in run.results:
        e = predicted.get(r.strategy)
        if e is None or r.status != "done":
            continue
        per_q = r.cost.latency_mean_s
        prep = r.cost.prepare_s
        rows.append(
            {
                "strategy": r.strategy,
                "predicted_s_per_q": e.seconds_per_question,
                "actual_s_per_q": per_q,
                "answer_ratio": _ratio(per_q, e.seconds_per_question),
                "predicted_prepare_s": e.prepare_s,
                "actual_prepare_s": prep,
                "prepare_ratio": _ratio(prep, e.prepare_s),
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    actual = (
        (run.finished_at - run.created_at) if run.finished_at and run.status == "done" else None
    )
    df.attrs["total"] = (est.total_s if est is not None else None, actual)
    return df
