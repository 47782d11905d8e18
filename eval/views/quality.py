"""Quality views: the side-by-side table, the per-question explorer and its filters, the
learning curve and retrieval recall."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval.metrics import DEFAULT_METRIC, metric_label
from eval.records import COST_COLUMNS
from eval.store.runs import StoredAnswer, StrategyResult
from eval.views.run_view import (
    CONTENDED_LABEL,
    RunView,
    check_metric,
    contended_mark,
    format_interval,
    higher_is_better,
    metric_names,
)
from eval.views.verdict.confidence import chance_best, comparisons, comparisons_frame
from strategies import get_strategy_class


@dataclass
class SideBySide:
    """The main comparison table.

    table: one row per main strategy (index = strategy); per metric columns `<m>`, `<m>_low`,
        `<m>_high`; then every cost key of report.COST_COLUMNS (NaN where absent).
    best: column -> best strategy (metric direction from the registry; costs: lower is better).
    significance: one row per (metric, strategy): best, n, test, diff (strategy − best) with
        its interval, d_z, p_value and p_holm (Holm over the comparisons with the best),
        significant (on p_holm) — see eval.views.verdict.confidence.comparisons.
    display: the table as strings for showing: "mean [low, high]", best marked with ★, and
        "(=)" after metrics whose gap to the best is not significant.
    """

    table: pd.DataFrame
    best: dict[str, str]
    significance: pd.DataFrame
    display: pd.DataFrame
    metrics: list[str]
    costs: list[str]
    # metric -> strategy -> chance of the best mean (paired bootstrap,
    # eval.views.verdict.confidence)
    prob_best: dict[str, dict[str, float]] = field(default_factory=dict)


def side_by_side(view: RunView, *, alpha: float = 0.05) -> SideBySide:
    """Quality with 95% intervals and every cost per main strategy, best marked, gaps tested."""
    results = view.main
    metrics = metric_names(view.run)
    costs = [c.key for c in COST_COLUMNS]
    rows = []
    for r in results:
        row: dict[str, Any] = {"strategy": r.strategy}
        for m in metrics:
            iv = r.interval(m)
            row[m], row[f"{m}_low"], row[f"{m}_high"] = iv.mean, iv.low, iv.high
        for k in costs:
            row[k] = r.cost.value(k)
        rows.append(row)
    cols = ["strategy"] + [c for m in metrics for c in (m, f"{m}_low", f"{m}_high")] + costs
    table = pd.DataFrame(rows, columns=cols).set_index("strategy")
    table = table.apply(pd.to_numeric, errors="coerce")

    best: dict[str, str] = {}
    for col in metrics + costs:
        s = table[col].dropna()
        if s.empty or s.nunique() == 1 and len(results) > 1:
            continue  # every strategy equal (e.g. trainable 0 everywhere): nothing to mark
        best[col] = str(s.idxmax() if col in metrics and higher_is_better(col) else s.idxmin())

    # Against the best on the same questions: McNemar or sign-flip, Holm-corrected per metric.
    frames = [comparisons(view, m, best[m], alpha=alpha) for m in metrics if m in best]
    significance = pd.concat(frames, ignore_index=True) if frames else comparisons_frame()
    # Every metric, tied ones too: identical strategies share the chance (1/n each).
    chances = {m: c for m in metrics if (c := chance_best(view, m))}
    display = _display(results, metrics, best, significance)
    return SideBySide(table, best, significance, display, metrics, costs, chances)


def _display(results, metrics, best, significance) -> pd.DataFrame:
    not_sig = {
        (row.metric, row.strategy)
        for row in significance.itertuples()
        if row.p_value is not None and not row.significant
    }
    rows = []
    for r in results:
        row = {"Strategy": r.strategy}
        for m in metrics:
            text = format_interval(r.interval(m))
            if best.get(m) == r.strategy:
                text = "★ " + text
            elif (m, r.strategy) in not_sig:
                text += " (=)"
            row[metric_label(m)] = text
        for c in COST_COLUMNS:
            text = c.format(r.cost.value(c.key))
            row[c.label] = ("★ " + text) if best.get(c.key) == r.strategy else text
        row[CONTENDED_LABEL] = contended_mark(r.cost)
        rows.append(row)
    return pd.DataFrame(rows)


def _contexts_text(a: StoredAnswer, limit: int = 160) -> str:
    parts = []
    for c in a.answer.contexts:
        head = f"[{c.kind}{': ' + c.source if c.source else ''}] "
        text = " ".join(c.text.split())
        parts.append(head + (text[:limit] + "…" if len(text) > limit else text))
    return "\n".join(parts)


def question_explorer(
    view: RunView, metric: str = DEFAULT_METRIC, strategies: list[str] | None = None
) -> pd.DataFrame:
    """One row per question: qid, question, golds, then per strategy `<s> answer`,
    `<s> score` (on `metric`, NaN where it does not apply) and `<s> contexts` (the retrieved
    chunks or shots it used, one a line, truncated).

    `attrs` carries `metric` and `strategies` for the filters below.
    """
    check_metric(view, metric)
    strategies = strategies or [r.strategy for r in view.main]
    for s in strategies:
        view.result(s)
    rows = []
    for qid in view.qids():
        first = next(
            (view.answers_of(s)[qid] for s in strategies if qid in view.answers_of(s)), None
        )
        if first is None:
            continue
        row: dict[str, Any] = {
            "qid": qid,
            "question": first.question,
            "golds": " | ".join(first.golds),
        }
        for s in strategies:
            a = view.answers_of(s).get(qid)
            score = None if a is None else a.scores.get(metric)
            row[f"{s} answer"] = None if a is None else a.answer.text
            row[f"{s} score"] = math.nan if score is None else float(score)
            row[f"{s} contexts"] = "" if a is None else _contexts_text(a)
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update(metric=metric, strategies=list(strategies))
    return df


def _score_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df[[f"{s} score" for s in df.attrs.get("strategies", [])]]


def disagreements(df: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Rows of a `question_explorer` frame where one strategy scores ≥ threshold, another < it."""
    s = _score_frame(df)
    return df[(s >= threshold).any(axis=1) & (s < threshold).any(axis=1)]


def all_wrong(df: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Rows of a `question_explorer` frame where every scored strategy is below threshold."""
    s = _score_frame(df)
    return df[(s < threshold).where(s.notna(), True).all(axis=1) & s.notna().any(axis=1)]


def learning_curve(view: RunView, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Per training strategy with learning-curve variants: strategy, label, train_fraction,
    train_pairs, mean, low, high, prepare_s — one row per variant plus the main result,
    sorted by training pairs. Empty when the run has no variants."""
    check_metric(view, metric)
    trainers = {r.extras.variant_of for r in view.results if r.extras.is_variant}
    rows = []
    for r in view.results:
        ex = r.extras
        owner = ex.variant_of or r.strategy
        if owner not in trainers or ex.train_pairs is None:
            continue
        iv = r.interval(metric)
        rows.append(
            {
                "strategy": owner,
                "label": r.strategy,
                "train_fraction": float(1.0 if ex.train_fraction is None else ex.train_fraction),
                "train_pairs": int(ex.train_pairs),
                "mean": iv.mean,
                "low": iv.low,
                "high": iv.high,
                "prepare_s": r.cost.prepare_s,
            }
        )
    cols = ["strategy", "label", "train_fraction", "train_pairs", "mean", "low", "high"]
    df = pd.DataFrame(rows, columns=[*cols, "prepare_s"])
    df = df.sort_values(["strategy", "train_pairs"]).reset_index(drop=True)
    df.attrs.update(metric=metric)
    return df


def _retrieval_setting(r: StrategyResult, ask: str) -> Any:
    """The strategy's `retrieval_depth` or `retriever` under its stored config (None when it
    is no longer registered)."""
    try:
        return getattr(get_strategy_class(r.strategy), ask)(r.config or {})
    except KeyError:  # a strategy no longer registered: unknown
        return None


RECALL_COLUMNS = [
    "strategy",
    "retriever",
    "mean",
    "low",
    "high",
    "n",
    "top_k",
    "mrr",
    "mrr_low",
    "mrr_high",
]


def retrieval_recall(view: RunView) -> pd.DataFrame:
    """Retrieval on its own, for strategies that retrieved: strategy, retriever (dense, bm25,
    hybrid), recall@k (mean, low, high over n questions), top_k, and MRR with its interval
    (None for runs stored before MRR was scored)."""
    rows = []
    for r in view.main:
        iv = r.interval("recall_at_k")
        if iv.mean is None:
            continue
        mrr = r.interval("mrr")
        rows.append(
            {
                "strategy": r.strategy,
                "retriever": _retrieval_setting(r, "retriever"),
                "mean": iv.mean,
                "low": iv.low,
                "high": iv.high,
                "n": iv.n,
                "top_k": _retrieval_setting(r, "retrieval_depth"),
                "mrr": mrr.mean,
                "mrr_low": mrr.low,
                "mrr_high": mrr.high,
            }
        )
    return pd.DataFrame(rows, columns=RECALL_COLUMNS)
