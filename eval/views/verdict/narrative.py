"""The views in words: the recommendation (cheapest strategy meeting a quality bar at a
volume, with its reasons) and the headline verdict of a run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from eval.metrics import DEFAULT_METRIC, metric_label
from eval.stats.intervals import Interval
from eval.views.cost import BreakEven
from eval.views.format import money
from eval.views.quality import SideBySide
from eval.views.run_view import (
    RunView,
    baseline_name,
    check_metric,
    format_interval,
    higher_is_better,
    priced,
)
from eval.views.task_verdict import fine_tuning_bought
from eval.views.verdict.confidence import RANK_BY, per_right_reason, with_per_right


@dataclass
class Recommendation:
    """The cheapest strategy meeting a quality bar at a monthly volume.

    choice: the recommended strategy, or None when none meets the bar (then `best` names the
        strongest one). table: strategy, mean, low, high, status ("meets" / "upper bound only" /
        "below"), per_question, monthly_cost. reasons: sentences built from the measured figures.
    """

    choice: str | None
    best: str | None
    table: pd.DataFrame
    reasons: list[str]
    metric: str
    threshold: float
    monthly_volume: int
    months: int
    by: str = "month"  # a key of RANK_BY: what "cheapest" means

    @property
    def summary(self) -> str:
        return " ".join(self.reasons)


def recommend(
    view: RunView,
    monthly_volume: int,
    metric: str = DEFAULT_METRIC,
    threshold: float = 0.1,
    months: int = 12,
    by: str = "month",
) -> Recommendation:
    """Cheapest strategy whose mean `metric` meets `threshold` at `monthly_volume` questions.

    Monthly cost = price per question × volume + preparation price / `months` (preparation
    amortised over the horizon). For metrics where lower is better "meets" means mean ≤ threshold.
    `by` (a key of RANK_BY) is what "cheapest" means: a month, or per right answer (the table's
    `per_right` column, eval.views.verdict.confidence).
    """
    check_metric(view, metric)
    if by not in RANK_BY:
        raise ValueError(f"unknown ranking {by!r}; choose one of {', '.join(RANK_BY)}")
    if monthly_volume < 0:
        raise ValueError(f"monthly volume must be >= 0, got {monthly_volume}")
    if months < 1:
        raise ValueError(f"months (amortisation horizon) must be >= 1, got {months}")
    table = _monthly_table(view, monthly_volume, metric, threshold, months)
    table = with_per_right(view, table, monthly_volume, months, by)
    args = (metric, threshold, monthly_volume, months)
    if table.empty:
        reason = f"No finished strategy has both {metric_label(metric)} and prices."
        return Recommendation(None, None, table, [reason], *args, by)
    hib = higher_is_better(metric)
    best = table.loc[table["mean"].idxmax() if hib else table["mean"].idxmin()]
    meeting = table[table.status == "meets"]
    choice = None if meeting.empty else str(meeting.iloc[0].strategy)
    reasons = _Reasons(view.currency(), *args).explain(table, best, meeting, choice)
    if by == "per_right":
        reasons.insert(0, per_right_reason(table, choice, view.currency()))
    return Recommendation(choice, str(best.strategy), table, reasons, *args, by)


def _monthly_table(
    view: RunView, volume: int, metric: str, threshold: float, months: int
) -> pd.DataFrame:
    """strategy, mean, low, high, status, per_question, monthly_cost; cheapest first."""
    hib = higher_is_better(metric)

    def ok(v: float) -> bool:
        return v >= threshold if hib else v <= threshold

    rows = []
    for r in view.main:
        iv = r.interval(metric)
        per_1k, prep, _ = priced(r.cost)  # from CPU time when contended
        if iv.mean is None or per_1k is None:
            continue
        per_q = float(per_1k) / 1000.0
        monthly = per_q * volume + float(prep or 0.0) / months
        favourable = iv.high if hib else iv.low
        status = (
            "meets"
            if ok(iv.mean)
            else "upper bound only"
            if favourable is not None and ok(favourable)
            else "below"
        )
        rows.append(
            {
                "strategy": r.strategy,
                "mean": iv.mean,
                "low": iv.low,
                "high": iv.high,
                "status": status,
                "per_question": per_q,
                "monthly_cost": monthly,
            }
        )
    cols = ["strategy", "mean", "low", "high", "status", "per_question", "monthly_cost"]
    return pd.DataFrame(rows, columns=cols).sort_values("monthly_cost").reset_index(drop=True)


def _figure(row) -> str:
    # Rows are Series (where .mean is a method) or itertuples namedtuples.
    get = row.__getitem__ if isinstance(row, pd.Series) else row.__getattribute__
    return format_interval(Interval(get("mean"), get("low"), get("high")))


@dataclass
class _Reasons:
    """The sentences of a recommendation, built from its monthly table."""

    cur: str
    metric: str
    threshold: float
    volume: int
    months: int

    def explain(self, table, best, meeting, choice: str | None) -> list[str]:
        label, cur = metric_label(self.metric), self.cur
        hib = higher_is_better(self.metric)
        op = "≥" if hib else "≤"
        vol = f"{self.volume:,} questions"
        horizon = f"preparation spread over {self.months} month{'s' if self.months != 1 else ''}"
        if choice is None:
            reasons = [
                f"No strategy meets {label} {op} {self.threshold:g}; the best is {best.strategy} "
                f"with {label} {_figure(best)}, at {money(best.monthly_cost, cur)} a month "
                f"for {vol}."
            ]
            cheaper = table
        else:
            c = meeting.iloc[0]
            reasons = [
                f"{choice} meets {label} {op} {self.threshold:g} ({_figure(c)}) and costs "
                f"{money(c.monthly_cost, cur)} a month at {vol} ({horizon})."
            ]
            cheaper = table[table.monthly_cost < c.monthly_cost]
        for row in cheaper.itertuples():
            # one meeting the bar is cheaper a month only when ranked per right answer:
            # it is listed below with the others that meet it
            if row.strategy != choice and row.status != "meets":
                reasons.append(self._why_not(row, choice, best, label, hib))
        if choice is not None:
            for row in meeting.iloc[1:].itertuples():
                reasons.append(
                    f"{row.strategy} also meets it ({_figure(row)}) but costs "
                    f"{money(row.monthly_cost, cur)} a month."
                )
        return reasons

    def _why_not(self, row, choice: str | None, best, label: str, hib: bool) -> str:
        why = f"its {label} {row.mean:.2f} is {'below' if hib else 'above'} the threshold"
        if row.status == "upper bound only":
            bound = row.high if hib else row.low
            why += (
                f" (only its interval's {'upper' if hib else 'lower'} bound {bound:.2f} reaches it)"
            )
        if choice is not None:
            lead = f"{row.strategy} is cheaper ({money(row.monthly_cost, self.cur)} a month) but"
        elif row.strategy == best.strategy:
            lead = f"{row.strategy}:"
        else:
            lead = f"{row.strategy} ({money(row.monthly_cost, self.cur)} a month):"
        return f"{lead} {why}."


def verdict(
    view: RunView,
    sbs: SideBySide,
    be: BreakEven,
    metric: str = DEFAULT_METRIC,
    base: str | None = None,
) -> str:
    """Markdown sentences answering, from the stored figures: which strategy is best, by how
    much (and whether the lead is significant), at what cost, and from what volume
    fine-tuning pays off. `base` defaults to the registered closed-book baseline."""
    base = baseline_name(base)
    label = metric_label(metric)
    if metric not in sbs.best:
        return f"The strategies do not differ on {label}."
    t, cur = sbs.table, view.currency()
    best = sbs.best[metric]

    def iv(name: str) -> str:
        return f"{t.loc[name, metric]:.3f} [{t.loc[name, f'{metric}_low']:.3f}, " + (
            f"{t.loc[name, f'{metric}_high']:.3f}]"
        )

    out = [f"**{best}** scores the best {label}: {iv(best)}."]
    chances = sbs.prob_best.get(metric, {})
    if len(chances) > 1:
        top = max(chances, key=chances.get)
        out.append(f"{top} is best with probability {chances[top]:.2f} (paired bootstrap).")
    sig = sbs.significance[sbs.significance.metric == metric]
    if not sig.empty:
        runner = sig.sort_values("diff", ascending=False).iloc[0]
        verdict_word = "significantly" if runner.significant else "not significantly"
        out.append(
            f"It is {verdict_word} ahead of the next one, {runner.strategy} "
            f"({iv(runner.strategy)}; paired test p = {runner.p_value:.3f}, "
            f"{_holm_words(runner)})."
        )
    if base in t.index and best != base:
        gain = t.loc[best, metric] - t.loc[base, metric]
        out.append(f"That is {gain:+.3f} over the base model closed book ({base}).")
    prep, per_1k = t.loc[best, "prepare_s"], t.loc[best, "price_per_1k"]
    if pd.notna(prep) and pd.notna(per_1k):
        out.append(
            f"It took {prep:.1f} s to prepare and costs {money(per_1k, cur)} per 1,000 questions."
        )
    if not be.pays_off.empty:
        out.append("Fine-tuning: " + " ".join(be.pays_off["sentence"]))
    out += fine_tuning_bought(view)  # format or style: what training bought on behaviour
    return " ".join(out)


def _holm_words(row) -> str:
    """'Holm-adjusted p = 0.062 over 3 comparisons' for one row of SideBySide.significance."""
    p = getattr(row, "p_holm", None)
    return "not adjusted" if p is None or pd.isna(p) else f"Holm-adjusted p = {p:.3f}"
