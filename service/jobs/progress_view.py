"""A running job as a person reads it: "Strategy 2 of 3: rag, answering 12/20", a bar that moves in
every stage, and the time left for the whole run, all from what the store holds (the job row,
the run's config and, when there is one, the estimate stored with the run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eval.run.oracle import oracle_planned
from eval.stats.stability import SPLIT_MARK, plan_labels
from eval.views.format import display_name
from service.estimate.records import Estimate, StrategyEstimate
from service.jobs.job import Job
from strategies import get_strategy_class

# The harness's and the worker's stage names in words; a stage not listed reads as its name.
STAGE_WORDS: dict[str, str] = {
    "queued": "waiting for the worker",
    "starting": "starting",
    "load_models": "loading the models",
    "ingest": "reading the documents and questions",
    "retention_base": "asking the base model the general-knowledge questions",
    "tune": "tuning its settings on validation pairs",
    "prepare": "preparing",
    "train": "training",
    "validate": "measuring the validation loss",
    "answer": "answering the test questions",
    "retention": "answering the general-knowledge questions",
    "score": "scoring the answers",
    "strategy_done": "finished",
    "strategy_failed": "failed",
    "done": "finished",
    "cancelled": "cancelled",
    "failed": "failed",
    "interrupted": "interrupted",
    "read corpus": "reading the documents",
    "generate": "writing question/answer pairs",
    "probe": "probing",
    "oracle": "reading each test question with its gold passage (the retrieval ceiling)",
    "judge": "judging the answers",
}
# Stages whose job rows carry done/total counts, shown as "3/20".
COUNTED_STAGES = ("train", "answer", "retention", "retention_base", "oracle", "judge")
SETUP_STAGES = ("queued", "starting", "load_models", "ingest", "retention_base")
# Share of a strategy's time spent preparing when no estimate says better: training dominates.
PREPARE_SHARE = {True: 0.6, False: 0.1}


def stage_words(stage: str | None) -> str:
    """The stage in words ('answer' -> 'answering the test questions')."""
    stage = stage or ""
    return STAGE_WORDS.get(stage, stage.replace("_", " "))


def run_plan(config: dict[str, Any]) -> list[str]:
    """The labels of the results a run config makes, in the order the harness runs them: each
    strategy, and after a strategy that trains, one label per learning-curve fraction."""
    labels = []
    curve = sorted({float(f) for f in config.get("learning_curve") or []})
    for name in config.get("strategies") or []:
        labels.append(name)
        if _trains(name):
            labels += [f"{name}@{f:.0%}" for f in curve]
    return labels + plan_labels(config)  # re-runs on re-drawn splits come last


def _base(label: str) -> str:
    """The strategy of a label: "lora@50%" and "lora#split2" are lora's."""
    return label.partition(SPLIT_MARK)[0].partition("@")[0]


def reads_oracle(config: dict[str, Any]) -> bool:
    """Whether the run with this stored config reads the oracle after its strategies."""
    verdict = config.get("verdict") or {}
    return oracle_planned(config.get("strategies") or [], bool(verdict.get("oracle", True)))


def _trains(label: str) -> bool:
    try:
        return bool(get_strategy_class(_base(label)).trains)
    except KeyError:  # a strategy no longer registered: shown, never counted as training
        return False


@dataclass
class ProgressLine:
    """What a progress bar shows: its text, its fill (0..1) and the time left for the run."""

    text: str
    fraction: float
    eta_s: float | None
    position: int  # 1-based index of the current result in the plan; 0 while setting up
    of: int


def _weights(plan: list[str], estimate: Estimate | None) -> tuple[float, dict[str, float]]:
    """Seconds (or equal shares) for the set-up and for each label of the plan."""
    per = estimate.measured() if estimate is not None else {}
    if not per:
        return 0.05 * len(plan), dict.fromkeys(plan, 1.0)
    weights = {}
    for label in plan:
        frac = label.partition(SPLIT_MARK)[0].partition("@")[2]
        e = per.get(_base(label))
        if e is None:
            weights[label] = max(1.0, sum(x.total_s for x in per.values()) / len(per))
        elif frac:
            weights[label] = float(frac.rstrip("%")) / 100 * e.prepare_s + e.answer_s / 3
        else:
            weights[label] = max(0.1, e.total_s - e.variants_s - e.resplits_s)
    return max(0.1, float(estimate.load_s or 0.0)), weights


def _within(job: Job, trains: bool, estimate_row: StrategyEstimate | None) -> float:
    """How far the current result is (0..1) from its stage and counts."""
    stage, done, total = job.stage, job.done or 0, job.total or 0
    counted = min(1.0, done / total) if total else 0.0
    prep = PREPARE_SHARE[trains]
    if estimate_row and estimate_row.total_s:
        prep = min(0.95, estimate_row.prepare_s / max(estimate_row.total_s, 1e-9))
    if stage in ("prepare", "train", "validate"):
        return prep * (counted if stage == "train" else 0.0)
    if stage == "answer":
        return prep + (1 - prep) * 0.5 * counted
    if stage == "retention":
        return prep + (1 - prep) * (0.5 + 0.45 * counted)
    if stage in ("score", "strategy_done", "strategy_failed"):
        return 1.0
    return 0.0


def describe_job(
    job: Job,
    plan: list[str],
    now: float,
    estimate: Estimate | None = None,
    oracle: bool = False,
) -> ProgressLine:
    """The progress line of a queued or running run job (a `JobQueue.get` Job).

    `plan` is `run_plan(config)`; `estimate` the estimate stored with the run (optional: it
    weights the strategies and gives a time left before any was measured); `oracle` whether
    the run reads the oracle after its strategies (`reads_oracle(config)`). The time left is
    the run's elapsed time scaled by what is left once a fifth is done; before that, the
    estimate's remainder, less the time spent beyond what the estimate gave the work done
    (so it counts down through a slow set-up).
    """
    stage, strategy = job.stage or "queued", job.strategy
    setup_w, weights = _weights(plan, estimate)
    oracle_w = 0.0
    if oracle or stage == "oracle":
        oracle_w = (estimate.oracle_s if estimate is not None else 0.0) or (
            sum(weights.values()) / max(1, len(weights)) / 2
        )
    total_w = setup_w + sum(weights.values()) + oracle_w or 1.0
    position = plan.index(strategy) + 1 if strategy in plan else 0
    per = {e.strategy: e for e in estimate.strategies} if estimate is not None else {}
    counted = min(1.0, (job.done or 0) / job.total) if job.total else 0.0
    if stage == "oracle":
        done_w = setup_w + sum(weights.values()) + oracle_w * counted
    elif position == 0:
        done_w = setup_w * (0.9 if stage == "retention_base" else 0.5 if stage == "ingest" else 0)
        if stage == "retention_base" and job.total:
            done_w = setup_w * (0.5 + 0.5 * min(1.0, (job.done or 0) / job.total))
    else:
        before = sum(weights[label] for label in plan[: position - 1])
        name = _base(strategy)
        inner = _within(job, _trains(strategy), per.get(name))
        done_w = setup_w + before + weights[strategy] * inner
    fraction = max(0.0, min(1.0, done_w / total_w))

    words = stage_words(stage)
    if job.total and stage in COUNTED_STAGES:
        words += f" {job.done or 0}/{job.total}"
    if stage == "train" and job.loss is not None:
        words += f", loss {job.loss:.3f}"
    if stage == "oracle":
        text = f"After the strategies: {words}"
    elif position:
        text = f"Strategy {position} of {len(plan)}: {display_name(strategy)}, {words}"
    else:
        text = f"Setting up: {words}"

    eta = None
    started = job.started_at
    if started and fraction >= 0.2:
        eta = (now - started) * (1 - fraction) / fraction
    elif estimate is not None and estimate.total_s:
        total_s = float(estimate.total_s)
        left = total_s * (1 - fraction)
        late = max(0.0, now - started - total_s * fraction) if started else 0.0
        eta = max(left - late, 0.1 * left)  # never below a tenth of the work left
    if eta is not None:
        text += f" · about {duration(eta)} left"
    return ProgressLine(text, fraction, eta, position, len(plan))


def duration(seconds: float | None) -> str:
    """'45 s', '3 min', '1 h 20 min'; '—' for None."""
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m} min" if m else f"{h} h"
