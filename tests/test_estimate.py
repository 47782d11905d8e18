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
    assert est["questions"] == 3 and est["train"] == 7
    by = {e["strategy"]: e for e in est["strategies"]}
    assert list(by) == cfg.strategies
    for e in by.values():
        assert e["error"] is None
        assert e["seconds_per_question"] > 0 and e["total_s"] >= e["answer_s"] > 0
    # passages make RAG prompts longer than closed-book ones
    assert by["rag"]["prompt_tokens_mean"] > by["system_prompt"]["prompt_tokens_mean"]
    assert "trains 8 steps" in by["lora"]["prepare_note"]  # ceil(7 / 2) * 2
    assert by["lora"]["variants_s"] > 0 and by["rag"]["variants_s"] == 0
    assert est["total_s"] >= sum(e["total_s"] for e in by.values())
    assert RunStore(cfg.store_path).list_runs() == []


def test_a_strategy_that_cannot_prepare_is_reported_not_raised(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["fake", "system_prompt"],
        strategy_configs={"fake": {"fail_on_prepare": True}},
    )
    by = {e["strategy"]: e for e in estimate_run(cfg)["strategies"]}
    assert "asked to fail" in by["fake"]["error"]
    assert by["system_prompt"]["error"] is None
