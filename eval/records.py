"""Typed records that cross from the run to the views: cost, preparation, extras, training log.

`CostSummary` is what the harness measures per strategy; its field metadata (label, unit,
format, direction) is the single list of cost columns the CLI, the app and the HTML report
draw, so a new cost column is one field here. `PreparedRecord` is what preparing a strategy
left, `ResultExtras` the figures beside the test-set metrics (judge, retention, learning-curve
variant, `TuningRecord`, and `Placement`: where a Ray arm ran). Each reads the JSON shape the
store keeps (`from_dict`, old runs included) and writes it back (`to_dict`); nothing else
handles those dicts. `training_log` reads the typed `TrainingLog` a strategy stored, or
rebuilds one from the `details` keys of runs stored before it existed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.types import PrepareReport, TrainingLog, TrainStep, known_fields
from eval.judge import JudgeCost
from eval.stats.intervals import Interval

# A CPU sample as the store keeps it (eval.run.contention.CpuSample.to_dict): seconds, counts
# and the contended flag.
CpuDict = dict[str, float | bool | None]


def cost(
    label: str = "",
    unit: str = "",
    fmt: str = "",
    axis: str = "",
    title: str = "",
    detail: bool = False,
) -> Any:
    """A CostSummary field: shown as a table column when `label` is set (formatted with `fmt`;
    `label` is the terse CLI heading, `title` the words the app and the report show), offered
    as a chart axis when `axis` is set. A `detail` column is left out of the app's first view
    of the cost table (its column menu shows it). Every cost is better lower."""
    meta = {"label": label, "unit": unit, "format": fmt, "axis": axis, "higher_is_better": False}
    meta["title"] = title or label
    meta["detail"] = detail
    return field(default=None, metadata=meta)


@dataclass
class CostSummary:
    """What one strategy cost in a run: preparation, answering, memory, size and money."""

    device: str | None = cost()
    questions: int | None = cost()
    prepare_s: float | None = cost(
        "Prep s", "s", "{:.1f}", "Preparation time (s)", "Preparation time"
    )
    prepare_added_mb: float | None = cost(
        "Prep +MB", "MB", "{:.0f}", title="Preparation memory", detail=True
    )
    answer_s: float | None = cost()
    answer_added_mb: float | None = cost()
    peak_rss_mb: float | None = cost()
    peak_gpu_mb: float | None = cost()
    latency_mean_s: float | None = cost()
    latency_p50_s: float | None = cost(
        "p50 s/q", "s", "{:.2f}", "Median latency (s/question)", "Median latency"
    )
    latency_p95_s: float | None = cost(
        "p95 s/q", "s", "{:.2f}", title="Latency, slowest 5%", detail=True
    )
    # CPU time beside wall time: it holds on a contended machine, where latency does not.
    cpu_mean_s: float | None = cost("CPU s/q", "s", "{:.2f}", "CPU time (s/question)", "CPU time")
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
        "Prompt tok", "tokens", "{:.0f}", title="Prompt tokens per question", detail=True
    )
    output_tokens_mean: float | None = cost(
        "Out tok", "tokens", "{:.1f}", title="Answer tokens per question", detail=True
    )
    trainable_params: int | None = cost(
        "Trainable", "parameters", "{:,}", title="Trained parameters", detail=True
    )
    artifact_mb: float | None = cost(
        "Artifact MB", "MB", "{:.2f}", title="Artifact size (MB)", detail=True
    )
    price_prepare: float | None = cost("Prep $", "currency", "{:.4f}", title="Preparation cost")
    price_per_1k: float | None = cost(
        "$/1k q", "currency", "{:.4f}", "Price per 1,000 questions", "Cost per 1,000 questions"
    )
    currency: str | None = cost()

    def value(self, key: str) -> float | int | bool | str | None:
        """The figure of one column (a `Column.key` or `COST_AXES` key); KeyError if none."""
        if key not in _COST_NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the store keeps, every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CostSummary:
        """From a stored cost dict; keys it lacks are None, keys it does not know are ignored."""
        return cls(**known_fields(cls, d))


_COST_NAMES = frozenset(f.name for f in dataclasses.fields(CostSummary))


@dataclass(frozen=True)
class Column:
    """One cost column: the CostSummary key, its label, unit, format and direction."""

    key: str
    label: str
    unit: str
    fmt: str
    higher_is_better: bool = False
    title: str = ""  # the heading in words (app, report); the terse `label` suits the CLI
    detail: bool = False  # left out of the app's first view (cost() says why)

    def format(self, value: Any) -> str:
        return "—" if value is None else self.fmt.format(value)


COST_COLUMNS: list[Column] = [
    Column(
        f.name,
        f.metadata["label"],
        f.metadata["unit"],
        f.metadata["format"],
        title=f.metadata["title"],
        detail=f.metadata["detail"],
    )
    for f in dataclasses.fields(CostSummary)
    if f.metadata["label"]
]
# Cost axes offered for "quality against cost" (key -> axis title); lower is better for each.
COST_AXES: dict[str, str] = {
    f.name: f.metadata["axis"] for f in dataclasses.fields(CostSummary) if f.metadata["axis"]
}


@dataclass
class PreparedRecord:
    """What preparing one strategy left: what it reported (PrepareReport's fields) and the
    time, memory and CPU the harness measured around it (None where it was not measured)."""

    trainable_params: int = 0
    artifact_bytes: int = 0
    artifact_path: str | None = None
    # Strategy-specific figures (index type, pool size...): each strategy says its own.
    details: dict[str, Any] = field(default_factory=dict)
    training: TrainingLog | None = None
    seconds: float | None = None
    cpu: CpuDict | None = None
    peak_rss_mb: float | None = None
    added_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    traceback: str | None = None  # where preparing or answering failed

    @property
    def trained(self) -> bool:
        """The strategy trained weights and left them on disk (an adapter to load)."""
        return bool(self.trainable_params and self.artifact_path)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the store keeps (the shape stored before this record existed)."""
        out = dataclasses.asdict(self)
        out["training"] = self.training.to_dict() if self.training is not None else None
        if self.traceback is None:
            del out["traceback"]  # only failed results carry one
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PreparedRecord:
        """From a stored `prepare` dict (any age); unknown keys are ignored, missing ones None."""
        d = d or {}
        return cls(
            **known_fields(cls, d, skip=("training", "details")),
            details=dict(d.get("details") or {}),
            training=TrainingLog.from_dict(d.get("training")),
        )


@dataclass
class Retention:
    """General-knowledge retention (eval.run.retention): the containment score with interval,
    F1, per-question scores and the answers (kept for rescoring); against the base model, its
    score, the change and the questions forgotten (absent for the base model's own record)."""

    metric: str = "contains"
    n: int = 0
    score: Interval = field(default_factory=Interval)
    f1: Interval = field(default_factory=Interval)
    per_question: dict[str, float | None] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    base: Interval | None = None
    delta: float | None = None
    forgotten: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        """The retention score's mean."""
        return self.score.mean

    def to_dict(self) -> dict[str, Any]:
        """The JSON the store keeps; the base model's record has no base, delta or forgotten."""
        out = dataclasses.asdict(self)
        if self.base is None:
            for k in ("base", "delta", "forgotten"):
                del out[k]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Retention | None:
        """From a stored retention dict; None for none."""
        if not d:
            return None
        fields = known_fields(cls, d, skip=("score", "f1", "base"))
        base = Interval.from_dict(d["base"]) if d.get("base") else None
        score, f1 = Interval.from_dict(d.get("score")), Interval.from_dict(d.get("f1"))
        return cls(**fields, score=score, f1=f1, base=base)


# A tuned setting's value as a config field holds it: a number, a flag, a text or a list.
Setting = str | int | float | bool | list[str] | list[int] | list[float] | None


@dataclass
class TrialRow:
    """One tuning trial: its settings (dotted field path -> value), outcome and cost."""

    number: int
    state: str  # complete | pruned | fail
    value: float | None
    values: dict[str, Setting]
    seconds: float
    steps: int | None = None  # training steps done (trained arms)
    default: bool = False  # the arm's shipped settings
    # Validation pairs it answered: all of them for a finalist, a few for a trial raced out
    # (None: stored before racing).
    answered: int | None = None
    error: str = ""  # why a failed trial failed (an out-of-memory, a refused setting)
    # Where a Ray Tune trial ran (node, CPUs, GPUs, seconds); None in process (and stored
    # before trials ran on a cluster).
    placement: Placement | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialRow:
        """From a stored trial dict; unknown keys ignored."""
        placement = Placement.from_dict(d.get("placement"))
        return cls(**known_fields(cls, d, skip=("placement",)), placement=placement)


@dataclass
class TuningRecord:
    """An arm's tuning (eval.tuning): the spaces searched, every trial, the chosen settings.

    Scores are means of `metric` over the validation pairs (token F1 for Q/A; content F1 of answers
    that keep the format or style for those tasks) with 95% bootstrap intervals; `gain` is the
    paired best-minus-default difference on the validation pairs (the ones that chose the best, so
    flattered by the choice); `crossfit_gain` the same gain measured on pairs that did not
    choose it (chosen on one half of the validation pairs, measured on the other, both ways).
    Under the `evidence` rule the best setting replaces the default only when both gains'
    95% lower bounds are above 0; `note` says why the default was kept or replaced.
    """

    status: str  # tuned | off | no_space | skipped | failed
    budget: str
    metric: str = "f1"  # eval.task_metrics.TUNING_METRIC of the run's task
    note: str = ""
    space: dict[str, str] = field(default_factory=dict)  # path -> the space in words
    default: dict[str, Setting] = field(default_factory=dict)
    chosen: dict[str, Setting] = field(default_factory=dict)
    default_score: Interval | None = None
    tuned_score: Interval | None = None  # the best trial's, adopted or not
    gain: Interval | None = None
    val_pairs: int = 0
    seconds: float = 0.0
    trials: list[TrialRow] = field(default_factory=list)
    chosen_trial: int | None = None  # the trial whose settings (and outcome) were chosen
    # The arm answered with what that trial prepared (its adapter), not a second training.
    reused_trial: int | None = None
    validation: str = ""  # which pairs validated, in words (eval.tuning.arm.tuning_pairs)
    adopt: str = ""  # the rule that decided: evidence | best ("" before the rule existed)
    crossfit_gain: Interval | None = None
    best: dict[str, Setting] = field(default_factory=dict)  # the best trial's settings
    best_trial: int | None = None

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def n_failed(self) -> int:
        return sum(t.state == "fail" for t in self.trials)

    @property
    def n_pruned(self) -> int:
        return sum(t.state == "pruned" for t in self.trials)

    @property
    def changed(self) -> dict[str, Setting]:
        """The chosen settings that differ from the defaults."""
        return {k: v for k, v in self.chosen.items() if self.default.get(k) != v}

    @property
    def within_noise(self) -> bool | None:
        """True when the gain's interval reaches zero, the cross-fitted one when measured
        (None: nothing to compare)."""
        gain = self.crossfit_gain or self.gain
        if gain is None or gain.low is None:
            return None
        return float(gain.low) <= 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON the store keeps."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TuningRecord | None:
        """From a stored tuning dict; None for none."""
        if not d:
            return None
        trials = [TrialRow.from_dict(t) for t in d.get("trials") or []]
        scores = ("default_score", "tuned_score", "gain", "crossfit_gain")
        intervals = {k: Interval.from_dict(d[k]) if d.get(k) else None for k in scores}
        return cls(**known_fields(cls, d, skip=("trials", *scores)), trials=trials, **intervals)


@dataclass
class Placement:
    """Where an arm measured as Ray work ran (service.cluster.ray_worker): the node, process,
    device, CPUs and GPUs it was given, the worker's own time and one-off model load, and, from the
    driver, its wall time for the arm and the scheduling overhead (the rest)."""

    executor: str = "ray"
    node: str = ""
    node_id: str = ""
    pid: int = 0
    device: str = ""
    cpus: int = 0
    gpus: list[str] = field(default_factory=list)
    worker_s: float = 0.0
    load_s: float = 0.0
    driver_wall_s: float | None = None
    overhead_s: float | None = None
    # The worker process while it measured the arm: its nice value, its threads, and how often
    # the kernel took a CPU from one of them (involuntary context switches, all threads).
    nice: int | None = None
    threads: int | None = None
    involuntary_switches: int | None = None
    storage: str = ""  # where the worker put the arm's files (executor.storage), if set
    # When the worker began the arm (loading models it had not loaded yet included) and ended
    # it, on its wall clock (Unix seconds), so a reader sees which of a run's arms ran at once;
    # None in runs stored before they were kept.
    started_at: float | None = None
    ended_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON the store keeps."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Placement | None:
        """From a stored placement dict; None for none, unknown keys ignored."""
        if not d:
            return None
        return cls(**known_fields(cls, d))


@dataclass
class ResultExtras:
    """Figures beside a result's test-set metrics, one field per kind: the judge's cost, the
    general-knowledge retention, for a learning-curve point which strategy it is a variant
    of and on what share (and number) of the training pairs, the arm's tuning, and where a Ray
    arm ran."""

    judge: JudgeCost | None = None
    retention: Retention | None = None
    variant_of: str | None = None
    train_fraction: float | None = None
    train_pairs: int | None = None
    tuning: TuningRecord | None = None
    placement: Placement | None = None

    @property
    def is_variant(self) -> bool:
        """A learning-curve point, not a strategy a user would deploy."""
        return self.variant_of is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON the store keeps: only the kinds present (the shape stored before)."""
        out: dict[str, Any] = {}
        if self.judge is not None:
            out["judge"] = self.judge.to_dict()
        if self.retention is not None:
            out["retention"] = self.retention.to_dict()
        if self.tuning is not None:
            out["tuning"] = self.tuning.to_dict()
        for k in ("variant_of", "train_fraction", "train_pairs"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.placement is not None:
            out["placement"] = self.placement.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ResultExtras:
        """From a stored extras dict; kinds it does not know are ignored."""
        d = d or {}
        return cls(
            judge=JudgeCost.from_dict(d["judge"]) if d.get("judge") else None,
            retention=Retention.from_dict(d.get("retention")),
            variant_of=d.get("variant_of"),
            train_fraction=d.get("train_fraction"),
            train_pairs=d.get("train_pairs"),
            tuning=TuningRecord.from_dict(d.get("tuning")),
            placement=Placement.from_dict(d.get("placement")),
        )


def training_log(prepare: PreparedRecord | PrepareReport | None) -> TrainingLog | None:
    """The training log of a stored preparation (or a live PrepareReport), None if it did not
    train. Runs stored before `TrainingLog` existed keep their curves in `details`; those keys
    are read into a TrainingLog here, so every view reads one record."""
    if prepare is None:
        return None
    if prepare.training is not None:
        return prepare.training
    details = prepare.details or {}
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
