"""Training views: loss curves and throughput of every strategy that trained, read from its
typed TrainingLog (or the older `details` keys, through `records.training_log`)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from eval.records import training_log
from eval.store.runs import Run
from eval.views.run_view import RunView


def loss_curves(view: RunView) -> pd.DataFrame:
    """Training logs of every result that has one: strategy, step, loss, kind ("train"/"eval"),
    best (True on the eval point at the log's best step). Train steps count from 1."""
    rows = []
    for r in view.results:
        log = training_log(r.prepare)
        if log is None:
            continue
        for s in log.step_log:
            rows.append(
                {"strategy": r.strategy, "step": s.step, "loss": s.loss, "kind": "train"}
                | {"best": False}
            )
        for p in log.eval_curve:
            step = int(p["step"])
            rows.append(
                {"strategy": r.strategy, "step": step, "loss": float(p["loss"]), "kind": "eval"}
                | {"best": log.best_step is not None and step == int(log.best_step)}
            )
    return pd.DataFrame(rows, columns=["strategy", "step", "loss", "kind", "best"])


# (key, column label, format) of the throughput table; None values show as "—".
THROUGHPUT_COLUMNS: list[tuple[str, str, str]] = [
    ("steps", "Steps", "{}"),
    ("final_loss", "Final loss", "{:.3f}"),
    ("best_step", "Weights from step", "{}"),
    ("useful_tokens_per_s", "Useful tok/s", "{:,.0f}"),
    ("padding_share", "Padding", "{:.0%}"),
    ("peak_memory_mb", "Peak MB", "{:,.0f}"),
    ("checkpointing", "Checkpointing", "{}"),
    ("checkpoint_note", "Why those weights", "{}"),
]


def throughput(run: Run) -> pd.DataFrame:
    """One row per finished result that trained: steps done/planned, final loss, the step whose
    weights it kept and why, and the throughput figures its log has (useful tokens/s, padding
    share, peak memory, activation checkpointing); NaN/None where a log does not record them
    (older runs)."""
    rows: list[dict[str, Any]] = []
    for r in run.results:
        log = training_log(r.prepare) if r.status == "done" else None
        if log is None:
            continue
        timed = any(s.seconds > 0 and s.tokens for s in log.step_log)
        rows.append(
            {
                "strategy": r.strategy,
                "steps": f"{log.steps_done or len(log.step_log)}/{log.steps or '?'}",
                "final_loss": log.final_loss,
                "best_step": log.best_step,
                "useful_tokens_per_s": log.useful_tokens_per_s if timed else math.nan,
                "padding_share": log.padding_share if timed else math.nan,
                "peak_memory_mb": log.peak_memory_mb,
                "checkpointing": log.checkpointing if timed else None,
                "checkpoint_note": log.checkpoint_note or None,
            }
        )
    return pd.DataFrame(rows, columns=["strategy", *(k for k, _, _ in THROUGHPUT_COLUMNS)])


def throughput_rows(run: Run) -> list[dict[str, str]]:
    """`throughput(run)` formatted for a text or HTML table (labels as column names)."""
    out = []
    for row in throughput(run).to_dict("records"):
        shown = {"Strategy": row["strategy"]}
        for key, label, fmt in THROUGHPUT_COLUMNS:
            v = row[key]
            missing = v is None or (isinstance(v, float) and math.isnan(v))
            shown[label] = "—" if missing else fmt.format(v)
        out.append(shown)
    return out
