"""Scoring answers with the registered metrics, at run time and again on stored answers."""

from __future__ import annotations

from typing import Any

from core.engines.in_process import load_embedder
from core.tasks import TaskSpec
from eval.config import RunConfig
from eval.judge import attach_verdicts
from eval.judge import load_judge as load
from eval.metrics import METRICS, ScoringItem, default_metrics, score_items
from eval.run.oracle import OracleReading, rescore_oracle
from eval.run.retention import rescore_retention
from eval.stats.groups import labels_of
from eval.stats.intervals import Interval, bootstrap_ci
from eval.store.runs import RunStore, StoredAnswer


def needs_embedder(metrics: list[str], task: str = "qa") -> bool:
    """Whether scoring `metrics` (empty = the task's default metrics) needs the embedder."""
    return any(METRICS[m].needs_embedder for m in metrics or default_metrics(task))


def needs_judge(metrics: list[str], task: str = "qa") -> bool:
    """Whether scoring `metrics` (empty = the task's default metrics) needs a judge model."""
    return any(METRICS[m].needs_judge for m in metrics or default_metrics(task))


def load_judge(config: RunConfig):
    """The judge that `config.judge` names, over the run's models (loaded once, shared)."""

    return load(config.models, config.judge)


def score(
    answers: list[StoredAnswer],
    metrics: list[str],
    embedder: Any,
    resamples: int,
    seed: int,
    judge: Any = None,
    groups: dict[str, str] | None = None,
    *,
    task: TaskSpec | None = None,
    paraphrases: dict[str, str] | None = None,
) -> dict[str, Interval]:
    """Per-question scores into each StoredAnswer, and each metric's mean with its 95% CI.

    `metrics` empty means the default metrics of the `task` kind. With a judge, its verdicts go
    into each answer's `details["judge"]`. `groups` (qid -> group id, core.qa.group_ids) makes
    the interval a cluster bootstrap over whole groups; `paraphrases` (qid -> paraphrase group)
    is what the consistency metrics score over."""
    paraphrases = paraphrases or {}
    items = [
        ScoringItem(
            a.answer.text,
            tuple(a.golds),
            a.answer.contexts,
            a.question,
            task=task,
            group=paraphrases.get(a.qid, ""),
        )
        for a in answers
    ]
    kind = task.kind if task is not None else "qa"
    per_metric = score_items(items, metrics or default_metrics(kind), embedder, judge)
    summary = {}
    labels = labels_of([a.qid for a in answers], groups)
    for metric, values in per_metric.items():
        for a, v in zip(answers, values, strict=True):
            a.scores[metric] = v
        summary[metric] = bootstrap_ci(values, groups=labels, n_resamples=resamples, seed=seed)
    return summary


def rescore(
    store: RunStore, run_id: str, metrics: list[str], embedder_config=None, judge_config=None
) -> None:
    """Score stored answers with `metrics` (e.g. newly registered ones) without generating.

    The judge is the run's stored judge settings unless `judge_config` (a JudgeConfig) is given;
    its verdicts and cost are stored like a run's."""

    run = store.get_run(run_id)
    config = RunConfig.from_dict({**run.config, "metrics": metrics})
    if judge_config is not None:
        config = config.replace(judge=judge_config)
    models = embedder_config or RunConfig.from_stored(run.config).models
    embedder = load_embedder(models) if needs_embedder(metrics) else None
    judge = load_judge(config) if needs_judge(metrics) else None
    resamples, seed = config.bootstrap_resamples, config.split.seed
    # The task and groups the run stored: scoring again needs neither the files nor the split.
    task, paraphrases = TaskSpec.from_dict(run.meta.task), run.meta.paraphrases
    for result in run.results:
        if result.status != "done":
            continue
        answers = store.get_answers(run_id, result.strategy)
        groups = run.meta.split.groups  # empty for runs stored before: singletons
        summary = score(
            answers,
            metrics,
            embedder,
            resamples,
            seed,
            judge,
            groups,
            task=task,
            paraphrases=paraphrases,
        )
        per_q = {m: {a.qid: a.scores[m] for a in answers} for m in metrics}
        details = None
        if judge is not None:
            store.update_extras(run_id, result.strategy, judge=attach_verdicts(judge, answers))
            details = {"judge": {a.qid: a.details["judge"] for a in answers}}
        store.save_scores(run_id, result.strategy, per_q, summary, details)
    oracle = OracleReading.from_dict(run.meta.oracle)
    if oracle is not None:  # the run-level oracle reading is scored again with the strategies
        rescore_oracle(
            oracle,
            metrics,
            embedder,
            n_resamples=config.bootstrap_resamples,
            seed=config.split.seed,
            groups=run.meta.split.groups,
        )
        store.update_run(run_id, oracle=oracle.to_dict())
    rescore_retention(store, run_id)
