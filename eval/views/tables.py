"""Text tables of a stored run (never of live objects): quality, cost and training rows, the
run as text for `python -m eval show`, and its totals as plain data for `--json`."""

from __future__ import annotations

from typing import Any

from eval.metrics import METRICS
from eval.records import COST_COLUMNS
from eval.stats.intervals import intervals_to_dict
from eval.store.runs import Run
from eval.views.run_view import CONTENDED_LABEL, contended_mark, format_interval, metric_names
from eval.views.training import throughput_rows


def quality_rows(run: Run) -> list[dict[str, str]]:
    """One row per strategy: every metric as 'mean [low, high]'."""
    names = metric_names(run)
    rows = []
    for r in run.results:
        row = {"Strategy": r.strategy}
        for m in names:
            label = METRICS[m].label if m in METRICS else m
            row[label] = format_interval(r.interval(m)) if r.status == "done" else "failed"
        rows.append(row)
    return rows


def cost_rows(run: Run) -> list[dict[str, str]]:
    """One row per strategy: every cost column, formatted."""
    rows = []
    for r in run.results:
        row = {"Strategy": r.strategy}
        for c in COST_COLUMNS:
            row[c.label] = c.format(r.cost.value(c.key)) if r.status == "done" else "failed"
        row[CONTENDED_LABEL] = contended_mark(r.cost)
        rows.append(row)
    return rows


def failures(run: Run) -> list[tuple[str, str]]:
    """(strategy, error) of every result that did not finish."""
    return [(r.strategy, r.error or "unknown error") for r in run.results if r.status != "done"]


def render_table(rows: list[dict[str, str]]) -> str:
    """A plain fixed-width text table."""
    if not rows:
        return "(no results)"
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    line = "  ".join(c.ljust(widths[c]) for c in cols)
    out = [line, "  ".join("-" * widths[c] for c in cols)]
    for r in rows:
        out.append("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    return "\n".join(out)


def server_line(server: dict[str, Any]) -> str:
    """'model M at URL (kind, version V)' from a run's stored server record."""
    version = f", version {server['version']}" if server.get("version") else ""
    return (
        f"model {server.get('model_id', '?')} at {server.get('base_url', '?')} "
        f"({server.get('kind', 'openai-compatible')}{version})"
    )


def render_run(run: Run) -> str:
    """The run's header, quality table, cost table and failures, as text."""
    meta = run.meta
    split, corpus, models = meta.split, meta.corpus, meta.models
    head = [
        f"Run {run.id}  status: {run.status}" + (f"  ({run.name})" if run.name else ""),
        f"Corpus: {corpus.documents} documents, {corpus.chunks} chunks, "
        f"{corpus.tokens} tokens  fingerprint {run.fingerprint or '?'}",
        f"Q/A: {split.pairs} pairs -> train {split.train}, "
        f"test {split.test}   device: {meta.device or '?'}",
    ]
    if models:
        head.append(
            f"Models: {models.get('generator')} / {models.get('embedder')} "
            f"(loaded in {models.get('load_s', 0):.1f} s, shared by all strategies)"
        )
    if models.get("server"):
        head.append(f"Engine: {models.get('engine')}, {server_line(models['server'])}")
    for err in corpus.errors:
        head.append(f"Refused file: {err['name']}: {err['reason']}")
    parts = [
        "\n".join(head),
        "",
        "Quality (mean [95% bootstrap CI])",
        render_table(quality_rows(run)),
    ]
    parts += ["", "Cost", render_table(cost_rows(run))]
    training = throughput_rows(run)
    if training:
        parts += ["", "Training (loss and throughput)", render_table(training)]
    for name, err in failures(run):
        parts.append(f"\n{name} failed: {err}")
    if run.error:
        parts.append(f"\nRun error: {run.error}")
    return "\n".join(parts)


def run_summary(run: Run) -> dict[str, Any]:
    """The run's totals as plain data (what `--json` writes): no per-question rows."""
    return {
        "run_id": run.id,
        "name": run.name,
        "status": run.status,
        "fingerprint": run.fingerprint,
        "meta": {k: v for k, v in run.meta.to_dict().items() if k != "split"}
        | {
            "split": {
                k: v
                for k, v in run.meta.split.to_dict().items()
                if k not in ("test_ids", "groups")  # per question: the exports carry them
            }
        },
        "strategies": {
            r.strategy: {
                "status": r.status,
                "metrics": intervals_to_dict(r.metrics),
                "cost": r.cost.to_dict(),
                "error": r.error,
            }
            | ({"judge_cost": r.extras.judge.to_dict()} if r.extras.judge else {})
            # Where a Ray arm ran: node, CPUs, GPUs, the worker's seconds, the storage used.
            | ({"placement": r.extras.placement.to_dict()} if r.extras.placement else {})
            for r in run.results
        },
    }
