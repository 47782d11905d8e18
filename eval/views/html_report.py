"""Exports of a stored run: its config as YAML, the command that reruns it, and a self-contained
HTML report (inline CSS and SVG charts, no scripts, opens offline)."""

from __future__ import annotations

import html
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pandas as pd

from eval import views
from eval.config import RunConfig
from eval.stats.agreement import agreement_by_strategy
from eval.store.exports import portable, run_folder
from eval.store.rows import SplitSummary
from eval.store.runs import Run, RunStore
from eval.views import charts
from eval.views.display import (
    StrategyTable,
    cost_table,
    knowledge_table,
    quality_table,
    significance_table,
    stability_table,
)
from eval.views.judge import (
    agreement_frame,
    disagreement_frame,
    judge_cost_frame,
    judge_summary,
)
from eval.views.tables import failures, server_line
from eval.views.training import throughput_rows
from eval.views.tuning import budget_of, trials_chart, trials_frame, tuning_table
from eval.views.verdict.decision import decide
from eval.views.verdict.diagnostics import diagnose, power_rows
from eval.views.verdict.stability import stability, stability_frame

# Inputs of the recommendation shown in the report (the app lets the user change them).
DEFAULT_MONTHLY_VOLUME = 10_000
DEFAULT_THRESHOLD = 0.1
DEFAULT_MONTHS = 12


def run_config_yaml(run: Run, portable_paths: bool = False) -> str:
    """The run's stored RunConfig as YAML (what `python -m eval run --config` reads).

    Goes through RunConfig so the text is validated and complete; a leading comment names the
    run and the command. Raises ConfigError if the stored config no longer validates (e.g. a
    strategy that is not registered any more). With `portable_paths`, absolute paths are
    relative to the run's folder or cut to their last name (a download for a browser user).
    """
    body = RunConfig.from_dict(run.config).to_yaml()
    if portable_paths:  # for a browser: the server's folders stay on the server
        body = portable(body, run_folder(run))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at))
    return f"# AdaptLab run {run.id} ({when}). Reproduce with: {cli_command(run)}\n{body}"


def cli_command(run: Run, config_path: str = "run.yaml") -> str:
    """The headless command reproducing `run` from its YAML (run_config_yaml) saved at
    `config_path`. Paths inside the YAML (corpus, qa, store) must exist where it runs."""
    return f"python -m eval run --config {shlex.quote(config_path)}"


def chart_svg(chart: Any) -> str:
    """An Altair chart rendered to an SVG string, offline (vl-convert bundles Vega)."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_dict())


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom;max-width:9em}.wide{overflow-x:auto}
.headline{font-size:1.1em;background:#eef7ee;padding:.6em .8em;border-radius:4px}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
td.best{font-weight:bold;background:#eef7ee}.meta{color:#555;font-size:.9em}
.chart{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}.note{color:#666}
.caution{font-size:1.05em;background:#fff4e0;border-left:4px solid #d98c00;padding:.6em .8em;
border-radius:4px}pre{overflow-x:auto;background:#f8f8f8;padding:.5em}
"""
# Caveats (what the test set cannot tell apart, the generator's ceiling) are warnings: amber,
# never the green of the recommendation. Wide tables scroll sideways inside `.wide`.


def _table(df: pd.DataFrame, best_cells: bool = False) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            text = "" if v is None else str(v)
            cls = ' class="best"' if best_cells and text.startswith("★") else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<div class='wide'>{table}</div>"


def _fmt_frame(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    def f(v):
        if isinstance(v, float):
            return "—" if pd.isna(v) else f"{v:.{digits}f}"
        return v

    return df.apply(lambda col: col.map(f))


def _strong(text: str) -> str:
    """Escaped text with the narrative's **bold** kept."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def _rows_table(table: StrategyTable) -> str:
    """A view table as HTML: header row, then text cells (the first, the strategy, left)."""
    head, *rows = table.text_rows()
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    cols = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    table = f"<table><thead><tr>{cols}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class='wide'>{table}</div>"


def html_report(
    store: RunStore,
    run_id: str,
    *,
    metric: str | None = None,
    monthly_volume: int = DEFAULT_MONTHLY_VOLUME,
    threshold: float = DEFAULT_THRESHOLD,
    months: int = DEFAULT_MONTHS,
    corpus_name: str | None = None,
) -> str:
    """A self-contained HTML page for run `run_id`, laid out for a laptop screen: header
    (corpus by `corpus_name`, else its folder's name; split, models, device, date), the
    decision of the Compare page for the given volume and bar, the quality and cost tables, the
    charts as inline SVG and the reproduce command. No external scripts, styles or fonts.

    `metric` defaults to what the run's task is judged by first (the Compare page's opening
    metric) and falls back to it when the run lacks it.
    """
    view = views.RunView.load(store, run_id)
    run = view.run
    names = views.metric_names(run)
    if metric not in names:
        metric = views.run_lead_metric(view)
    esc = html.escape
    sections = [
        f"<h1>AdaptLab comparison</h1><p class='meta'>{'<br>'.join(_header(run, corpus_name))}</p>"
    ]
    if not view.main:
        sections.append("<p>No strategy finished in this run.</p>")
    else:
        sections += _findings(view, metric, monthly_volume, threshold, months)
    for name, err in failures(run):  # server folders in a message stay on the server
        sections.append(f"<p class='caution'>{esc(name)} failed: {esc(portable(err, None))}</p>")
    sections.append(
        f"<h2>Reproduce</h2><p>Save the config below as run.yaml, then run "
        f"<code>{esc(cli_command(run))}</code>.</p><pre>{esc(_config_text(run))}</pre>"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>AdaptLab run {esc(run.id)}</title><style>{CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )


def _groups(split: SplitSummary) -> int:
    """How many independent groups the stored test questions fall in (runs stored before
    groups were: every question its own)."""
    return len({split.groups.get(q, q) for q in split.test_ids}) or split.test


def _header(run: Run, corpus_name: str | None = None) -> list[str]:
    """The report's header lines: run, corpus (by name, not by server path), split, models and
    device."""
    esc = html.escape
    meta, corpus, split, models = (
        run.meta,
        run.meta.corpus,
        run.meta.split,
        run.meta.models,
    )
    config = RunConfig.from_stored(run.config)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at))
    return [
        f"Run <b>{esc(run.id)}</b>{' — ' + esc(run.name) if run.name else ''}, {esc(when)}, "
        f"status {esc(run.status)}",
        f"Corpus: {esc(corpus_name or Path(config.corpus or '?').name)} — "
        f"{corpus.documents} "
        f"documents, {corpus.chunks} chunks, {corpus.tokens} tokens, "
        f"fingerprint {esc(str(run.fingerprint or '?'))}",
        f"Q/A split: {split.pairs} pairs → train {split.train}, test {split.test} in "
        f"{_groups(split)} independent groups (questions of one source passage or "
        "near-duplicates: every interval and test resamples whole groups)",
        # A model folder is a server path: its name only (eval.store.exports.portable).
        f"Models: {esc(portable(str(models.get('generator', config.models.generator)), None))}"
        f" / {esc(portable(str(models.get('embedder', config.models.embedder)), None))}"
        f" on {esc(meta.device or '?')}",
    ] + (
        [f"Engine: {esc(str(models.get('engine')))}, {esc(server_line(models['server']))}"]
        if models.get("server")
        else []
    )


def _findings(view, metric: str, monthly_volume: int, threshold: float, months: int) -> list[str]:
    """The sections of a run with finished strategies: the decision (as on the Compare page's
    first screen), the quality and cost tables, slices, training, charts."""
    esc = html.escape
    run = view.run
    sections: list[str] = []
    sbs = views.side_by_side(view)
    decision = decide(view, monthly_volume, metric, threshold, months)

    # What the test set cannot tell apart, or the generator's ceiling, is said before any ranking.
    sections += [f"<p class='caution'><b>{esc(h)}</b></p>" for h in diagnose(view).headline]
    sections.append(
        f"<h2>Decision</h2><p class='note'>{monthly_volume:,} questions a month, "
        f"{esc(views.metric_label(metric))} ≥ {threshold:g}, preparation spread over "
        f"{months} months.</p><p class='headline'>{_strong(decision.headline)}</p><ul>"
        + "".join(f"<li>{_strong(x)}</li>" for x in decision.sentences()[1:])
        + "</ul>"
    )
    sections.append(_diagnostics_section(view))
    sections.append("<h2>Quality</h2>" + _rows_table(quality_table(view, sbs, metric)))
    sections.extend(_confidence_sections(view, sbs, metric))
    sections.extend(_judge_sections(view))
    sections.append("<h2>Cost</h2>" + _rows_table(cost_table(view, monthly_volume, months)))
    be = views.break_even(view)
    if be.x_max < monthly_volume:  # the chart covers the volume the decision is made for
        be = views.break_even(view, x_max=monthly_volume * 1.2)
    slices = views.knowledge_slices(view, metric)
    sections.append("<h2>Known and new questions</h2>")
    if slices.table is None:
        sections.append(f"<p class='note'>{esc(slices.reason)}.</p>")
    else:
        known = knowledge_table(slices.table, views.metric_label(metric))
        sections.append(f"<p class='note'>{esc(slices.reason)}.</p>" + _rows_table(known))
    ret = views.retention_vs_gain(view, metric)
    trained = throughput_rows(run)
    if trained:
        sections.append("<h2>Training</h2>" + _table(pd.DataFrame(trained)))
    sections.extend(_tuning_sections(run))

    figures = [
        ("Quality against price", charts.quality_cost_chart(views.quality_vs_cost(view, metric))),
        (
            "Quality against cost per right answer",
            charts.quality_cost_chart(
                views.quality_vs_cost(view, metric, "money_per_right", monthly_volume, months)
            ),
        ),
        ("Break-even", charts.break_even_chart(be, volume=monthly_volume)),
        ("Retention", charts.retention_chart(ret)),
        ("Learning curve", charts.learning_curve_chart(views.learning_curve(view, metric))),
        ("Loss", charts.loss_curve_chart(views.loss_curves(view))),
        ("Latency", charts.latency_chart(views.latency_frame(view))),
        ("Recall", charts.recall_chart(views.retrieval_recall(view))),
    ]
    sections.append("<h2>Charts</h2>")
    for title, chart in figures:
        sections.append(
            f"<div class='chart' title='{esc(title)}'>{_strip_xml_decl(chart_svg(chart))}</div>"
        )
    return sections


def _confidence_sections(view: views.RunView, sbs: views.SideBySide, metric: str) -> list[str]:
    """Each strategy against the best on `metric` (test, raw and Holm-adjusted p, effect
    size), then the scores across re-drawn splits when the run has them."""

    out = []
    sig = sbs.significance[sbs.significance.metric == metric]
    if not sig.empty:
        out.append(
            "<h3>Against the best</h3><p class='note'>McNemar's test for right/wrong scores, the "
            "sign-flip permutation test otherwise, both flipping whole groups of questions; "
            "Holm's correction over every pair of strategies (the same tests the headline "
            "reads); difference = strategy − best with its 95% bootstrap interval.</p>"
            + _rows_table(significance_table(sig))
        )
    st = stability(view, metric)
    if st is not None:
        out.append(
            "<h3>Across re-drawn train/test splits</h3><p class='note'>Splits won are shared "
            "on a tie.</p>" + _rows_table(stability_table(stability_frame(st)))
        )
    return out


def _diagnostics_section(view: views.RunView) -> str:
    """Why strategies lost: the headline, the oracle ceiling, the attribution chart and advice,
    and the power of each comparison."""

    esc = html.escape
    d = diagnose(view)
    out = ["<h2>Why strategies lost</h2>"]
    out += [f"<p><b>{esc(h)}</b></p>" for h in d.headline]
    label = views.metric_label(d.metric)
    if d.oracle is not None:
        o = d.oracle
        out.append(
            f"<p>Oracle reading (the gold passage in RAG's layout, same generator): {esc(label)} "
            f"{o.mean:.3f} [{o.low:.3f}, {o.high:.3f}] on {o.n} questions, the "
            "ceiling of any retrieval strategy with this generator.</p>"
        )
    chart = charts.attribution_chart(d.cells, d.oracle.mean if d.oracle else None)
    out.append(f"<div class='chart' title='Attribution'>{_strip_xml_decl(chart_svg(chart))}</div>")
    out.append(
        f"<p class='note'>Right = {esc(label)} ≥ {d.threshold:g}.</p><ul>"
        + "".join(f"<li><b>{esc(s)}</b>: {esc(t)}</li>" for s, t in d.advice.items())
        + "</ul>"
    )
    if d.power:
        out.append("<h3>Power</h3>" + _table(pd.DataFrame(power_rows(d))))
        out.append("<p class='note'>" + "<br>".join(esc(p.sentence()) for p in d.power) + "</p>")
    return "".join(out)


def _judge_sections(view, shown: int = 50) -> list[str]:
    """The judge against F1 (agreement, kappa, the first disagreements) and what judging cost;
    nothing when the run was not judged."""

    agreements = agreement_by_strategy(view.answers)
    if not agreements:
        return []
    out = [
        "<h2>Judge and F1</h2><p class='note'>Where the judge model and token F1 (right at "
        "≥ 0.5) call answers differently; Cohen's kappa is agreement beyond chance.</p>"
        + _table(agreement_frame(agreements))
    ]
    dis = disagreement_frame(agreements["all"])
    if len(dis):
        clipped = dis.head(shown).map(
            lambda v: v[:117] + "…" if isinstance(v, str) and len(v) > 120 else v
        )
        out.append(
            f"<p class='note'>{len(dis)} answers graded differently"
            f"{f' (first {shown})' if len(dis) > shown else ''}.</p>" + _table(_fmt_frame(clipped))
        )
    out.append(
        f"<p class='note'>{html.escape(judge_summary(view.run))}</p>"
        + _table(judge_cost_frame(view.run))
    )
    return out


def _config_text(run: Run) -> str:
    """The run's YAML with the server's folders cut (a report is passed around; the app hides
    server paths everywhere else): paths inside the run's folder relative, others by name."""
    try:
        return run_config_yaml(run, portable_paths=True)
    except ValueError as e:  # a stale config still shows in the report, with the reason
        import yaml

        shown = portable(run.config, run_folder(run))
        return f"# this stored config no longer validates: {portable(str(e), None)}\n" + (
            yaml.safe_dump(shown)
        )


def _strip_xml_decl(svg: str) -> str:
    return svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg


def _tuning_sections(run: Run) -> list[str]:
    """Each arm's tuning (chosen vs default, validation scores, trials) and its trials chart."""

    table = tuning_table(run)
    if table.empty:
        return [
            f"<h2>Tuning</h2><p class='note'>Tuning budget {html.escape(budget_of(run))}: every "
            "arm ran with its default settings.</p>"
        ]
    chart = trials_chart(trials_frame(run))
    return [
        "<h2>Tuning</h2><p class='note'>Scored on training pairs, never the test split (all "
        "of them for an arm that learns nothing from them, a share held out by group for one "
        "that trains); settings clearly behind were stopped early; the decision column says "
        "why each default was kept or replaced. Tuning time is included in the preparation "
        "cost.</p>" + _table(table),
        f"<div class='chart' title='Tuning trials'>{_strip_xml_decl(chart_svg(chart))}</div>",
    ]
