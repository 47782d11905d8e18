"""Stability of a stored run across its re-splits, as frames and sentences: wins per strategy,
the spread of each score, the score on every split, and the recommendation on each split."""

from __future__ import annotations

from typing import Any

import pandas as pd

from eval.metrics import metric_label
from eval.stats.stability import SplitResult, Stability, StabilityRecord, sentence, summarize
from eval.views.run_view import RunView, higher_is_better


def stability(view: RunView, metric: str) -> Stability | None:
    """The run's stability on `metric`, None when it stored no finished re-split."""
    own = {r.strategy: float(r.mean(metric)) for r in view.main if r.mean(metric) is not None}
    return summarize(own, stored_stability(view), metric, higher_is_better(metric))


def stored_stability(view: RunView) -> StabilityRecord | None:
    """The re-splits the run stored (None when it ran none)."""
    return StabilityRecord.from_dict(view.run.meta.stability)


def stability_frame(st: Stability) -> pd.DataFrame:
    """One row per strategy: strategy, wins, mean, sd, min, max, then `split <k>` (its mean on
    split k; split 0 is the run's own), most wins first."""
    rows = []
    for name, w in st.wins.items():
        spread = st.spread[name]
        row: dict[str, Any] = {"strategy": name, "wins": w, "mean": spread.mean, "sd": spread.sd}
        row |= {"min": spread.min, "max": spread.max}
        for s in st.splits:
            row[f"split {s.k}"] = s.means[name]
        rows.append(row)
    return pd.DataFrame(rows).sort_values("wins", ascending=False, kind="stable")


def recommendations(
    view: RunView, metric: str, threshold: float, monthly_volume: int, months: int = 12
) -> list[str | None]:
    """The strategy recommended on each split (0 = the run's own): the cheapest a month whose
    mean meets `threshold`, with that split's own measured prices; None where none meets it."""
    hib = higher_is_better(metric)
    own = {r.strategy: SplitResult.of(r) for r in view.main}
    stored = stored_stability(view)
    splits = [own] + [s.strategies for s in (stored.splits if stored else []) if s.strategies]
    out: list[str | None] = []
    for recs in splits:
        best, best_cost = None, float("inf")
        for name, rec in recs.items():
            mean = rec.mean(metric)
            if mean is None or rec.price_per_1k is None:
                continue
            if (mean >= threshold) if hib else (mean <= threshold):
                cost = rec.price_per_1k / 1000 * monthly_volume
                cost += (rec.price_prepare or 0.0) / months
                if cost < best_cost:
                    best, best_cost = name, cost
        out.append(best)
    return out


def stability_sentences(
    view: RunView,
    metric: str,
    threshold: float | None = None,
    monthly_volume: int | None = None,
    months: int = 12,
) -> list[str]:
    """The stability in words: wins and winner changes, then (with a bar and a volume) whether
    the recommendation changes from split to split. Empty without re-splits."""
    st = stability(view, metric)
    if st is None:
        return []
    out = [sentence(st, metric_label(metric))]
    if st.skipped:
        out.append(f"Not re-run on the re-splits (they train): {', '.join(st.skipped)}.")
    if threshold is not None and monthly_volume is not None:
        stored = stored_stability(view)
        ks = [0] + [s.k for s in (stored.splits if stored else []) if s.strategies]
        compared = {s.k for s in st.splits}  # a split where a strategy failed is left out
        every = recommendations(view, metric, threshold, monthly_volume, months)
        recs = [r for k, r in zip(ks, every, strict=True) if k in compared]
        same = sum(r == recs[0] for r in recs[1:])
        shown = recs[0] or "none"
        out.append(
            f"The recommendation ({shown} on the run's own split) is the same on {same} of "
            f"{len(recs) - 1} re-splits."
        )
    return out


def stability_figures(view: RunView) -> dict[str, Any] | None:
    """Per metric the stability as plain data (for `--json`, MLflow, the report), with the
    stored re-split settings; None without re-splits."""
    stored = stored_stability(view)
    if stored is None:
        return None
    per = {}
    for m in {m for r in view.main for m in r.metrics}:
        st = stability(view, m)
        if st is not None:
            per[m] = st.to_dict()
    settings = {"resplits": stored.resplits, "include_trained": stored.include_trained}
    return settings | {"skipped": stored.skipped, "metrics": per}
