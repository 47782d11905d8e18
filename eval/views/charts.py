"""Altair charts over the view frames (the app draws them with st.altair_chart, the HTML report
renders them to SVG). Each function takes a view's output and returns an
`alt.Chart`/`alt.LayerChart`; an empty input gives a chart that says there is nothing to draw."""

from __future__ import annotations

import altair as alt
import pandas as pd

from eval.attribution import CELL_LABELS
from eval.metrics import metric_label
from eval.records import COST_AXES
from eval.views.cost import BreakEven
from eval.views.format import display_name
from eval.views.verdict.confidence import PER_RIGHT_AXES

AXES = COST_AXES | PER_RIGHT_AXES  # every axis the quality-cost chart offers

WIDTH, HEIGHT = 460, 280


def _empty(message: str) -> alt.Chart:
    return (
        alt.Chart(pd.DataFrame({"text": [message]}))
        .mark_text(size=13, color="gray")
        .encode(text="text:N")
        .properties(width=WIDTH, height=60)
    )


def quality_cost_chart(df: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Points per strategy (with 95% interval bars) and the Pareto frontier as a line; strategies
    are told apart by colour in a legend (text labels next to close points overlap).

    `df` is `views.quality_vs_cost(...)`."""
    if df.empty:
        return _empty("no strategy has both this metric and this cost")
    metric, cost = df.attrs.get("metric", "quality"), df.attrs.get("cost", "cost")
    y_title = f"{metric_label(metric)} (mean, 95% interval)"
    x = alt.X("cost:Q", title=AXES.get(cost, cost), scale=alt.Scale(zero=False, nice=True))
    df = df.assign(
        frontier=df.pareto.map({True: "on the frontier", False: "dominated"}),
        shown=[display_name(s) for s in df.strategy],
    )
    color = alt.Color("shown:N", title="Strategy")
    base = alt.Chart(df).properties(width=WIDTH, height=HEIGHT)
    bars = base.mark_rule(opacity=0.6).encode(
        x=x, y=alt.Y("low:Q", title=y_title), y2="high:Q", color=color
    )
    points = base.mark_point(filled=True, size=110).encode(
        x=x,
        y="quality:Q",
        color=color,
        shape=alt.Shape("frontier:N", title="Pareto"),
        tooltip=["shown", "strategy", "quality", "low", "high", "cost", "frontier"],
    )
    frontier = (
        alt.Chart(df[df.pareto])
        .mark_line(strokeDash=[4, 3], color="gray")
        .encode(x=x, y="quality:Q", order="cost:Q")
    )
    return alt.layer(bars, frontier, points).properties(
        title=f"{metric_label(metric)} against {AXES.get(cost, cost).lower()}"
    )


def break_even_chart(be: BreakEven, volume: float | None = None) -> alt.LayerChart | alt.Chart:
    """Total cost against questions answered, one line per strategy, crossings marked, and
    `volume` (e.g. the recommendation's, when given) as a labelled rule. Titled for what is in
    the run: "when does fine-tuning pay off" only when a strategy trains."""
    if be.curve.empty:
        return _empty("no strategy has prices")
    y = alt.Y("total_cost:Q", title=f"Total cost ({be.currency})")
    x = alt.X(
        "volume:Q",
        title="Questions answered",
        scale=alt.Scale(domain=[0, be.x_max]),
        axis=alt.Axis(format="~s"),
    )
    curve = be.curve.assign(shown=[display_name(s) for s in be.curve.strategy])
    lines = (
        alt.Chart(curve)
        .mark_line()
        .encode(
            x=x,
            y=y,
            color=alt.Color("shown:N", title="Strategy"),
            tooltip=["shown", "volume", "total_cost"],
        )
    )
    layers = [lines]
    cross = be.crossings[be.crossings.volume <= be.x_max].rename(columns={"cost": "total_cost"})
    if not cross.empty:
        layers.append(
            alt.Chart(cross)
            .mark_point(shape="diamond", size=80, filled=True, color="black")
            .encode(x="volume:Q", y="total_cost:Q", tooltip=["label"])
        )
    if volume:
        mark = pd.DataFrame({"volume": [float(volume)], "text": [f"your volume: {volume:,.0f}"]})
        layers.append(
            alt.Chart(mark).mark_rule(color="gray", strokeDash=[3, 3]).encode(x="volume:Q")
        )
        layers.append(
            alt.Chart(mark)
            .mark_text(align="left", dx=4, dy=-6, color="gray", baseline="top")
            .encode(x="volume:Q", y=alt.value(0), text="text:N")
        )
    trains = not be.pays_off.empty
    title = (
        "When does fine-tuning pay off? Preparation + questions x price"
        if trains
        else "Total cost as questions grow: preparation + questions x price"
    )
    return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=title)


def learning_curve_chart(df: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Metric against training pairs with its 95% interval as a band. `df`: learning_curve()."""
    if df.empty:
        return _empty("no learning-curve variants in this run (set learning_curve in the config)")
    metric = df.attrs.get("metric", "metric")
    x = alt.X("train_pairs:Q", title="Training Q/A pairs")
    color = alt.Color("strategy:N")
    base = alt.Chart(df)
    band = base.mark_area(opacity=0.2).encode(
        x=x, y=alt.Y("low:Q", title=f"{metric_label(metric)} (95% CI)"), y2="high:Q", color=color
    )
    line = base.mark_line(point=True).encode(
        x=x,
        y="mean:Q",
        color=color,
        tooltip=["label", "train_pairs", "mean", "low", "high", "prepare_s"],
    )
    return alt.layer(band, line).properties(width=WIDTH, height=HEIGHT, title="Learning curve")


def loss_curve_chart(df: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Training loss per step as a line, eval loss as points, the best step as a rule.
    `df`: loss_curves()."""
    if df.empty:
        return _empty("no training in this run")
    x = alt.X("step:Q", title="Step")
    y = alt.Y("loss:Q", title="Loss", scale=alt.Scale(zero=False))
    layers = [
        alt.Chart(df[df.kind == "train"])
        .mark_line()
        .encode(x=x, y=y, color=alt.Color("strategy:N"), strokeDash=alt.value([1, 0]))
    ]
    ev = df[df.kind == "eval"]
    if not ev.empty:
        layers.append(
            alt.Chart(ev)
            .mark_point(filled=True, size=50, shape="square")
            .encode(x=x, y=y, color="strategy:N", tooltip=["strategy", "step", "loss"])
        )
    best = df[df.best]
    if not best.empty:
        layers.append(alt.Chart(best).mark_rule(strokeDash=[3, 3], color="gray").encode(x="step:Q"))
        layers.append(
            alt.Chart(best.assign(text="best step"))
            .mark_text(align="left", dx=4, dy=-6, color="gray")
            .encode(x="step:Q", y="loss:Q", text="text:N")
        )
    return alt.layer(*layers).properties(
        width=WIDTH, height=HEIGHT, title="Loss: train (line), eval (squares)"
    )


def latency_chart(df: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Per-question latency per strategy: a box (middle half of the questions, whiskers from
    the fastest to the slowest) with every question as a dot, coloured per strategy with a
    legend. `df`: latency_frame()."""
    if df.empty:
        return _empty("no answers stored")
    df = df.assign(shown=[display_name(s) for s in df.strategy])
    y = alt.Y("shown:N", title=None)
    x = alt.X("latency_s:Q", title="Seconds per question")
    color = alt.Color("shown:N", title="Strategy")
    box = alt.Chart(df).mark_boxplot(extent="min-max", opacity=0.5).encode(x=x, y=y, color=color)
    dots = (
        alt.Chart(df)
        .mark_circle(size=18, opacity=0.7, color="black")
        .encode(x=x, y=y, tooltip=["shown", "qid", "latency_s"])
    )
    return alt.layer(box, dots).properties(
        width=WIDTH,
        title=alt.TitleParams(
            "Latency per question",
            subtitle="box: middle half of the questions; whiskers: fastest to slowest; dots: each",
        ),
    )


def recall_chart(df: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Retrieval recall@k per strategy with its 95% interval. `df`: retrieval_recall()."""
    if df.empty:
        return _empty("no retrieval strategy in this run")
    y = alt.Y("strategy:N", title=None)
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("mean:Q", title="Recall@k (95% CI)", scale=alt.Scale(domain=[0, 1])),
            y=y,
            tooltip=["strategy", "mean", "low", "high", "n", "top_k"],
        )
    )
    err = alt.Chart(df).mark_rule().encode(x="low:Q", x2="high:Q", y=y)
    return alt.layer(bars, err).properties(width=WIDTH, title="Retrieval recall@k")


def retention_chart(df: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Domain gain (x) against general-knowledge change (y) per strategy; the good corner is
    top right. `df`: retention_vs_gain()."""
    data = df.dropna(subset=["domain_gain", "retention_delta"])
    if data.empty:
        return _empty(df.attrs.get("note") or "no retention figures in this run")
    metric = df.attrs.get("metric", "metric")
    x = alt.X("domain_gain:Q", title=f"Domain gain ({metric_label(metric)} vs base)")
    y = alt.Y("retention_delta:Q", title="General-knowledge change vs base model")
    zero = pd.DataFrame({"z": [0.0]})
    layers = [
        alt.Chart(zero).mark_rule(color="lightgray").encode(x="z:Q"),
        alt.Chart(zero).mark_rule(color="lightgray").encode(y="z:Q"),
        alt.Chart(data)
        .mark_point(filled=True, size=90)
        .encode(x=x, y=y, tooltip=["strategy", "mean", "domain_gain", "retention_delta"]),
        alt.Chart(data).mark_text(align="left", dx=7).encode(x=x, y=y, text="strategy"),
    ]
    return alt.layer(*layers).properties(
        width=WIDTH, height=HEIGHT, title="Domain gain against general ability retained"
    )


def attribution_frame(cells: list) -> pd.DataFrame:
    """Long frame of attribution cells (eval.attribution.Cells): strategy, cell, label, count,
    share (of the strategy's questions), order (cell position, for stacking)."""

    rows = []
    for c in cells:
        for i, (cell, ids) in enumerate(c.qids.items()):
            rows.append(
                {
                    "strategy": c.strategy,
                    "kind": c.kind,
                    "cell": cell,
                    "label": CELL_LABELS[cell],
                    "count": len(ids),
                    "share": len(ids) / c.n if c.n else 0.0,
                    "order": i,
                }
            )
    return pd.DataFrame(
        rows, columns=["strategy", "kind", "cell", "label", "count", "share", "order"]
    )


# Right answers in greens, failures in warm colours; the two grids share one legend.
CELL_COLOURS = {
    "retrieved_right": "#2e7d32",
    "missed_right": "#9ccc65",
    "retrieved_wrong": "#ef6c00",
    "missed_wrong": "#c62828",
    "known_right": "#1565c0",
    "new_right": "#64b5f6",
    "known_wrong": "#6a1b9a",
    "new_wrong": "#bdbdbd",
}


def attribution_chart(cells: list, ceiling: float | None = None) -> alt.Chart:
    """One stacked bar per strategy: the share of its questions in each attribution cell
    (retrieval strategies: retrieved/missed x right/wrong; closed book: known/new x right/wrong).
    `ceiling`, the oracle-reading score, goes in the title."""

    df = attribution_frame(cells)
    if df.empty:
        return _empty("no strategy to attribute (add a retrieval strategy or the base model)")
    labels = [CELL_LABELS[c] for c in CELL_COLOURS]
    title = "Why answers were right or wrong (share of questions)"
    if ceiling is not None:
        title += f"; oracle-reading ceiling {ceiling:.2f}"
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("share:Q", title="Share of questions", stack="zero", axis=alt.Axis(format="%")),
            y=alt.Y("strategy:N", title=None),
            color=alt.Color(
                "label:N",
                title="Cell",
                scale=alt.Scale(domain=labels, range=list(CELL_COLOURS.values())),
                legend=alt.Legend(orient="bottom", columns=2, labelLimit=320),
            ),
            order=alt.Order("order:Q"),
            tooltip=["strategy", "label", "count", alt.Tooltip("share:Q", format=".0%")],
        )
        .properties(width=WIDTH, title=title)
    )
