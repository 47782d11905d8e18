"""Two stored runs side by side (`adaptlab compare A B`): per strategy both ran, the
change from A to B on the questions both answered (paired test over whole groups of
questions, Holm-corrected across the strategies, effect size, chance that B is better) and
each run's cost per right answer, chance of being best and stability."""

from __future__ import annotations

from typing import Any

import pandas as pd

from eval.stats.decision import common_questions, holm, pair_test, prob_best
from eval.views.run_view import RunView, check_metric, higher_is_better, seed_of
from eval.views.tables import render_table
from eval.views.verdict.confidence import cost_per_right_frame, per_right_text
from eval.views.verdict.export import decision_data
from eval.views.verdict.stability import stability_sentences

COLUMNS = [
    "strategy", "n", "mean_a", "mean_b", "diff", "diff_low", "diff_high", "d_z", "test",
    "p_value", "p_holm", "prob_b_better", "per_right_a", "per_right_b",
]  # fmt: skip


def compare_two(
    a: RunView, b: RunView, metric: str, monthly_volume: int = 10_000, months: int = 12
) -> pd.DataFrame:
    """One row per strategy both runs finished (see COLUMNS): diff is B − A on the shared
    questions; prob_b_better the chance B's mean is the better one (paired bootstrap, ties
    split); per_right_* each run's money per right answer (NaN where none is right)."""
    check_metric(a, metric)
    check_metric(b, metric)
    seed = seed_of(a)
    # the same Q/A file gives both runs the same groups; a question only one run grouped
    # keeps that run's group
    groups = b.groups() | a.groups()
    cost_a = cost_per_right_frame(a, monthly_volume, months).set_index("strategy")
    cost_b = cost_per_right_frame(b, monthly_volume, months).set_index("strategy")
    rows = []
    for r in a.main:
        name = r.strategy
        if not b.has(name):
            continue
        sa, sb = a.scores(name, metric), b.scores(name, metric)
        shared = common_questions({"a": sa, "b": sb})
        # the views' own paired test (McNemar or sign-flip over whole groups), B − A
        test = pair_test(sb, sa, groups, seed=seed)
        chance = prob_best(
            {"a": sa, "b": sb},
            higher_is_better=higher_is_better(metric),
            groups=groups,
            seed=seed,
        )
        rows.append(
            {
                "strategy": name,
                "n": len(shared),
                "mean_a": r.mean(metric),
                "mean_b": b.result(name).mean(metric),
                "diff": test["diff"],
                "diff_low": test["diff_low"],
                "diff_high": test["diff_high"],
                "d_z": test["d_z"],
                "test": test["test"],
                "p_value": test["p_value"] if shared else None,
                "prob_b_better": chance["b"] if shared else None,
                "per_right_a": cost_a["money"].get(name) if not cost_a.empty else None,
                "per_right_b": cost_b["money"].get(name) if not cost_b.empty else None,
            }
        )
    for row, ph in zip(rows, holm([row["p_value"] for row in rows]), strict=True):
        row["p_holm"] = ph
    return pd.DataFrame(rows, columns=COLUMNS)


def _f(v: Any, fmt: str = "{:.3f}") -> str:
    return "—" if v is None or pd.isna(v) else fmt.format(v)


def compare_data(a: RunView, b: RunView, metric: str) -> dict[str, Any]:
    """The comparison as plain data (`--json`): rows, then each run's decision figures."""
    frame = compare_two(a, b, metric)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {
        "metric": metric,
        "run_a": a.run.id,
        "run_b": b.run.id,
        "strategies": rows,
        "a": decision_data(a),
        "b": decision_data(b),
    }


def render_compare(a: RunView, b: RunView, metric: str) -> str:
    """The comparison as text: one line per strategy, then each run's chances and stability."""
    frame = compare_two(a, b, metric)
    if frame.empty:
        return f"Runs {a.run.id} and {b.run.id} share no finished strategy."
    rows = []
    for r in frame.to_dict("records"):
        rows.append(
            {
                "Strategy": r["strategy"],
                "n": str(r["n"]),
                "A": _f(r["mean_a"]),
                "B": _f(r["mean_b"]),
                "B − A [95%]": f"{_f(r['diff'], '{:+.3f}')} "
                f"[{_f(r['diff_low'], '{:+.3f}')}, {_f(r['diff_high'], '{:+.3f}')}]",
                "d_z": _f(r["d_z"], "{:+.2f}"),
                "Test": r["test"],
                "p": _f(r["p_value"], "{:.3g}"),
                "Holm p": _f(r["p_holm"], "{:.3g}"),
                "P(B better)": _f(r["prob_b_better"], "{:.2f}"),
                "$/right A": per_right_text(r["per_right_a"], False, a.currency()),
                "$/right B": per_right_text(r["per_right_b"], False, b.currency()),
            }
        )
    out = [f"Run A = {a.run.id}, run B = {b.run.id}; {metric} on the questions both answered.\n"]
    out.append(render_table(rows))
    for tag, view in (("A", a), ("B", b)):
        chances = decision_data(view)["decision"]["prob_best"].get(metric) or {}
        if len(chances) > 1 and None not in chances.values():
            ranked = sorted(chances.items(), key=lambda kv: -kv[1])
            out.append(
                f"Run {tag}, chance of being best: " + ", ".join(f"{s} {p:.2f}" for s, p in ranked)
            )
        out += [f"Run {tag}: {s}" for s in stability_sentences(view, metric)]
    return "\n".join(out)
