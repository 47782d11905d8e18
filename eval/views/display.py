"""The Compare page's two tables (quality, cost), with a label, unit and format per column,
which the app turns into `st.column_config` and the HTML report into text cells."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval.metrics import headline_metric, metric_label
from eval.records import COST_AXES, COST_COLUMNS
from eval.views.format import ColumnSpec, display_name
from eval.views.knowledge import retention_vs_gain
from eval.views.quality import SideBySide
from eval.views.run_view import CONTENDED_LABEL, RunView, contended_mark, priced
from eval.views.verdict.confidence import add_cost_per_right, add_prob_best

NUMBER_COSTS = [c for c in COST_COLUMNS if c.unit != "currency"]


@dataclass
class StrategyTable:
    """Rows per strategy (`frame`, numbers kept as numbers) and how to show each column."""

    frame: pd.DataFrame
    columns: list[ColumnSpec]
    currency: str = "USD"
    notes: list[str] = field(default_factory=list)

    def text_rows(self) -> list[list[str]]:
        """Header then rows, every cell formatted (for HTML and text)."""
        out = [[c.label for c in self.columns]]
        for _, row in self.frame.iterrows():
            out.append([c.text(row.get(c.key), self.currency) for c in self.columns])
        return out


STRATEGY_HELP = "Strategy as it is usually called (the Quality table also gives its registry name)."


def _strategy_columns(view: RunView) -> dict[str, list[str]]:
    names = [r.strategy for r in view.main]
    return {"strategy": [display_name(n) for n in names], "name": names}


def quality_table(view: RunView, sbs: SideBySide, metric: str | None = None) -> StrategyTable:
    """Per main strategy: `metric` (default the run's first) with its 95% interval and whether it
    is the best or not significantly below it, the other metrics' means (the run's task's
    headline metrics shown, the rest details), and general knowledge kept (score, change
    against the base model)."""
    data: dict[str, Any] = _strategy_columns(view)
    cols = [
        ColumnSpec("strategy", "Strategy", "text", help=STRATEGY_HELP),
        ColumnSpec(
            "name", "Registry name", "text", help="The name the CLI and configs use.", more=True
        ),
    ]
    main = metric if metric in sbs.metrics else (sbs.metrics[0] if sbs.metrics else None)
    for m in ([main] if main else []) + [m for m in sbs.metrics if m != main]:
        _add_metric(data, cols, sbs, m, with_interval=m == main, task=view.settings.task)
    if main in sbs.prob_best:
        add_prob_best(data, cols, sbs.prob_best[main], main)
    first = sbs.metrics[0] if sbs.metrics else None
    if first is not None and first in sbs.best:
        _add_standing(data, cols, sbs, first)
    if first is not None:
        _add_retention(data, cols, view, first)
    return StrategyTable(pd.DataFrame(data), cols, view.currency())


def _add_metric(
    data: dict[str, Any],
    cols: list[ColumnSpec],
    sbs: SideBySide,
    m: str,
    with_interval: bool,
    task: str = "qa",
) -> None:
    """The metric's mean per strategy, and its bootstrap interval as text when asked."""
    t, label = sbs.table, metric_label(m)
    data[m] = [t.loc[n, m] for n in data["name"]]
    # The other metrics are details: the chosen one, its interval and standing lead the table,
    # with what a format or style run is judged by (validity, content F1, consistency...).
    more = not (with_interval or headline_metric(m, task))
    cols.append(ColumnSpec(m, label, help=f"{label}, mean over the test questions.", more=more))
    if not with_interval:
        return
    data[f"{m}_ci"] = [
        "—"
        if pd.isna(t.loc[n, f"{m}_low"])
        else f"{t.loc[n, f'{m}_low']:.3f}–{t.loc[n, f'{m}_high']:.3f}"
        for n in data["name"]
    ]
    cols.append(
        ColumnSpec(
            f"{m}_ci",
            f"{label} 95% interval",
            "text",
            help="Bootstrap interval over the test questions: where the mean would fall "
            "with another sample of questions.",
        )
    )


def _add_standing(data: dict[str, Any], cols: list[ColumnSpec], sbs: SideBySide, m: str) -> None:
    """Each strategy against the best on `m`: best, not significantly below it, or below it."""
    sig, best = sbs.significance, sbs.best[m]
    flags = []
    for n in data["name"]:
        row = sig[(sig.metric == m) & (sig.strategy == n)]
        if n == best:
            flags.append(f"best {metric_label(m)}")
        elif not row.empty and row.iloc[0].p_value is not None and not row.iloc[0].significant:
            flags.append("not significantly below the best")
        else:
            flags.append("below the best")
    data["standing"] = flags
    cols.append(
        ColumnSpec(
            "standing",
            "Standing",
            "text",
            help="Against the best on the first metric: paired test on the same questions "
            "(McNemar's exact test for right/wrong scores, sign-flip otherwise), significant at "
            "p < 0.05 after Holm's correction for the number of comparisons.",
        )
    )


def _add_retention(data: dict[str, Any], cols: list[ColumnSpec], view: RunView, m: str) -> None:
    """General knowledge kept (score, change against the base model), when it was measured."""
    ret = retention_vs_gain(view, m).set_index("strategy")
    if ret.retention_delta.isna().all():
        return
    data["general"] = [ret.loc[n, "retention_score"] for n in data["name"]]
    data["general_change"] = [ret.loc[n, "retention_delta"] for n in data["name"]]
    cols.append(
        ColumnSpec(
            "general",
            "General knowledge",
            help="Share of the shipped general-knowledge questions answered right.",
            more=True,  # its change against the base model, next, is what a decision reads
        )
    )
    cols.append(
        ColumnSpec(
            "general_change",
            "General knowledge vs base model",
            fmt="%+.3f",
            help="Change against the base model closed book (negative: forgotten).",
        )
    )


def cost_table(view: RunView, monthly_volume: int, months: int) -> StrategyTable:
    """Per main strategy: money (a month at `monthly_volume` questions with preparation spread
    over `months`, preparation, per 1,000 questions) then every measured cost column of
    `CostSummary` with its label and unit."""
    cur = view.currency()
    data: dict[str, Any] = _strategy_columns(view)
    results = {r.strategy: r.cost for r in view.main}
    # Priced from CPU seconds where the machine was busy (run_view.priced), as the decision is.
    pricing = {n: priced(results[n]) for n in data["name"]}
    per_1k = [pricing[n][0] for n in data["name"]]
    prep = [pricing[n][1] for n in data["name"]]
    data["monthly"] = [
        None if p is None else p / 1000 * monthly_volume + (q or 0.0) / months
        for p, q in zip(per_1k, prep, strict=True)
    ]
    data["price_prepare"], data["price_per_1k"] = prep, per_1k
    cols = [
        ColumnSpec("strategy", "Strategy", "text", help=STRATEGY_HELP),
        ColumnSpec(
            "monthly",
            "Cost a month",
            "money",
            help=f"{monthly_volume:,} questions a month, preparation spread over {months} months.",
        ),
        ColumnSpec(
            "price_prepare", "Preparation cost", "money", help="Once, before answering.", more=True
        ),
        ColumnSpec("price_per_1k", "Cost per 1,000 questions", "money"),
    ]
    for c in NUMBER_COSTS:
        values = [results[n].value(c.key) for n in data["name"]]
        if all(v is None for v in values):
            continue  # e.g. no strategy trains: no trainable-parameter column
        data[c.key] = values
        title = c.title or c.label
        unit = f" ({c.unit})" if c.unit in ("s", "MB") and "(" not in title else ""
        printf = c.fmt.replace("{:,}", "%d").replace("{:", "%").replace("}", "")
        # The chart axis says what the short title leaves out ("(s/question)").
        why = COST_AXES.get(c.key, "")
        cols.append(ColumnSpec(c.key, title + unit, "number", printf, why, more=c.detail))
    add_cost_per_right(data, cols, view, monthly_volume, months)
    notes = [f"Prices from the run's price table, in {cur}."]
    # Wall-clock figures taken on a busy machine overstate the cost: flagged wherever the run
    # measured it (runs stored before the CPU-time figures have no flag to show).
    if any(results[n].contended is not None for n in data["name"]):
        data["contended"] = [contended_mark(results[n]) for n in data["name"]]
        cols.append(
            ColumnSpec(
                "contended",
                CONTENDED_LABEL,
                "text",
                help="'yes': the machine was busy while this strategy was measured (wall time "
                "well above CPU time per thread), so its times and prices read high.",
            )
        )
        if any(data["contended"]):
            notes.append(
                "Contended: measured while other work kept the machine busy; their money "
                "columns are priced from CPU seconds per thread, not the stretched wall time."
            )
    return StrategyTable(pd.DataFrame(data), cols, cur, notes)


# "Each strategy against the best" (verdict.confidence COMPARISON_COLUMNS) as a reader sees it.
SIGNIFICANCE_COLUMNS = [
    ColumnSpec("strategy", "Strategy", "text", help=STRATEGY_HELP),
    ColumnSpec("best", "Best strategy", "text"),
    ColumnSpec("n", "Questions", "number", "%d"),
    ColumnSpec(
        "groups",
        "Groups of questions",
        "number",
        "%d",
        help="Independent groups (source passage or near-duplicates) the test flips whole.",
    ),
    ColumnSpec(
        "test",
        "Test",
        "text",
        help="McNemar's exact test for right/wrong scores, the "
        "sign-flip permutation test otherwise.",
    ),  # fmt: skip
    ColumnSpec(
        "diff",
        "Difference from the best",
        "number",
        "%+.3f",
        help="Mean of strategy − best over the same questions.",
    ),  # fmt: skip
    ColumnSpec("diff_low", "Difference: 95% low", "number", "%+.3f"),
    ColumnSpec("diff_high", "Difference: 95% high", "number", "%+.3f"),
    ColumnSpec(
        "d_z",
        "Effect size",
        "number",
        "%+.2f",
        help="Mean difference / SD of the differences (Cohen's dz).",
    ),  # fmt: skip
    ColumnSpec("d_z_low", "Effect size: 95% low", "number", "%+.2f"),
    ColumnSpec("d_z_high", "Effect size: 95% high", "number", "%+.2f"),
    ColumnSpec("p_value", "p-value", "number", "%.3f"),
    ColumnSpec(
        "p_holm",
        "p-value, corrected",
        "number",
        "%.3f",
        help="Holm's step-down correction for the number of comparisons.",
    ),  # fmt: skip
    ColumnSpec("significant", "Significantly below the best", "text"),
]


def significance_table(frame: pd.DataFrame) -> StrategyTable:
    """The comparisons against the best (rows of one metric) with labelled columns, strategies
    by their display names and the verdict as yes/no."""
    data = frame.copy()
    for col in ("strategy", "best"):
        if col in data:
            data[col] = [display_name(x) for x in data[col]]
    if "significant" in data:
        data["significant"] = ["yes" if bool(x) else "no" for x in data["significant"]]
    cols = [c for c in SIGNIFICANCE_COLUMNS if c.key in data]
    return StrategyTable(data.reset_index(drop=True), cols)


def stability_table(frame: pd.DataFrame) -> StrategyTable:
    """`verdict.stability.stability_frame` with labelled columns: wins, the spread of the
    score across splits, then the score on each split (split 0 is the run's own)."""
    data = frame.copy()
    data["strategy"] = [display_name(x) for x in data["strategy"]]
    fixed = {
        "strategy": ColumnSpec("strategy", "Strategy", "text", help=STRATEGY_HELP),
        "wins": ColumnSpec("wins", "Splits won", "number", "%.1f", help="Ties are shared."),
        "mean": ColumnSpec("mean", "Mean across splits"),
        "sd": ColumnSpec("sd", "Spread (SD)"),
        "min": ColumnSpec("min", "Lowest"),
        "max": ColumnSpec("max", "Highest"),
    }
    cols = []
    for key in data.columns:
        if key in fixed:
            cols.append(fixed[key])
        elif str(key).startswith("split "):
            k = str(key).split()[1]
            cols.append(ColumnSpec(key, "Run's own split" if k == "0" else f"Split {k}"))
    return StrategyTable(data.reset_index(drop=True), cols)


def knowledge_table(frame: pd.DataFrame, label: str) -> StrategyTable:
    """`views.knowledge.knowledge_slices(...).table` with labelled columns: per strategy, the
    questions the base model knew and those it did not, with the score (`label`) on each."""
    data = frame.copy()
    data["strategy"] = [display_name(x) for x in data["strategy"]]
    specs = [
        ColumnSpec("strategy", "Strategy", "text", help=STRATEGY_HELP),
        ColumnSpec("known_n", "Known questions", "number", "%d"),
        ColumnSpec("known_mean", f"{label} on known", "number", "%.3f"),
        ColumnSpec("new_n", "New questions", "number", "%d"),
        ColumnSpec("new_mean", f"{label} on new", "number", "%.3f"),
        ColumnSpec("regressions", "Known, now missed", "number", "%d"),
    ]
    return StrategyTable(data.reset_index(drop=True), [c for c in specs if c.key in data])
