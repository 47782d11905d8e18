"""The Compare page's two tables (quality, cost), with a label, unit and format per column,
which the app turns into `st.column_config` and the HTML report into text cells."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval.metrics import metric_label
from eval.records import COST_COLUMNS
from eval.views.format import ColumnSpec, display_name
from eval.views.knowledge import retention_vs_gain
from eval.views.quality import SideBySide
from eval.views.run_view import CONTENDED_LABEL, RunView, contended_mark
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


STRATEGY_HELP = "Strategy as it is usually called; the registry name (for the CLI) is in brackets."


def _strategy_columns(view: RunView) -> dict[str, list[str]]:
    names = [r.strategy for r in view.main]
    return {"strategy": [display_name(n) for n in names], "name": names}


def quality_table(view: RunView, sbs: SideBySide, metric: str | None = None) -> StrategyTable:
    """Per main strategy: `metric` (default the run's first) with its 95% interval and whether it
    is the best or not significantly below it, the other metrics' means, and general knowledge
    kept (score, change against the base model)."""
    data: dict[str, Any] = _strategy_columns(view)
    cols = [
        ColumnSpec("strategy", "Strategy", "text", help=STRATEGY_HELP),
        ColumnSpec("name", "Registry name", "text", help="The name the CLI and configs use."),
    ]
    main = metric if metric in sbs.metrics else (sbs.metrics[0] if sbs.metrics else None)
    for m in ([main] if main else []) + [m for m in sbs.metrics if m != main]:
        _add_metric(data, cols, sbs, m, with_interval=m == main)
    if main in sbs.prob_best:
        add_prob_best(data, cols, sbs.prob_best[main], main)
    first = sbs.metrics[0] if sbs.metrics else None
    if first is not None and first in sbs.best:
        _add_standing(data, cols, sbs, first)
    if first is not None:
        _add_retention(data, cols, view, first)
    return StrategyTable(pd.DataFrame(data), cols, view.currency())


def _add_metric(
    data: dict[str, Any], cols: list[ColumnSpec], sbs: SideBySide, m: str, with_interval: bool
) -> None:
    """The metric's mean per strategy, and its bootstrap interval as text when asked."""
    t, label = sbs.table, metric_label(m)
    data[m] = [t.loc[n, m] for n in data["name"]]
    cols.append(ColumnSpec(m, label, help=f"{label}, mean over the test questions."))
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
    per_1k = [results[n].price_per_1k for n in data["name"]]
    prep = [results[n].price_prepare for n in data["name"]]
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
        ColumnSpec("price_prepare", "Preparation cost", "money", help="Once, before answering."),
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
        cols.append(ColumnSpec(c.key, title + unit, "number", printf))
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
            notes.append("Contended: costs measured while other work kept the machine busy.")
    return StrategyTable(pd.DataFrame(data), cols, cur, notes)
