"""Exports of a stored run: its config as YAML, the command that reruns it, and a self-contained
HTML report (inline CSS and SVG charts, no scripts, opens offline)."""

from __future__ import annotations

import html
import shlex
import time
from typing import Any

import pandas as pd

from eval import views as db
from eval.config import RunConfig
from eval.store import Run, RunStore
from eval.views import charts
from eval.views.tables import failures
from eval.views.training import throughput_rows

# Inputs of the recommendation shown in the report (the app lets the user change them).
DEFAULT_MONTHLY_VOLUME = 10_000
DEFAULT_THRESHOLD = 0.1
DEFAULT_MONTHS = 12


def run_config_yaml(run: Run) -> str:
    """The run's stored RunConfig as YAML (what `python -m eval run --config` reads).

    Goes through RunConfig so the text is validated and complete; a leading comment names the
    run and the command. Raises ConfigError if the stored config no longer validates (e.g. a
    strategy that is not registered any more).
    """
    body = RunConfig.from_dict(run.config).to_yaml()
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
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
td.best{font-weight:bold;background:#eef7ee}.meta{color:#555;font-size:.9em}
.chart{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}.note{color:#666}
"""


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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt_frame(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    def f(v):
        if isinstance(v, float):
            return "—" if pd.isna(v) else f"{v:.{digits}f}"
        return v

    return df.apply(lambda col: col.map(f))


def html_report(
    store: RunStore,
    run_id: str,
    *,
    metric: str = db.DEFAULT_METRIC,
    monthly_volume: int = DEFAULT_MONTHLY_VOLUME,
    threshold: float = DEFAULT_THRESHOLD,
    months: int = DEFAULT_MONTHS,
) -> str:
    """A self-contained HTML page for run `run_id`: header (corpus, split, models, device, date),
    the side-by-side table with the best marked, the recommendation for the given inputs, the
    charts as inline SVG and the reproduce command. No external scripts, styles or fonts.

    `metric` falls back to the run's first metric when the run lacks it.
    """
    view = db.RunView.load(store, run_id)
    run = view.run
    names = db.metric_names(run)
    if metric not in names and names:
        metric = names[0]
    esc = html.escape
    sections = [f"<h1>AdaptLab comparison</h1><p class='meta'>{'<br>'.join(_header(run))}</p>"]
    if not view.main:
        sections.append("<p>No strategy finished in this run.</p>")
    else:
        sections += _findings(view, metric, monthly_volume, threshold, months)
    for name, err in failures(run):
        sections.append(f"<p class='note'>{esc(name)} failed: {esc(err)}</p>")
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


def _header(run: Run) -> list[str]:
    """The report's header lines: run, corpus, split, models and device."""
    esc = html.escape
    meta, corpus, split, models = (
        run.meta,
        run.meta.get("corpus", {}),
        run.meta.get("split", {}),
        run.meta.get("models", {}),
    )
    cfg_models = run.config.get("models", {})
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at))
    return [
        f"Run <b>{esc(run.id)}</b>{' — ' + esc(run.name) if run.name else ''}, {esc(when)}, "
        f"status {esc(run.status)}",
        f"Corpus: {esc(str(run.config.get('corpus', '?')))} — {corpus.get('documents', '?')} "
        f"documents, {corpus.get('chunks', '?')} chunks, {corpus.get('tokens', '?')} tokens, "
        f"fingerprint {esc(str(run.fingerprint or '?'))}",
        f"Q/A split: {split.get('pairs', '?')} pairs → train {split.get('train', '?')}, "
        f"test {split.get('test', '?')}",
        f"Models: {esc(str(models.get('generator', cfg_models.get('generator'))))}"
        f" / {esc(str(models.get('embedder', cfg_models.get('embedder'))))}"
        f" on {esc(str(meta.get('device', '?')))}",
    ]


def _findings(view, metric: str, monthly_volume: int, threshold: float, months: int) -> list[str]:
    """The sections of a run with finished strategies: tables, recommendation, charts."""
    esc = html.escape
    run = view.run
    sections: list[str] = []
    sbs = db.side_by_side(view)
    sections.append(
        "<h2>Side by side</h2><p class='note'>Mean [95% bootstrap interval]. ★ best in its "
        "column (costs: lowest). (=) not significantly different from the best (paired "
        "permutation test, p ≥ 0.05).</p>" + _table(sbs.display, best_cells=True)
    )
    rec = db.recommend(view, monthly_volume, metric, threshold, months)
    sections.append(
        f"<h2>Recommendation</h2><p class='note'>{monthly_volume:,} questions a month, "
        f"{esc(db.metric_label(metric))} ≥ {threshold:g}, preparation amortised over "
        f"{months} months.</p><p>" + "<br>".join(esc(s) for s in rec.reasons) + "</p>"
    )
    be = db.break_even(view)
    if not be.pays_off.empty:
        sections.append("<p>" + "<br>".join(esc(s) for s in be.pays_off.sentence) + "</p>")
    slices = db.knowledge_slices(view, metric)
    sections.append("<h2>Known and new questions</h2>")
    if slices.table is None:
        sections.append(f"<p class='note'>{esc(slices.reason)}.</p>")
    else:
        sections.append(
            f"<p class='note'>{esc(slices.reason)}.</p>" + _table(_fmt_frame(slices.table))
        )
    ret = db.retention_vs_gain(view, metric)
    trained = throughput_rows(run)
    if trained:
        sections.append("<h2>Training</h2>" + _table(pd.DataFrame(trained)))

    figures = [
        ("Quality against price", charts.quality_cost_chart(db.quality_vs_cost(view, metric))),
        ("Break-even", charts.break_even_chart(be)),
        ("Retention", charts.retention_chart(ret)),
        ("Learning curve", charts.learning_curve_chart(db.learning_curve(view, metric))),
        ("Loss", charts.loss_curve_chart(db.loss_curves(view))),
        ("Latency", charts.latency_chart(db.latency_frame(view))),
        ("Recall", charts.recall_chart(db.retrieval_recall(view))),
    ]
    sections.append("<h2>Charts</h2>")
    for title, chart in figures:
        sections.append(
            f"<div class='chart' title='{esc(title)}'>{_strip_xml_decl(chart_svg(chart))}</div>"
        )
    return sections


def _config_text(run: Run) -> str:
    try:
        return run_config_yaml(run)
    except ValueError as e:  # a stale config still shows in the report, with the reason
        import yaml

        return f"# this stored config no longer validates: {e}\n" + yaml.safe_dump(run.config)


def _strip_xml_decl(svg: str) -> str:
    return svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg
