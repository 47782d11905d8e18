"""How sure a decision is, read from a stored run: each strategy's chance of being the best,
the paired tests between strategies (McNemar or sign-flip, Holm-corrected over every pair, with
a paired effect size) and the expected cost of one right answer. Numbers come from
`eval.stats.decision`; every resampling and flip moves whole groups of questions (the source
passage or near-duplicate groups the run stored, eval.stats.groups).

One family of tests, one voice: `paired_family` is the only place a verdict of "significant"
comes from. The headline (diagnostics), the recommendation's bridge, the comparisons table,
the HTML report and the `--json`/MLflow export all read it.

Why Holm over all k(k-1)/2 pairs rather than over the k-1 comparisons with the observed best:
the best is chosen by the same data, so "the others against the best" is a family picked after
looking, and Holm over k-1 of them exceeds its level as k grows (0.064 false "significant" at
k = 5 in a simulation under the null). The all-pairs family is fixed before the data are seen,
so Holm's step-down keeps the chance of any false "significant" at or below alpha whatever the
dependence between the tests. Hsu's multiple comparisons with the best would be sharper but
rests on a normal model with one common variance, which exact McNemar and permutation tests on
bounded scores do not give. The price is some power at large k (10 tests at k = 5).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from eval.metrics import metric_label
from eval.stats.decision import (
    cost_per_right,
    pairwise_family,
    prob_best,
)
from eval.stats.groups import labels_of
from eval.views.format import ColumnSpec, money
from eval.views.run_view import (
    RunView,
    higher_is_better,
    metric_names,
    priced,
    run_lead_metric,
    seed_of,
)
from eval.views.verdict.stability import stability, stability_frame, stability_sentences

# Axes of the quality-cost chart beyond the stored costs (key -> title); lower is better.
PER_RIGHT_AXES: dict[str, str] = {
    "money_per_right": "Cost per right answer",
    "seconds_per_right": "Machine-seconds per right answer",
}
NONE_RIGHT = "none right"
COMPARISON_COLUMNS = [
    "metric", "strategy", "best", "n", "groups", "test", "diff", "diff_low", "diff_high",
    "d_z", "d_z_low", "d_z_high", "p_value", "p_holm", "holm_over", "significant",
]  # fmt: skip
# One row per pair of main strategies (a before b in the run's order), diff = a − b.
PAIR_COLUMNS = ["metric", "a", "b"] + COMPARISON_COLUMNS[3:]


def _resamples(view: RunView) -> int:
    return int(view.settings.bootstrap_resamples)


def chance_best(view: RunView, metric: str) -> dict[str, float]:
    """Main strategy -> probability of the best mean on `metric` (paired bootstrap, seeded with
    the run's split seed, ties split); strategies without scores on it are left out."""
    scores = {r.strategy: view.scores(r.strategy, metric) for r in view.main}
    scores = {k: v for k, v in scores.items() if v}
    if not scores:
        return {}
    return prob_best(
        scores,
        higher_is_better=higher_is_better(metric),
        groups=view.groups(),
        n_resamples=_resamples(view),
        seed=seed_of(view),
    )


def best_sentence(view: RunView, metric: str) -> str | None:
    """'rag is best with probability 0.83 on F1 (paired bootstrap over the test questions).'"""
    chances = {k: v for k, v in chance_best(view, metric).items() if not math.isnan(v)}
    if len(chances) < 2:
        return None
    top = max(chances, key=chances.get)
    return (
        f"{top} is best with probability {chances[top]:.2f} on {metric_label(metric)} "
        f"(paired bootstrap over {_units(view)})."
    )


def _units(view: RunView) -> str:
    """'the 39 test questions (31 independent groups)' or 'the 39 test questions'."""
    n, g = len(view.qids()), view.n_groups()
    return f"the {n} test questions" + (f" ({g} independent groups)" if g != n else "")


def paired_family(view: RunView, metric: str, *, alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of main strategies on `metric` (see PAIR_COLUMNS; diff = a − b), from
    `eval.stats.decision.pairwise_family`: McNemar's test for binary scores (exact, or with
    groups flipped where questions cluster), else the sign-flip permutation test on whole
    groups; `p_holm` is Holm's step-down over all the pairs (`holm_over` of them, see the module
    docstring) and `significant` reads it. Computed once per view and metric."""
    key = ("paired_family", metric, alpha)
    if key not in view.memo:
        scores = {r.strategy: view.scores(r.strategy, metric) for r in view.main}
        rows = pairwise_family(
            {k: v for k, v in scores.items() if v},
            view.groups(),
            alpha=alpha,
            seed=seed_of(view),
            effect_resamples=_resamples(view),
        )
        view.memo[key] = pd.DataFrame([{"metric": metric} | r for r in rows], columns=PAIR_COLUMNS)
    return view.memo[key]


def _oriented(row: dict[str, Any], first: str) -> dict[str, Any]:
    """A pair row as `first` − the other (differences and intervals negated when swapped)."""
    if row["a"] == first:
        return dict(row)
    out = dict(row) | {"a": row["b"], "b": row["a"]}
    for v, lo, hi in (("diff", "diff_low", "diff_high"), ("d_z", "d_z_low", "d_z_high")):
        if row[v] is not None and not pd.isna(row[v]):
            out[v], out[lo], out[hi] = -row[v], -row[hi], -row[lo]
    return out


def pair_result(view: RunView, metric: str, a: str, b: str) -> dict[str, Any] | None:
    """The family's row for a − b (None when either has no scores on `metric`)."""
    for row in paired_family(view, metric).to_dict("records"):
        if {row["a"], row["b"]} == {a, b}:
            return _oriented(row, a)
    return None


def significant_pairs(view: RunView, metric: str) -> list[dict[str, Any]]:
    """The significant pairs of the family, each oriented winner − loser (`a` the better one
    in the metric's direction), largest gap first."""
    hib = higher_is_better(metric)
    out = []
    for row in paired_family(view, metric).to_dict("records"):
        if row["significant"]:
            ahead = row["a"] if (row["diff"] > 0) == hib else row["b"]
            out.append(_oriented(row, ahead))
    return sorted(out, key=lambda r: -abs(r["diff"]))


def comparisons(view: RunView, metric: str, best: str, *, alpha: float = 0.05) -> pd.DataFrame:
    """Every main strategy against `best` on `metric`, one row each (see COMPARISON_COLUMNS):
    the rows of `paired_family` that involve `best`, as strategy − best, with the Holm p over
    all the pairs (not only these)."""
    rows = []
    for row in paired_family(view, metric, alpha=alpha).to_dict("records"):
        if best not in (row["a"], row["b"]):
            continue
        other = row["b"] if row["a"] == best else row["a"]
        r = _oriented(row, other)
        rows.append({k: r[k] for k in PAIR_COLUMNS[3:]} | {"strategy": other, "best": best})
    order = {r.strategy: i for i, r in enumerate(view.main)}
    rows.sort(key=lambda r: order.get(r["strategy"], 0))
    for row in rows:
        row["metric"] = metric
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS) if rows else comparisons_frame()


def comparisons_frame() -> pd.DataFrame:
    """An empty frame of comparisons (no metric has a best)."""
    return pd.DataFrame(columns=COMPARISON_COLUMNS)


def right_basis(view: RunView) -> tuple[str, float, str]:
    """(metric, threshold, words) deciding "right": the judge's pass/fail where the run was
    judged, else the run's verdict.right_metric ≥ right_threshold."""
    if "judge" in metric_names(view.run):
        return "judge", 0.5, "the judge's verdict"
    cfg = view.settings.verdict
    m, t = cfg.right_metric, float(cfg.right_threshold)
    return m, t, f"{metric_label(m)} ≥ {t:g}"


def cost_per_right_frame(
    view: RunView, monthly_volume: int | None = None, months: int = 12
) -> pd.DataFrame:
    """Per main strategy with a price: strategy, right, n, money, money_low, money_high,
    seconds, seconds_low, seconds_high, none_right — the expected cost of one right answer.

    Preparation (money and seconds) is spread over `monthly_volume` × `months` questions, as the
    monthly cost spreads it; without a volume only answering counts. `attrs["basis"]` says what
    counted as right.
    """
    metric, threshold, words = right_basis(view)
    volume = (monthly_volume or 0) * months
    rows = []
    for r in view.main:
        cost = r.cost
        scored = [
            a for a in view.answers_of(r.strategy).values() if a.scores.get(metric) is not None
        ]
        per_1k, prep, _ = priced(cost)  # from CPU time when contended, as the monthly cost
        if per_1k is None or not scored:
            continue
        got = cost_per_right(
            [float(a.scores[metric]) >= threshold for a in scored],
            [a.answer.cost.latency_s for a in scored],
            groups=labels_of([a.qid for a in scored], view.groups()),
            money_per_question=per_1k / 1000.0,
            money_fixed=(prep or 0.0) / volume if volume else 0.0,
            seconds_fixed=(cost.prepare_s or 0.0) / volume if volume else 0.0,
            n_resamples=_resamples(view),
            seed=seed_of(view),
        )
        rows.append({"strategy": r.strategy} | got.to_dict())
    cols = ["strategy", "right", "n", "money", "money_low", "money_high"]
    cols += ["seconds", "seconds_low", "seconds_high", "none_right"]
    df = pd.DataFrame(rows, columns=cols)
    df.attrs.update(basis=words, metric=metric, threshold=threshold)
    return df


def per_right_text(amount: float | None, none_right: bool, currency: str = "USD") -> str:
    """A cost per right answer as text: money, or "none right" where nothing was right."""
    bad = amount is None or (isinstance(amount, float) and not math.isfinite(amount))
    if none_right or bad:
        return NONE_RIGHT
    return money(float(amount), currency)


def decision_figures(
    view: RunView, monthly_volume: int | None = None, months: int = 12
) -> dict[str, Any]:
    """The figures above as plain data, for `--json`, MLflow and the report: per metric the
    chance of being best and the corrected comparisons with the best, the cost per right
    answer."""
    n = len(view.qids())
    out: dict[str, Any] = {
        "questions": n,
        "groups": view.n_groups(),  # independent units the statistics resample
        "multiplicity": "Holm over all pairs of strategies",
        "prob_best": {},
        "comparisons": {},
        "pairs": {},
    }
    for m in metric_names(view.run):
        chances = chance_best(view, m)
        if not chances:
            continue
        out["prob_best"][m] = {k: None if math.isnan(v) else v for k, v in chances.items()}
        means = {r.strategy: r.mean(m) for r in view.main}
        means = {k: v for k, v in means.items() if v is not None}
        if len(means) > 1:
            pick = max if higher_is_better(m) else min
            best = pick(means, key=means.get)
            out["comparisons"][m] = _records(comparisons(view, m, best))
            out["pairs"][m] = _records(paired_family(view, m))
    per_right = cost_per_right_frame(view, monthly_volume, months)
    out["cost_per_right"] = {
        "basis": per_right.attrs["basis"],
        "monthly_volume": monthly_volume,
        "months": months,
        "strategies": {
            row["strategy"]: {k: v for k, v in row.items() if k != "strategy"}
            for row in per_right.astype(object).where(per_right.notna(), None).to_dict("records")
        },
    }
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-safe records: NaN and infinite figures (a d_z bound of c/0) None."""

    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: clean(v) for k, v in row.items()} for row in rows]


def _span(value: float | None, low: float | None, high: float | None, fmt) -> str:
    """'v [low–high]' with an unbounded upper end shown as '∞'."""

    def one(x: float | None) -> str:
        return "∞" if x is None or math.isinf(x) else fmt(x)

    return f"{fmt(value)} [{one(low)}–{one(high)}]"


def per_right_cells(row: dict[str, Any], currency: str = "USD") -> tuple[str, str]:
    """(money, machine-seconds) per right answer of one `cost_per_right_frame` row, as text with
    their 95% intervals, or "none right" for both where nothing was right."""
    if row.get("none_right") or row.get("money") is None:
        return NONE_RIGHT, NONE_RIGHT
    return (
        _span(row["money"], row["money_low"], row["money_high"], lambda x: money(x, currency)),
        _span(row["seconds"], row["seconds_low"], row["seconds_high"], lambda x: f"{x:.2f} s"),
    )


def add_cost_per_right(
    data: dict[str, Any], cols: list, view: RunView, monthly_volume: int, months: int
) -> None:
    """Cost-table columns: money and machine-seconds per right answer, by `data["name"]`."""
    frame = cost_per_right_frame(view, monthly_volume, months)
    rows = {
        r["strategy"]: r for r in frame.astype(object).where(frame.notna(), None).to_dict("records")
    }
    cells = [
        per_right_cells(rows[n], view.currency()) if n in rows else ("—", "—") for n in data["name"]
    ]
    data["money_per_right"] = [c[0] for c in cells]
    data["seconds_per_right"] = [c[1] for c in cells]
    why = (
        f"Right = {frame.attrs['basis']}. Expected cost of one right answer: cost per question "
        f"(preparation spread over {monthly_volume:,} questions a month for {months} months) "
        "divided by the share answered right, with its 95% bootstrap interval."
    )
    # Details, with their intervals wide cells: the page shows the money one when it ranks by it.
    cols.append(
        ColumnSpec(
            "money_per_right", PER_RIGHT_AXES["money_per_right"], "text", help=why, more=True
        )
    )
    cols.append(
        ColumnSpec(
            "seconds_per_right", PER_RIGHT_AXES["seconds_per_right"], "text", help=why, more=True
        )
    )


def add_prob_best(data: dict[str, Any], cols: list, chances: dict[str, float], metric: str) -> None:
    """Quality-table column: each strategy's chance of the best `metric`, by `data["name"]`."""
    data["prob_best"] = [chances.get(n, math.nan) for n in data["name"]]
    cols.append(
        ColumnSpec(
            "prob_best",
            f"Chance of best {metric_label(metric)}",
            fmt="%.2f",
            help="How often this strategy has the best mean when the test questions are "
            "resampled (the same questions for every strategy at once; ties shared).",
        )
    )


# What "cheapest" means for the recommendation (key -> words the UI shows).
RANK_BY: dict[str, str] = {
    "month": "cheapest a month",
    "per_right": "cheapest per correct answer",
}


def with_per_right(
    view: RunView, table: pd.DataFrame, monthly_volume: int, months: int, by: str = "month"
) -> pd.DataFrame:
    """The recommendation's table with `per_right` (money per right answer, inf where none is
    right) added; sorted by it when `by` is "per_right", else left in its order."""
    frame = cost_per_right_frame(view, monthly_volume, months)
    amounts = {  # nothing right: an infinite cost per right answer, ranked last
        s: math.inf if v is None or pd.isna(v) else float(v)
        for s, v in zip(frame.strategy, frame.money, strict=True)
    }
    table = table.copy()
    table["per_right"] = [amounts.get(s, math.nan) for s in table.strategy]
    if by == "per_right":
        table = table.sort_values(["per_right", "monthly_cost"], kind="stable")
    return table.reset_index(drop=True)


def per_right_reason(table: pd.DataFrame, choice: str | None, currency: str = "USD") -> str:
    """Why the choice is the cheapest per right answer, in one sentence."""
    if choice is None:
        return "Ranked by cost per right answer: no strategy meets the bar."
    value = float(table.set_index("strategy").loc[choice, "per_right"])
    cost = NONE_RIGHT if math.isinf(value) or math.isnan(value) else money(value, currency)
    return (
        f"Ranked by cost per right answer: {choice} costs {cost} per right answer, the least "
        "among the strategies meeting the bar."
    )


def per_right_costs(
    view: RunView, axis: str, monthly_volume: int | None, months: int = 12
) -> dict[str, float] | None:
    """Strategy -> finite cost per right answer on `axis` (a PER_RIGHT_AXES key), or None when
    `axis` is not one (a stored cost). Strategies with nothing right are left out."""
    if axis not in PER_RIGHT_AXES:
        return None
    column = "money" if axis == "money_per_right" else "seconds"
    frame = cost_per_right_frame(view, monthly_volume, months)
    return {
        str(s): float(v)
        for s, v in zip(frame.strategy, frame[column], strict=True)
        if v is not None and math.isfinite(float(v))
    }


def render_decision(view: RunView, monthly_volume: int = 10_000, months: int = 12) -> str:
    """The figures above as text for `python -m eval show`: per metric the chance of being
    best, on the metric the run's task is judged by first (F1 for Q/A, valid format, style
    pass; else the first) the corrected comparisons with the best; then the cost per right
    answer and the stability across re-splits."""
    figures = decision_figures(view, monthly_volume, months)
    lead = run_lead_metric(view)
    first = lead if lead in figures["prob_best"] else None
    first = first or next(iter(figures["prob_best"]), None)
    n, g = figures["questions"], figures["groups"]
    lines = [
        f"Test set: {n} questions in {g} independent groups (questions of one source passage "
        "or near-duplicates form one group; every interval and test resamples whole groups)."
    ]
    for m, chances in figures["prob_best"].items():
        if len(chances) < 2 or None in chances.values():
            continue  # one strategy scored on it, or no question all of them scored
        ranked = sorted(chances.items(), key=lambda kv: -kv[1])
        lines.append(
            f"Chance of being best on {metric_label(m)}: "
            + ", ".join(f"{s} {p:.2f}" for s, p in ranked)
        )
        for row in figures["comparisons"].get(m, []) if m == first else []:
            if row["diff"] is None or row["p_value"] is None:
                continue
            dz = "" if row["d_z"] is None else f", d_z {row['d_z']:+.2f}"
            verdict = "significant" if row["significant"] else "not significant"
            lines.append(
                f"  {row['strategy']} − {row['best']}: {row['diff']:+.3f} "
                f"[{row['diff_low']:+.3f}, {row['diff_high']:+.3f}]{dz}; {row['test']} "
                f"p = {row['p_value']:.3g}, Holm p = {row['p_holm']:.3g} over "
                f"{row['holm_over']} pair{'s' if row['holm_over'] != 1 else ''} ({verdict})"
            )
    per = figures["cost_per_right"]
    lines.append(
        f"Cost per right answer (right = {per['basis']}; preparation spread over "
        f"{monthly_volume:,} questions a month for {months} months):"
    )
    for s, row in per["strategies"].items():
        amount, secs = per_right_cells(row, view.currency())
        cost = NONE_RIGHT if row["none_right"] else f"{amount}, {secs}"
        lines.append(f"  {s}: {cost} ({row['right']} of {row['n']} right)")
    st = stability(view, first) if first else None
    if st is not None:
        lines.append(" ".join(stability_sentences(view, first)))
        for row in stability_frame(st).to_dict("records"):
            per = ", ".join(f"{s.means[row['strategy']]:.3f}" for s in st.splits)
            lines.append(
                f"  {row['strategy']}: wins {row['wins']:g}, {row['mean']:.3f} ± {row['sd']:.3f} "
                f"(splits: {per})"
            )
    return "\n".join(lines)
