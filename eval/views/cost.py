"""Cost views: quality against a cost axis (Pareto frontier), break-even volumes between
strategies and when training pays off, and per-question latency."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval.metrics import DEFAULT_METRIC
from eval.views.format import money
from eval.views.run_view import (
    RunView,
    check_cost,
    check_metric,
    higher_is_better,
    priced,
)
from eval.views.verdict.confidence import per_right_costs


def pareto_mask(quality: list[float], cost: list[float], higher_better: bool = True) -> list[bool]:
    """True for points no other point dominates (at least as good on both axes, better on one)."""
    q = [x if higher_better else -x for x in quality]
    out = []
    for i in range(len(q)):
        dominated = any(
            q[j] >= q[i] and cost[j] <= cost[i] and (q[j] > q[i] or cost[j] < cost[i])
            for j in range(len(q))
            if j != i
        )
        out.append(not dominated)
    return out


def quality_vs_cost(
    view: RunView,
    metric: str = DEFAULT_METRIC,
    cost: str = "price_per_1k",
    monthly_volume: int | None = None,
    months: int = 12,
) -> pd.DataFrame:
    """One row per main strategy: strategy, quality, low, high, cost, pareto (bool).

    Strategies lacking either value are left out. Rows are sorted by cost, so the frontier
    (rows with pareto True) reads as a line from cheap to expensive. `cost` is a stored cost or
    a per-right-answer axis (confidence.PER_RIGHT_AXES, preparation spread over
    `monthly_volume` × `months` questions); a strategy with nothing right has no finite cost
    per right answer and is left out.
    """
    check_metric(view, metric)
    per_right = per_right_costs(view, cost, monthly_volume, months)
    if per_right is None:
        check_cost(cost)
    rows = []
    for r in view.main:
        iv = r.interval(metric)
        c = r.cost.value(cost) if per_right is None else per_right.get(r.strategy)
        if iv.mean is None or c is None:
            continue
        rows.append(
            {
                "strategy": r.strategy,
                "quality": float(iv.mean),
                "low": iv.low,
                "high": iv.high,
                "cost": float(c),
            }
        )
    df = pd.DataFrame(rows, columns=["strategy", "quality", "low", "high", "cost"])
    df["pareto"] = pareto_mask(list(df.quality), list(df.cost), higher_is_better(metric))
    df = df.sort_values(["cost", "quality"]).reset_index(drop=True)
    df.attrs.update(metric=metric, cost=cost)
    return df


@dataclass
class BreakEven:
    """Total cost = price_prepare + n × price_per_1k / 1000, per strategy.

    lines: strategy, fixed (preparation price), per_question.
    crossings: a, b, volume, cost, cheaper_after (the strategy cheaper beyond the crossing),
        label — every pair whose lines cross at a positive volume.
    curve: strategy, volume, total_cost over `x_max` (for the chart).
    pays_off: for each strategy that trains, against each other strategy: trainer, other,
        from_volume (None = never; 0 = from the first question), sentence.
    """

    lines: pd.DataFrame
    crossings: pd.DataFrame
    curve: pd.DataFrame
    pays_off: pd.DataFrame
    x_max: float
    currency: str


def crossing(fixed_a: float, slope_a: float, fixed_b: float, slope_b: float) -> float | None:
    """Volume n > 0 where fixed_a + slope_a·n = fixed_b + slope_b·n, or None (parallel/behind)."""
    if slope_a == slope_b:
        return None
    n = (fixed_b - fixed_a) / (slope_a - slope_b)
    return n if n > 0 else None


def break_even(  # ~60 lines: lines, crossings, curve and pay-off built in one pass
    view: RunView, *, trainer: str | None = None, x_max: float | None = None, points: int = 60
) -> BreakEven:
    """Break-even lines, their exact pairwise crossings and when each strategy that trains (or
    only `trainer`) starts paying off.

    The x range defaults to 1.5× the furthest crossing (at least 1,000 questions), so every
    crossing is visible.
    """
    cur = view.currency()
    prices = {r.strategy: priced(r.cost)[:2] for r in view.main}  # CPU time when contended
    lines = pd.DataFrame(
        [
            {"strategy": s, "fixed": float(prep), "per_question": float(per_1k) / 1000.0}
            for s, (per_1k, prep) in prices.items()
            if prep is not None and per_1k is not None
        ],
        columns=["strategy", "fixed", "per_question"],
    )
    cross_rows = []
    for a, b in itertools.combinations(lines.itertuples(index=False), 2):
        n = crossing(a.fixed, a.per_question, b.fixed, b.per_question)
        if n is None:
            continue
        after = a.strategy if a.per_question < b.per_question else b.strategy
        total = a.fixed + a.per_question * n
        cross_rows.append(
            {
                "a": a.strategy,
                "b": b.strategy,
                "volume": n,
                "cost": total,
                "cheaper_after": after,
                "label": f"{a.strategy} = {b.strategy} at {n:,.0f} questions ({money(total, cur)})",
            }
        )
    crossings = pd.DataFrame(
        cross_rows, columns=["a", "b", "volume", "cost", "cheaper_after", "label"]
    )
    if x_max is None:
        far = float(crossings.volume.max()) if len(crossings) else 0.0
        x_max = max(1000.0, 1.5 * far) if math.isfinite(far) else 1000.0
    vols = np.linspace(0.0, x_max, points)
    curve = pd.DataFrame(
        [
            {
                "strategy": ln.strategy,
                "volume": float(v),
                "total_cost": ln.fixed + ln.per_question * v,
            }
            for ln in lines.itertuples(index=False)
            for v in vols
        ],
        columns=["strategy", "volume", "total_cost"],
    )
    trainers = [trainer] if trainer else [r.strategy for r in view.with_role("trains")]
    pays = [_pays_off(lines, t, cur) for t in trainers]
    pays_off = pd.concat(pays, ignore_index=True) if pays else _pays_off(lines, "", cur)
    return BreakEven(lines, crossings, curve, pays_off, float(x_max), cur)


def _pays_off(lines: pd.DataFrame, trainer: str, cur: str) -> pd.DataFrame:
    cols = ["trainer", "other", "from_volume", "sentence"]
    mine = lines[lines.strategy == trainer]
    if mine.empty:
        return pd.DataFrame(columns=cols)
    t = mine.iloc[0]
    rows = []
    for o in lines[lines.strategy != trainer].itertuples(index=False):
        if t.per_question < o.per_question:
            n = crossing(t.fixed, t.per_question, o.fixed, o.per_question)
            frm = 0.0 if n is None else n  # None here: the trainer is cheaper from the start
            text = (
                f"{trainer} is cheaper than {o.strategy} from the first question."
                if frm == 0
                else f"{trainer} pays off against {o.strategy} from {math.ceil(frm):,} questions "
                f"(preparation {money(t.fixed, cur)} vs {money(o.fixed, cur)}, "
                f"{money(t.per_question * 1000, cur)} vs {money(o.per_question * 1000, cur)} "
                "per 1,000)."
            )
        else:
            frm = None
            text = (
                f"{trainer} never pays off against {o.strategy}: it costs at least as much per "
                f"question ({money(t.per_question * 1000, cur)} vs "
                f"{money(o.per_question * 1000, cur)} per 1,000)"
                + ("." if t.fixed >= o.fixed else ", so its cheaper preparation wins only early.")
            )
        rows.append({"trainer": trainer, "other": o.strategy, "from_volume": frm, "sentence": text})
    return pd.DataFrame(rows, columns=cols)


def latency_frame(view: RunView) -> pd.DataFrame:
    """Per-question latency of every main strategy: strategy, qid, latency_s."""
    return pd.DataFrame(
        [
            {"strategy": r.strategy, "qid": q, "latency_s": a.answer.cost.latency_s}
            for r in view.main
            for q, a in view.answers_of(r.strategy).items()
        ],
        columns=["strategy", "qid", "latency_s"],
    )
