"""Dry-run estimate: measured on a probe, extrapolated for training, nothing stored."""

from __future__ import annotations

from eval.run.estimate import estimate_run
from eval.store import RunStore
from tests.test_harness import make_config


def test_estimate_covers_every_strategy_and_stores_nothing(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "rag", "lora", "fake"],
        strategy_configs={"lora": {"epochs": 2, "batch_size": 2}},
        learning_curve=[0.5],
    )
    est = estimate_run(cfg)
    assert est.questions == 3 and est.train == 7
    by = {e.strategy: e for e in est.strategies}
    assert list(by) == cfg.strategies
    for e in by.values():
        assert e.error is None
        assert e.seconds_per_question > 0 and e.total_s >= e.answer_s > 0
    # passages make RAG prompts longer than closed-book ones
    assert by["rag"].prompt_tokens_mean > by["system_prompt"].prompt_tokens_mean
    assert "trains 8 steps" in by["lora"].prepare_note  # ceil(7 / 2) * 2
    assert by["lora"].variants_s > 0 and by["rag"].variants_s == 0
    assert est.total_s >= sum(e.total_s for e in by.values())
    assert RunStore(cfg.store_path).list_runs() == []


def test_a_strategy_that_cannot_prepare_is_reported_not_raised(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["fake", "system_prompt"],
        strategy_configs={"fake": {"fail_on_prepare": True}},
    )
    by = {e.strategy: e for e in estimate_run(cfg).strategies}
    assert "asked to fail" in by["fake"].error
    assert by["system_prompt"].error is None


def test_estimate_runs_as_a_worker_job_and_scales_a_sampled_preparation(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    from eval.jobs import JobQueue, work
    from eval.run import estimate

    monkeypatch.setattr(estimate, "PREPARE_SAMPLE", 1)  # every corpus is bigger than this
    monkeypatch.setattr(estimate, "SAMPLED_NOTE_S", 0.0)
    cfg = make_config(mini_corpus, tiny_models, tmp_path, strategies=["rag", "system_prompt"])
    queue = JobQueue(cfg.store_path)
    job = queue.submit_estimate(cfg, owner="someone")
    work(cfg.store_path, once=True)
    snap = queue.get(job)
    assert snap.status == "done", snap
    assert snap.kind == "estimate" and snap.run_id is None
    est = queue.estimate_result(job)
    by = {e.strategy: e for e in est.strategies}
    assert "measured on a sample, scaled" in by["rag"].prepare_note
    assert by["system_prompt"].seconds_per_question > 0
    assert RunStore(cfg.store_path).list_runs() == []
