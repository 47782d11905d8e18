"""What the model already knew: known and new questions against the closed-book baseline, and
general-knowledge retention next to the domain gain."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eval.metrics import DEFAULT_METRIC, metric_label
from eval.stats.intervals import Interval
from eval.views.run_view import RunView, baseline_name, check_metric


@dataclass
class KnowledgeSlices:
    """Known (the base model answered closed book) vs new questions.

    table is None when the run has no base strategy; `reason` then says why. Otherwise one row
    per strategy: known_n, known_mean, new_n, new_mean, regressions (known questions this
    strategy now gets below the threshold).
    """

    table: pd.DataFrame | None
    reason: str
    known: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)


def knowledge_slices(
    view: RunView,
    metric: str = DEFAULT_METRIC,
    threshold: float = 0.5,
    base: str | None = None,
) -> KnowledgeSlices:
    """Per strategy, `metric` on questions the `base` strategy (default: the registered
    closed-book baseline) already got (score ≥ threshold) against the others, and the
    regressions on the known ones."""
    base = baseline_name(base)
    if not view.has(base):
        return KnowledgeSlices(
            None,
            f"run {view.run.id} has no finished {base!r} result, so which questions the base "
            "model already knew cannot be told; include it in the run",
        )
    check_metric(view, metric)
    base_scores = view.scores(base, metric)
    known = [q for q, v in base_scores.items() if v >= threshold]
    new = [q for q, v in base_scores.items() if v < threshold]
    rows = []
    for r in view.main:
        sc = view.scores(r.strategy, metric)
        k = [sc[q] for q in known if q in sc]
        nw = [sc[q] for q in new if q in sc]
        rows.append(
            {
                "strategy": r.strategy,
                "known_n": len(k),
                "known_mean": float(np.mean(k)) if k else math.nan,
                "new_n": len(nw),
                "new_mean": float(np.mean(nw)) if nw else math.nan,
                "regressions": sum(1 for q in known if q in sc and sc[q] < threshold),
            }
        )
    reason = (
        f"{len(known)} of {len(base_scores)} questions known to {base} "
        f"({metric_label(metric)} ≥ {threshold:g})"
    )
    return KnowledgeSlices(pd.DataFrame(rows), reason, known, new)


def _mean_or_nan(iv: Interval | None) -> float:
    return math.nan if iv is None or iv.mean is None else iv.mean


def retention_vs_gain(
    view: RunView, metric: str = DEFAULT_METRIC, base: str | None = None
) -> pd.DataFrame:
    """Per main strategy: mean, domain_gain (mean − base strategy's mean; NaN without the base),
    retention_score and retention_base (general-knowledge score, theirs and the base model's),
    retention_delta (NaN where the run measured no retention). `attrs["note"]` explains gaps.
    `base` defaults to the registered closed-book baseline."""
    check_metric(view, metric)
    base = baseline_name(base)
    base_mean = None
    if view.has(base):
        base_mean = view.result(base).mean(metric)
    rows = []
    for r in view.main:
        mean = r.mean(metric)
        ret = r.extras.retention
        rows.append(
            {
                "strategy": r.strategy,
                "mean": math.nan if mean is None else mean,
                "domain_gain": math.nan if mean is None or base_mean is None else mean - base_mean,
                "retention_metric": ret.metric if ret else None,
                "retention_score": _mean_or_nan(ret.score if ret else None),
                "retention_base": _mean_or_nan(ret.base if ret else None),
                "retention_delta": math.nan if ret is None or ret.delta is None else ret.delta,
            }
        )
    cols = [
        "strategy",
        "mean",
        "domain_gain",
        "retention_metric",
        "retention_score",
        "retention_base",
        "retention_delta",
    ]
    df = pd.DataFrame(rows, columns=cols)
    notes = []
    if base_mean is None:
        notes.append(f"no {base} result: domain gain cannot be computed")
    if df.retention_delta.isna().all():
        notes.append("this run measured no general-knowledge retention")
    df.attrs.update(metric=metric, note="; ".join(notes))
    return df
