"""End to end: every strategy through the harness into the store, with the tiny model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from eval.config import RunConfig
from eval.events import ProgressEvent
from eval.metrics import default_metrics
from eval.run.harness import run_comparison
from eval.run.scoring import rescore
from eval.stats.intervals import Interval
from eval.store.runs import RunStore
from eval.views.tables import cost_rows, quality_rows, render_run, run_summary

COST_KEYS = [
    "prepare_s",
    "prepare_added_mb",
    "latency_p50_s",
    "latency_p95_s",
    "prompt_tokens_mean",
    "output_tokens_mean",
    "trainable_params",
    "artifact_mb",
    "price_prepare",
    "price_per_1k",
]


def make_config(mini_corpus, tiny_models, tmp_path, **over):
    corpus, qa = mini_corpus
    data = {
        "corpus": str(corpus),
        "qa": str(qa),
        "strategies": ["system_prompt", "few_shot", "rag", "lora", "fake"],
        "strategy_configs": {"lora": {"epochs": 1, "batch_size": 4}, "few_shot": {"k": 2}},
        "models": tiny_models.to_dict(),
        "chunking": {"chunk_tokens": 48, "overlap_tokens": 8},
        "split": {"test_fraction": 0.3},
        "batch_size": 2,
        "store_path": str(tmp_path / "runs.sqlite"),
        "workdir": str(tmp_path / "work"),
        "bootstrap_resamples": 200,
        "retention_questions": 6,
        "tuning": {"budget": "off"},
    }
    data.update(over)
    return RunConfig.from_dict(data)


def test_all_strategies_end_to_end_are_stored(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(mini_corpus, tiny_models, tmp_path)
    events = []
    run_id = run_comparison(cfg, progress=events.append)
    store = RunStore(cfg.store_path)
    run = store.get_run(run_id)
    assert run.status == "done"
    assert run.fingerprint
    assert run.meta.split.test == 3 and run.meta.split.train == 7
    assert run.meta.versions["torch"]
    assert [r.strategy for r in run.results] == cfg.strategies
    test_ids = run.meta.split.test_ids
    answers = store.get_answers(run_id)
    for r in run.results:
        assert r.status == "done", r.error
        mine = [a for a in answers if a.strategy == r.strategy]
        assert [a.qid for a in mine] == test_ids
        for a in mine:
            assert set(a.scores) == set(default_metrics())
            assert a.answer.cost.latency_s > 0
        for m in ("exact_match", "f1", "rouge_l", "semantic_similarity"):
            assert r.metrics[m].n == 3
            assert r.metrics[m].low <= r.metrics[m].mean <= r.metrics[m].high
        for key in COST_KEYS:
            assert r.cost.value(key) is not None, (r.strategy, key)
    by = {r.strategy: r for r in run.results}
    assert by["rag"].metrics["recall_at_k"].n == 3
    assert by["system_prompt"].metrics["recall_at_k"].n == 0  # closed book: not applicable
    assert by["lora"].cost.trainable_params > 0
    assert by["lora"].prepare.training.step_log
    assert by["rag"].cost.artifact_mb > 0
    # progress covered every stage of every strategy
    stages = {(e.strategy, e.stage) for e in events}
    assert ("lora", "train") in stages and ("rag", "answer") in stages
    assert events[-1].stage == "done"
    # every view is made from the stored run
    text = render_run(run)
    for name in cfg.strategies:
        assert name in text
    assert len(quality_rows(run)) == len(cost_rows(run)) == 5
    json.dumps(run_summary(run))
    exported = json.loads(store.export_json(run_id))
    assert len(exported["answers"]) == 15
    assert store.export_csv(run_id).count("\n") == 16


def test_a_failing_strategy_does_not_stop_the_others(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["fake", "system_prompt"],
        strategy_configs={"fake": {"fail_on_prepare": True}},
    )
    run = RunStore(cfg.store_path).get_run(run_comparison(cfg))
    assert run.status == "done"
    fake, sp = run.results
    assert fake.status == "failed" and "asked to fail" in fake.error
    assert sp.status == "done"
    assert "fake failed" in render_run(run)


def test_bad_inputs_fail_the_run_with_a_clear_message(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(mini_corpus, tiny_models, tmp_path, qa=str(tmp_path / "missing.jsonl"))
    with pytest.raises(Exception, match="missing.jsonl"):
        run_comparison(cfg)
    runs = RunStore(cfg.store_path).list_runs()
    assert runs[0].status == "failed"


def test_cancel_stops_between_batches(mini_corpus, tiny_models, tmp_path):
    import threading

    cancel = threading.Event()
    cfg = make_config(mini_corpus, tiny_models, tmp_path, strategies=["fake", "system_prompt"])

    def progress(ev):
        if ev.stage == "strategy_done":
            cancel.set()

    run_id = run_comparison(cfg, progress=progress, cancel=cancel)
    run = RunStore(cfg.store_path).get_run(run_id)
    assert run.status == "cancelled"
    assert [r.strategy for r in run.results] == ["fake"]  # finished work is kept


def test_rescore_adds_metrics_without_generating(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus, tiny_models, tmp_path, strategies=["fake"], metrics=["exact_match"]
    )
    run_id = run_comparison(cfg)
    store = RunStore(cfg.store_path)
    before = [a.answer.text for a in store.get_answers(run_id)]
    rescore(store, run_id, ["f1", "rouge_l"])
    run = store.get_run(run_id)
    assert set(run.results[0].metrics) == {"exact_match", "f1", "rouge_l"}
    after = store.get_answers(run_id)
    assert [a.answer.text for a in after] == before
    assert all(set(a.scores) == {"exact_match", "f1", "rouge_l"} for a in after)


def test_cancel_interrupts_training(mini_corpus, tiny_models, tmp_path):
    import threading

    from core.engines.in_process import load_generator

    cancel = threading.Event()
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["lora"],
        strategy_configs={"lora": {"epochs": 50, "batch_size": 1}},
    )
    steps = []

    def progress(ev):
        if ev.stage == "train":
            steps.append(ev.step)
            cancel.set()

    run = RunStore(cfg.store_path).get_run(run_comparison(cfg, progress=progress, cancel=cancel))
    assert run.status == "cancelled"
    assert steps == [1]  # stopped at the next step, not after 350
    assert load_generator(tiny_models).peft_model is None  # the adapter was released


def test_delete_run_removes_everything(mini_corpus, tiny_models, tmp_path):
    import sqlite3

    cfg = make_config(mini_corpus, tiny_models, tmp_path, strategies=["fake"])
    store = RunStore(cfg.store_path)
    keep, gone = run_comparison(cfg, store=store), run_comparison(cfg, store=store)
    store.delete_run(gone)
    assert [r.id for r in store.list_runs()] == [keep]
    with sqlite3.connect(cfg.store_path) as c:
        for table in ("strategy_results", "answers", "scores"):
            ids = {r[0] for r in c.execute(f"SELECT DISTINCT run_id FROM {table}")}
            assert ids == {keep}, table


def test_retention_and_learning_curve_are_stored_with_the_run(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "lora"],
        learning_curve=[0.5],
    )
    store = RunStore(cfg.store_path)
    run = store.get_run(run_comparison(cfg))
    by = {r.strategy: r for r in run.results}
    assert list(by) == ["system_prompt", "lora", "lora@50%"]
    assert by["lora"].extras.train_fraction == 1.0 and by["lora"].extras.train_pairs == 7
    variant = by["lora@50%"]
    assert variant.status == "done", variant.error
    assert variant.extras.to_dict() == {
        "variant_of": "lora",
        "train_fraction": 0.5,
        "train_pairs": 4,
    }
    assert variant.prepare.details["qa_examples"] == 4  # trained on the subset only
    assert len(store.get_answers(run.id, "lora@50%")) == 3
    base = run.meta.retention_base
    assert base["n"] == 6 and len(base["answers"]) == 6
    # the closed-book strategy with default settings is the base model: no change
    assert by["system_prompt"].extras.retention.delta == pytest.approx(0.0)
    lora = by["lora"].extras.retention
    assert lora.n == 6 and lora.base == Interval.from_dict(base["score"])
    assert lora.delta == pytest.approx(lora.score.mean - base["score"]["mean"])
    assert variant.extras.retention is None  # only the model trained on everything


def test_resume_keeps_finished_strategies(mini_corpus, tiny_models, tmp_path):
    first = make_config(mini_corpus, tiny_models, tmp_path, strategies=["fake"])
    store = RunStore(first.store_path)
    run_id = run_comparison(first, store=store)
    before = store.get_answers(run_id, "fake")
    both = make_config(mini_corpus, tiny_models, tmp_path, strategies=["fake", "system_prompt"])
    events = []
    run_comparison(both, store=store, run_id=run_id, resume=True, progress=events.append)
    run = store.get_run(run_id)
    assert run.status == "done"
    assert [r.strategy for r in run.results] == ["fake", "system_prompt"]
    after = store.get_answers(run_id, "fake")
    assert [a.answer.cost.latency_s for a in after] == [a.answer.cost.latency_s for a in before]
    assert ProgressEvent("strategy_done", strategy="fake", status="kept") in events
    assert not any(e.strategy == "fake" and e.stage == "prepare" for e in events)


def test_retention_counts_facts_not_brevity_and_rescores_from_stored_answers(
    mini_corpus, tiny_models, tmp_path
):
    from eval.run.retention import contains_gold, rescore_retention

    assert contains_gold("The capital of France is Paris.", ("Paris",)) == 1.0
    assert contains_gold("Parisian", ("Paris",)) == 0.0  # whole words only
    assert contains_gold("It is the Pacific", ("the Pacific Ocean", "Pacific")) == 1.0

    cfg = make_config(mini_corpus, tiny_models, tmp_path, strategies=["system_prompt"])
    store = RunStore(cfg.store_path)
    run_id = run_comparison(cfg, store=store)
    stored = store.get_run(run_id).results[0].extras.retention
    assert stored.metric == "contains" and stored.f1.n and stored.answers
    # answers kept with the run are enough to score again, without generating
    spoiled = dataclasses.replace(stored, score=Interval(-1.0))
    store.update_extras(run_id, "system_prompt", retention=spoiled)
    assert rescore_retention(store, run_id)
    again = store.get_run(run_id).results[0].extras.retention
    assert again.score == stored.score and again.answers == stored.answers
