"""Comparison dashboards as data: pandas frames and small dataclasses built from a stored run.

Everything here reads `RunStore` results and stored per-question scores; nothing generates or
rescores. The app's Compare and History pages, the HTML report and the charts (eval/charts.py)
all call these functions. Start with `RunView.load(store, run_id)` and pass the view around, so
the answers are read from SQLite once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eval.metrics import METRICS
from eval.report import (
    CONTENDED_LABEL,
    COST_COLUMNS,
    contended_mark,
    format_interval,
    metric_names,
)
from eval.store import Run, RunStore, StoredAnswer, StrategyResult

# Cost axes offered for "quality against cost" (key -> label); lower is better for each.
COST_AXES: dict[str, str] = {
    "prepare_s": "Preparation time (s)",
    "latency_p50_s": "Median latency (s/question)",
    "price_per_1k": "Price per 1,000 questions",
}
DEFAULT_METRIC = "f1"
BASE_STRATEGY = "system_prompt"


# --- the run, loaded once ---------------------------------------------------------------------


@dataclass
class RunView:
    """A stored run with its answers, indexed for the dashboards.

    `results` are the finished (status "done") results; `main` excludes learning-curve variants
    (those whose extras carry `variant_of`).
    """

    run: Run
    answers: list[StoredAnswer]
    _by_strategy: dict[str, dict[str, StoredAnswer]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for a in self.answers:
            self._by_strategy.setdefault(a.strategy, {})[a.qid] = a

    @classmethod
    def load(cls, store: RunStore, run_id: str) -> RunView:
        """Read run `run_id` and all its answers from `store` (raises RunNotFound)."""
        return cls(store.get_run(run_id), store.get_answers(run_id))

    @property
    def results(self) -> list[StrategyResult]:
        return [r for r in self.run.results if r.status == "done"]

    @property
    def main(self) -> list[StrategyResult]:
        return [r for r in self.results if "variant_of" not in (r.extras or {})]

    def result(self, strategy: str) -> StrategyResult:
        for r in self.results:
            if r.strategy == strategy:
                return r
        done = ", ".join(r.strategy for r in self.results) or "none"
        raise KeyError(f"no finished strategy {strategy!r} in run {self.run.id} (finished: {done})")

    def has(self, strategy: str) -> bool:
        return any(r.strategy == strategy for r in self.results)

    def answers_of(self, strategy: str) -> dict[str, StoredAnswer]:
        """qid -> stored answer of one strategy, in question order."""
        return self._by_strategy.get(strategy, {})

    def scores(self, strategy: str, metric: str) -> dict[str, float]:
        """qid -> score of one strategy on one metric (questions it does not apply to left out)."""
        return {
            q: float(a.scores[metric])
            for q, a in self.answers_of(strategy).items()
            if a.scores.get(metric) is not None
        }

    def qids(self) -> list[str]:
        """Every question id of the run, in the order the strategies answered them."""
        seen: dict[str, None] = {}
        for per in self._by_strategy.values():
            seen.update(dict.fromkeys(per))
        return list(seen)

    def currency(self) -> str:
        for r in self.results:
            if r.cost.get("currency"):
                return str(r.cost["currency"])
        return str(self.run.config.get("prices", {}).get("currency", "USD"))


def higher_is_better(metric: str) -> bool:
    """The metric's direction from the registry (unknown metrics: higher is better)."""
    return METRICS[metric].higher_is_better if metric in METRICS else True


def metric_label(metric: str) -> str:
    return METRICS[metric].label if metric in METRICS else metric


def money(value: float | None, currency: str = "USD") -> str:
    """'$0.46' for USD, '0.46 EUR' otherwise; small amounts keep significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    digits = 2 if abs(value) >= 0.1 or value == 0 else 4
    text = f"{value:,.{digits}f}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def _check_metric(view: RunView, metric: str) -> None:
    present = metric_names(view.run)
    if metric not in present:
        raise ValueError(
            f"metric {metric!r} is not in run {view.run.id}; it has: {', '.join(present) or 'none'}"
        )


def _check_cost(cost: str) -> None:
    known = [k for k, _, _ in COST_COLUMNS]
    if cost not in known:
        raise ValueError(f"unknown cost {cost!r}; choose one of {', '.join(known)}")


# --- paired significance ----------------------------------------------------------------------


@dataclass
class PairedTest:
    """A two-sided paired sign-flip permutation test on per-question score differences (a - b)."""

    a: str
    b: str
    metric: str
    n: int  # questions scored for both
    mean_diff: float | None
    p_value: float | None
    significant: bool
    exact: bool  # every sign pattern enumerated (small n) rather than sampled

    def sentence(self) -> str:
        if self.n == 0 or self.p_value is None:
            return (
                f"{self.a} and {self.b} share no scored questions on {metric_label(self.metric)}."
            )
        verdict = "significant" if self.significant else "not significant"
        return (
            f"{self.a} − {self.b} on {metric_label(self.metric)}: {self.mean_diff:+.3f} over "
            f"{self.n} questions, p = {self.p_value:.3g} ({verdict} at 0.05)."
        )


def paired_test(
    a: dict[str, float],
    b: dict[str, float],
    *,
    names: tuple[str, str] = ("a", "b"),
    metric: str = DEFAULT_METRIC,
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedTest:
    """Sign-flip permutation test on the questions both score dicts ({qid: score}) share.

    Under the null the sign of each per-question difference is a coin flip. With up to 14
    questions all 2^n sign patterns are enumerated (exact p); above, `n_resamples` seeded random
    patterns with the +1 correction, so p is never 0. Identical scores give p = 1.
    """
    common = [q for q in a if q in b]
    d = np.asarray([a[q] - b[q] for q in common], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return PairedTest(*names, metric, 0, None, None, False, True)
    observed = abs(d.mean())
    if not np.any(d):
        return PairedTest(*names, metric, n, 0.0, 1.0, False, True)
    tol = 1e-12  # float sums of the same values in another order must still count as ties
    if n <= 14:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        stats = np.abs(signs @ d) / n
        p = float(np.mean(stats >= observed - tol))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice((1.0, -1.0), size=(n_resamples, n))
        stats = np.abs(signs @ d) / n
        p = float((1 + np.sum(stats >= observed - tol)) / (1 + n_resamples))
        exact = False
    return PairedTest(*names, metric, n, float(d.mean()), p, p < alpha, exact)


def compare_strategies(view: RunView, a: str, b: str, metric: str = DEFAULT_METRIC) -> PairedTest:
    """Paired test of strategies `a` and `b` of one run on `metric`, questions matched by qid."""
    _check_metric(view, metric)
    view.result(a), view.result(b)  # clear error for a name that did not finish
    return paired_test(
        view.scores(a, metric),
        view.scores(b, metric),
        names=(a, b),
        metric=metric,
        seed=_seed(view),
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
    _check_metric(view_a, metric)
    _check_metric(view_b, metric)
    view_a.result(strategy), view_b.result(strategy_b)
    return paired_test(
        view_a.scores(strategy, metric),
        view_b.scores(strategy_b, metric),
        names=(f"{strategy} ({view_a.run.id})", f"{strategy_b} ({view_b.run.id})"),
        metric=metric,
        seed=_seed(view_a),
    )


def _seed(view: RunView) -> int:
    return int(view.run.config.get("split", {}).get("seed", 0) or 0)


# --- 1. side by side --------------------------------------------------------------------------


@dataclass
class SideBySide:
    """The main comparison table.

    table: one row per main strategy (index = strategy); per metric columns `<m>`, `<m>_low`,
        `<m>_high`; then every cost key of report.COST_COLUMNS (NaN where absent).
    best: column -> best strategy (metric direction from the registry; costs: lower is better).
    significance: one row per (metric, strategy): best, diff (strategy − best), p_value,
        significant — a paired test against the best strategy on the same questions.
    display: the table as strings for showing: "mean [low, high]", best marked with ★, and
        "(=)" after metrics whose gap to the best is not significant.
    """

    table: pd.DataFrame
    best: dict[str, str]
    significance: pd.DataFrame
    display: pd.DataFrame
    metrics: list[str]
    costs: list[str]


def side_by_side(view: RunView, *, alpha: float = 0.05) -> SideBySide:
    """Quality with 95% intervals and every cost per main strategy, best marked, gaps tested."""
    results = view.main
    metrics = metric_names(view.run)
    costs = [k for k, _, _ in COST_COLUMNS]
    rows = []
    for r in results:
        row: dict[str, Any] = {"strategy": r.strategy}
        for m in metrics:
            iv = r.metrics.get(m) or {}
            row[m], row[f"{m}_low"], row[f"{m}_high"] = (
                iv.get("mean"),
                iv.get("low"),
                iv.get("high"),
            )
        for k in costs:
            row[k] = r.cost.get(k)
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

    sig_rows = []
    for m in metrics:
        if m not in best:
            continue
        for r in results:
            if r.strategy == best[m]:
                continue
            t = paired_test(
                view.scores(r.strategy, m),
                view.scores(best[m], m),
                names=(r.strategy, best[m]),
                metric=m,
                seed=_seed(view),
                alpha=alpha,
            )
            sig_rows.append(
                {
                    "metric": m,
                    "strategy": r.strategy,
                    "best": best[m],
                    "n": t.n,
                    "diff": t.mean_diff,
                    "p_value": t.p_value,
                    "significant": t.significant,
                }
            )
    significance = pd.DataFrame(
        sig_rows, columns=["metric", "strategy", "best", "n", "diff", "p_value", "significant"]
    )
    display = _display(results, metrics, best, significance)
    return SideBySide(table, best, significance, display, metrics, costs)


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
            text = format_interval(r.metrics.get(m))
            if best.get(m) == r.strategy:
                text = "★ " + text
            elif (m, r.strategy) in not_sig:
                text += " (=)"
            row[metric_label(m)] = text
        for key, label, fmt in COST_COLUMNS:
            v = r.cost.get(key)
            text = "—" if v is None else fmt.format(v)
            row[label] = ("★ " + text) if best.get(key) == r.strategy else text
        row[CONTENDED_LABEL] = contended_mark(r.cost)
        rows.append(row)
    return pd.DataFrame(rows)


# --- 2. quality against cost ------------------------------------------------------------------


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
    view: RunView, metric: str = DEFAULT_METRIC, cost: str = "price_per_1k"
) -> pd.DataFrame:
    """One row per main strategy: strategy, quality, low, high, cost, pareto (bool).

    Strategies lacking either value are left out. Rows are sorted by cost, so the frontier
    (rows with pareto True) reads as a line from cheap to expensive.
    """
    _check_metric(view, metric)
    _check_cost(cost)
    rows = []
    for r in view.main:
        iv, c = r.metrics.get(metric) or {}, r.cost.get(cost)
        if iv.get("mean") is None or c is None:
            continue
        rows.append(
            {
                "strategy": r.strategy,
                "quality": float(iv["mean"]),
                "low": iv.get("low"),
                "high": iv.get("high"),
                "cost": float(c),
            }
        )
    df = pd.DataFrame(rows, columns=["strategy", "quality", "low", "high", "cost"])
    df["pareto"] = pareto_mask(list(df.quality), list(df.cost), higher_is_better(metric))
    df = df.sort_values(["cost", "quality"]).reset_index(drop=True)
    df.attrs.update(metric=metric, cost=cost)
    return df


# --- 3. break-even ----------------------------------------------------------------------------


@dataclass
class BreakEven:
    """Total cost = price_prepare + n × price_per_1k / 1000, per strategy.

    lines: strategy, fixed (preparation price), per_question.
    crossings: a, b, volume, cost, cheaper_after (the strategy cheaper beyond the crossing),
        label — every pair whose lines cross at a positive volume.
    curve: strategy, volume, total_cost over `x_max` (for the chart).
    pays_off: for `trainer` (default lora) against each other strategy: other, from_volume
        (None = never; 0 = from the first question), sentence.
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


def break_even(
    view: RunView, *, trainer: str = "lora", x_max: float | None = None, points: int = 60
) -> BreakEven:
    """Break-even lines, their exact pairwise crossings and when `trainer` starts paying off.

    The x range defaults to 1.5× the furthest crossing (at least 1,000 questions), so every
    crossing is visible.
    """
    cur = view.currency()
    lines = pd.DataFrame(
        [
            {
                "strategy": r.strategy,
                "fixed": float(r.cost["price_prepare"]),
                "per_question": float(r.cost["price_per_1k"]) / 1000.0,
            }
            for r in view.main
            if r.cost.get("price_prepare") is not None and r.cost.get("price_per_1k") is not None
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
    return BreakEven(lines, crossings, curve, _pays_off(lines, trainer, cur), float(x_max), cur)


def _pays_off(lines: pd.DataFrame, trainer: str, cur: str) -> pd.DataFrame:
    cols = ["other", "from_volume", "sentence"]
    mine = lines[lines.strategy == trainer]
    if mine.empty:
        return pd.DataFrame(columns=cols)
    t = mine.iloc[0]
    rows = []
    for o in lines[lines.strategy != trainer].itertuples(index=False):
        if t.per_question < o.per_question:
            n = crossing(t.fixed, t.per_question, o.fixed, o.per_question)
            frm = 0.0 if n is None else n  # None here: lora is cheaper from the start
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
        rows.append({"other": o.strategy, "from_volume": frm, "sentence": text})
    return pd.DataFrame(rows, columns=cols)


# --- 4. recommendation ------------------------------------------------------------------------


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

    @property
    def summary(self) -> str:
        return " ".join(self.reasons)


def recommend(
    view: RunView,
    monthly_volume: int,
    metric: str = DEFAULT_METRIC,
    threshold: float = 0.1,
    months: int = 12,
) -> Recommendation:
    """Cheapest strategy whose mean `metric` meets `threshold` at `monthly_volume` questions.

    Monthly cost = price per question × volume + preparation price / `months` (preparation
    amortised over the horizon). For metrics where lower is better "meets" means mean ≤ threshold.
    """
    _check_metric(view, metric)
    if monthly_volume < 0:
        raise ValueError(f"monthly volume must be >= 0, got {monthly_volume}")
    if months < 1:
        raise ValueError(f"months (amortisation horizon) must be >= 1, got {months}")
    hib = higher_is_better(metric)
    cur = view.currency()
    label = metric_label(metric)
    op = "≥" if hib else "≤"

    def ok(v: float) -> bool:
        return v >= threshold if hib else v <= threshold

    rows = []
    for r in view.main:
        iv = r.metrics.get(metric) or {}
        if iv.get("mean") is None or r.cost.get("price_per_1k") is None:
            continue
        per_q = float(r.cost["price_per_1k"]) / 1000.0
        monthly = per_q * monthly_volume + float(r.cost.get("price_prepare") or 0.0) / months
        favourable = iv.get("high") if hib else iv.get("low")
        status = (
            "meets"
            if ok(iv["mean"])
            else "upper bound only"
            if favourable is not None and ok(favourable)
            else "below"
        )
        rows.append(
            {
                "strategy": r.strategy,
                "mean": iv["mean"],
                "low": iv.get("low"),
                "high": iv.get("high"),
                "status": status,
                "per_question": per_q,
                "monthly_cost": monthly,
            }
        )
    cols = ["strategy", "mean", "low", "high", "status", "per_question", "monthly_cost"]
    table = pd.DataFrame(rows, columns=cols).sort_values("monthly_cost").reset_index(drop=True)
    vol = f"{monthly_volume:,} questions"
    horizon = f"preparation spread over {months} month{'s' if months != 1 else ''}"
    if table.empty:
        return Recommendation(
            None,
            None,
            table,
            [f"No finished strategy has both {label} and prices."],
            metric,
            threshold,
            monthly_volume,
            months,
        )

    def fig(row) -> str:
        # Rows are Series (where .mean is a method) or itertuples namedtuples.
        get = row.__getitem__ if isinstance(row, pd.Series) else row.__getattribute__
        return format_interval({k: get(k) for k in ("mean", "low", "high")})

    best_row = table.loc[table["mean"].idxmax() if hib else table["mean"].idxmin()]
    meeting = table[table.status == "meets"]
    reasons: list[str] = []
    if meeting.empty:
        choice = None
        reasons.append(
            f"No strategy meets {label} {op} {threshold:g}; the best is {best_row.strategy} "
            f"with {label} {fig(best_row)}, at {money(best_row.monthly_cost, cur)} a month "
            f"for {vol}."
        )
        cheaper = table
    else:
        c = meeting.iloc[0]
        choice = str(c.strategy)
        reasons.append(
            f"{choice} meets {label} {op} {threshold:g} ({fig(c)}) and costs "
            f"{money(c.monthly_cost, cur)} a month at {vol} ({horizon})."
        )
        cheaper = table[table.monthly_cost < c.monthly_cost]
    side = "upper" if hib else "lower"
    for row in cheaper.itertuples():
        if row.strategy == choice:
            continue
        why = f"its {label} {row.mean:.2f} is {'below' if hib else 'above'} the threshold"
        if row.status == "upper bound only":
            bound = row.high if hib else row.low
            why += f" (only its interval's {side} bound {bound:.2f} reaches it)"
        if choice is not None:
            lead = f"{row.strategy} is cheaper ({money(row.monthly_cost, cur)} a month) but"
        elif row.strategy == best_row.strategy:
            lead = f"{row.strategy}:"
        else:
            lead = f"{row.strategy} ({money(row.monthly_cost, cur)} a month):"
        reasons.append(f"{lead} {why}.")
    if choice is not None:
        for row in meeting.iloc[1:].itertuples():
            reasons.append(
                f"{row.strategy} also meets it ({fig(row)}) but costs "
                f"{money(row.monthly_cost, cur)} a month."
            )
    return Recommendation(
        choice,
        str(best_row.strategy),
        table,
        reasons,
        metric,
        threshold,
        monthly_volume,
        months,
    )


# --- 5. per-question explorer -----------------------------------------------------------------


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
    _check_metric(view, metric)
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


# --- 6. knowledge slices ----------------------------------------------------------------------


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
    base: str = BASE_STRATEGY,
) -> KnowledgeSlices:
    """Per strategy, `metric` on questions the `base` strategy already got (score ≥ threshold)
    against the others, and the regressions on the known ones."""
    if not view.has(base):
        return KnowledgeSlices(
            None,
            f"run {view.run.id} has no finished {base!r} result, so which questions the base "
            "model already knew cannot be told; include it in the run",
        )
    _check_metric(view, metric)
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


# --- 7. retention next to domain gain ---------------------------------------------------------


def retention_vs_gain(
    view: RunView, metric: str = DEFAULT_METRIC, base: str = BASE_STRATEGY
) -> pd.DataFrame:
    """Per main strategy: mean, domain_gain (mean − base strategy's mean; NaN without the base),
    retention_score and retention_base (general-knowledge score, theirs and the base model's),
    retention_delta (NaN where the run measured no retention). `attrs["note"]` explains gaps."""
    _check_metric(view, metric)
    base_mean = None
    if view.has(base):
        base_mean = (view.result(base).metrics.get(metric) or {}).get("mean")
    rows = []
    for r in view.main:
        mean = (r.metrics.get(metric) or {}).get("mean")
        ret = (r.extras or {}).get("retention") or {}
        rows.append(
            {
                "strategy": r.strategy,
                "mean": math.nan if mean is None else mean,
                "domain_gain": math.nan if mean is None or base_mean is None else mean - base_mean,
                "retention_metric": ret.get("metric"),
                "retention_score": (ret.get("score") or {}).get("mean", math.nan),
                "retention_base": (ret.get("base") or {}).get("mean", math.nan),
                "retention_delta": ret.get("delta", math.nan),
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


# --- 8. learning curve ------------------------------------------------------------------------


def learning_curve(view: RunView, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Per training strategy with learning-curve variants: strategy, label, train_fraction,
    train_pairs, mean, low, high, prepare_s — one row per variant plus the main result,
    sorted by training pairs. Empty when the run has no variants."""
    _check_metric(view, metric)
    trainers = {r.extras["variant_of"] for r in view.results if "variant_of" in (r.extras or {})}
    rows = []
    for r in view.results:
        ex = r.extras or {}
        owner = ex.get("variant_of", r.strategy)
        if owner not in trainers or ex.get("train_pairs") is None:
            continue
        iv = r.metrics.get(metric) or {}
        rows.append(
            {
                "strategy": owner,
                "label": r.strategy,
                "train_fraction": float(ex.get("train_fraction", 1.0)),
                "train_pairs": int(ex["train_pairs"]),
                "mean": iv.get("mean"),
                "low": iv.get("low"),
                "high": iv.get("high"),
                "prepare_s": r.cost.get("prepare_s"),
            }
        )
    cols = ["strategy", "label", "train_fraction", "train_pairs", "mean", "low", "high"]
    df = pd.DataFrame(rows, columns=[*cols, "prepare_s"])
    df = df.sort_values(["strategy", "train_pairs"]).reset_index(drop=True)
    df.attrs.update(metric=metric)
    return df


# --- 9. loss curves, latency, retrieval recall ------------------------------------------------


def loss_curves(view: RunView) -> pd.DataFrame:
    """Training logs of every result that has one: strategy, step, loss, kind ("train"/"eval"),
    best (True on the eval point at `details["best_step"]`). Train steps count from 1."""
    rows = []
    for r in view.results:
        details = (r.prepare or {}).get("details") or {}
        for i, loss in enumerate(details.get("loss_curve") or [], start=1):
            rows.append(
                {"strategy": r.strategy, "step": i, "loss": loss, "kind": "train", "best": False}
            )
        best_step = details.get("best_step")
        for p in details.get("eval_loss_curve") or []:
            rows.append(
                {
                    "strategy": r.strategy,
                    "step": int(p["step"]),
                    "loss": float(p["loss"]),
                    "kind": "eval",
                    "best": best_step is not None and int(p["step"]) == int(best_step),
                }
            )
    return pd.DataFrame(rows, columns=["strategy", "step", "loss", "kind", "best"])


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


def retrieval_recall(view: RunView) -> pd.DataFrame:
    """Recall@k for strategies that retrieved: strategy, mean, low, high, n, top_k (if set)."""
    rows = []
    for r in view.main:
        iv = r.metrics.get("recall_at_k") or {}
        if iv.get("mean") is None:
            continue
        rows.append(
            {
                "strategy": r.strategy,
                "mean": iv["mean"],
                "low": iv.get("low"),
                "high": iv.get("high"),
                "n": iv.get("n"),
                "top_k": (r.config or {}).get("top_k"),
            }
        )
    return pd.DataFrame(rows, columns=["strategy", "mean", "low", "high", "n", "top_k"])


# --- the headline -----------------------------------------------------------------------------


def verdict(
    view: RunView,
    sbs: SideBySide,
    be: BreakEven,
    metric: str = DEFAULT_METRIC,
    base: str = BASE_STRATEGY,
) -> str:
    """Markdown sentences answering, from the stored figures: which strategy is best, by how
    much (and whether the lead is significant), at what cost, and from what volume
    fine-tuning pays off."""
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
    sig = sbs.significance[sbs.significance.metric == metric]
    if not sig.empty:
        runner = sig.sort_values("diff", ascending=False).iloc[0]
        verdict_word = "significantly" if runner.significant else "not significantly"
        out.append(
            f"It is {verdict_word} ahead of the next one, {runner.strategy} "
            f"({iv(runner.strategy)}; paired test p = {runner.p_value:.3f})."
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
    return " ".join(out)
