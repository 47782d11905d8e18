"""Scoring answers with the registered metrics, at run time and again on stored answers."""

from __future__ import annotations

from typing import Any

from eval.config import RunConfig
from eval.metrics import METRICS, ScoringItem, score_items
from eval.run.retention import rescore_retention
from eval.stats import bootstrap_ci
from eval.store import RunStore, StoredAnswer


def needs_embedder(metrics: list[str]) -> bool:
    """Whether scoring `metrics` (empty = every registered metric) needs the embedder."""
    return any(METRICS[m].needs_embedder for m in metrics or list(METRICS))


def score(
    answers: list[StoredAnswer], metrics: list[str], embedder: Any, resamples: int, seed: int
) -> dict[str, dict]:
    """Per-question scores into each StoredAnswer, and each metric's mean with its 95% CI.

    `metrics` empty means every registered metric."""
    items = [ScoringItem(a.answer.text, tuple(a.golds), a.answer.contexts) for a in answers]
    per_metric = score_items(items, metrics or list(METRICS), embedder)
    summary = {}
    for metric, values in per_metric.items():
        for a, v in zip(answers, values, strict=True):
            a.scores[metric] = v
        summary[metric] = bootstrap_ci(values, n_resamples=resamples, seed=seed).to_dict()
    return summary


def rescore(store: RunStore, run_id: str, metrics: list[str], embedder_config=None) -> None:
    """Score stored answers with `metrics` (e.g. newly registered ones) without generating."""
    from core.config import ModelConfig
    from core.models import load_embedder

    run = store.get_run(run_id)
    config = RunConfig.from_dict({**run.config, "metrics": metrics})
    models = embedder_config or ModelConfig.from_dict(run.config["models"])
    embedder = load_embedder(models) if needs_embedder(metrics) else None
    for result in run.results:
        if result.status != "done":
            continue
        answers = store.get_answers(run_id, result.strategy)
        summary = score(answers, metrics, embedder, config.bootstrap_resamples, config.split.seed)
        per_q = {m: {a.qid: a.scores[m] for a in answers} for m in metrics}
        store.save_scores(run_id, result.strategy, per_q, summary)
    rescore_retention(store, run_id)
