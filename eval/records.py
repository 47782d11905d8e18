"""Typed records that cross from the run to the views: the cost summary and the training log.

`CostSummary` is what the harness measures per strategy; its field metadata (label, unit,
format, direction) is the single list of cost columns the CLI, the app and the HTML report
draw, so a new cost column is one field here. `training_log` reads the typed `TrainingLog` a
strategy stored, or rebuilds one from the `details` keys of runs stored before it existed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.types import PrepareReport, TrainingLog, TrainStep


def cost(label: str = "", unit: str = "", fmt: str = "", axis: str = "", title: str = "") -> Any:
    """A CostSummary field: shown as a table column when `label` is set (formatted with `fmt`;
    `label` is the terse CLI heading, `title` the words the app and the report show), offered
    as a chart axis when `axis` is set. Every cost is better lower."""
    meta = {"label": label, "unit": unit, "format": fmt, "axis": axis, "higher_is_better": False}
    meta["title"] = title or label
    return field(default=None, metadata=meta)


@dataclass
class CostSummary:
    """What one strategy cost in a run: preparation, answering, memory, size and money."""

    device: str | None = cost()
    questions: int | None = cost()
    prepare_s: float | None = cost(
        "Prep s", "s", "{:.1f}", "Preparation time (s)", "Preparation time"
    )
    prepare_added_mb: float | None = cost("Prep +MB", "MB", "{:.0f}", title="Preparation memory")
    answer_s: float | None = cost()
    answer_added_mb: float | None = cost()
    peak_rss_mb: float | None = cost()
    peak_gpu_mb: float | None = cost()
    latency_mean_s: float | None = cost()
    latency_p50_s: float | None = cost(
        "p50 s/q", "s", "{:.2f}", "Median latency (s/question)", "Median latency per question"
    )
    latency_p95_s: float | None = cost("p95 s/q", "s", "{:.2f}", title="Latency, slowest 5%")
    # CPU time beside wall time: it holds on a contended machine, where latency does not.
    cpu_mean_s: float | None = cost(
        "CPU s/q", "s", "{:.2f}", "CPU time (s/question)", "CPU time per question"
    )
    prepare_cpu_s: float | None = cost()
    answer_cpu_s: float | None = cost()
    threads: int | None = cost()
    output_tokens_per_s: float | None = cost()  # higher is better: not a cost column
    output_tokens_per_cpu_s: float | None = cost()
    others_cores: float | None = cost()  # cores other processes kept busy while answering
    contended_prepare: bool | None = cost()
    contended_answer: bool | None = cost()
    contended: bool | None = cost()  # see eval.run.contention; shown as its own column
    prompt_tokens_mean: float | None = cost(
        "Prompt tok", "tokens", "{:.0f}", title="Prompt tokens per question"
    )
    output_tokens_mean: float | None = cost(
        "Out tok", "tokens", "{:.1f}", title="Answer tokens per question"
    )
    trainable_params: int | None = cost(
        "Trainable", "parameters", "{:,}", title="Trained parameters"
    )
    artifact_mb: float | None = cost("Artifact MB", "MB", "{:.2f}", title="Artifact size (MB)")
    price_prepare: float | None = cost("Prep $", "currency", "{:.4f}", title="Preparation cost")
    price_per_1k: float | None = cost(
        "$/1k q", "currency", "{:.4f}", "Price per 1,000 questions", "Cost per 1,000 questions"
    )
    currency: str | None = cost()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CostSummary:
        """From a stored cost dict; keys it lacks are None, keys it does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})


@dataclass(frozen=True)
class Column:
    """One cost column: the CostSummary key, its label, unit, format and direction."""

    key: str
    label: str
    unit: str
    fmt: str
    higher_is_better: bool = False
    title: str = ""  # the heading in words (app, report); the terse `label` suits the CLI

    def format(self, value: Any) -> str:
        return "—" if value is None else self.fmt.format(value)


COST_COLUMNS: list[Column] = [
    Column(
        f.name,
        f.metadata["label"],
        f.metadata["unit"],
        f.metadata["format"],
        title=f.metadata["title"],
    )
    for f in dataclasses.fields(CostSummary)
    if f.metadata["label"]
]
# Cost axes offered for "quality against cost" (key -> axis title); lower is better for each.
COST_AXES: dict[str, str] = {
    f.name: f.metadata["axis"] for f in dataclasses.fields(CostSummary) if f.metadata["axis"]
}


def training_log(prepare: dict[str, Any] | PrepareReport | None) -> TrainingLog | None:
    """The training log of a stored `prepare` record (or a live PrepareReport), None if it did
    not train. Runs stored before `TrainingLog` existed keep their curves in `details`; those
    keys are read into a TrainingLog here, so every view reads one record."""
    if isinstance(prepare, PrepareReport):
        if prepare.training is not None:
            return prepare.training
        prepare = {"details": prepare.details}
    prepare = prepare or {}
    log = TrainingLog.from_dict(prepare.get("training"))
    if log is not None:
        return log
    details = prepare.get("details") or {}
    losses = details.get("loss_curve") or []
    evals = details.get("eval_loss_curve") or []
    if not losses and not evals:
        return None
    return TrainingLog(
        mode=str(details.get("mode") or ""),
        steps=int(details.get("steps") or len(losses)),
        steps_done=int(details.get("steps_done") or len(losses)),
        examples=int(details.get("examples") or 0),
        val_examples=int(details.get("val_examples") or 0),
        step_log=[TrainStep(i, float(x)) for i, x in enumerate(losses, start=1)],
        eval_curve=[{"step": int(p["step"]), "loss": float(p["loss"])} for p in evals],
        best_step=None if details.get("best_step") is None else int(details["best_step"]),
        best_eval_loss=details.get("best_eval_loss"),
        stopped_early=bool(details.get("stopped_early")),
        eval_s=float(details.get("eval_s") or 0.0),
        processes=int(details.get("processes") or 1),
        device=str(details.get("device") or "cpu"),
    )
