"""Playground: a stored run's strategies prepared again (adapters reused), one question each."""

from __future__ import annotations

import shutil

import pytest

from core.engines.in_process import load_generator
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from service.playground import Playground
from tests.test_harness import make_config


@pytest.fixture
def stored_run(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "rag", "lora"],
        strategy_configs={"lora": {"epochs": 1, "batch_size": 4}},
        retention_questions=0,
    )
    store = RunStore(cfg.store_path)
    return store, run_comparison(cfg, store=store)


def test_every_finished_strategy_answers_with_its_contexts(stored_run):
    store, run_id = stored_run
    pg = Playground.from_run(store, run_id)
    try:
        assert list(pg.strategies) == ["system_prompt", "rag", "lora"]
        got = {a.strategy: a for a in pg.ask("Where do T cells mature?")}
        assert set(got) == {"system_prompt", "rag", "lora"}
        assert got["rag"].answer.contexts and not got["system_prompt"].answer.contexts
        assert all(a.latency_s > 0 and a.answer.cost.prompt_tokens > 0 for a in got.values())
        with pytest.raises(ValueError, match="question"):
            pg.ask("   ")
    finally:
        pg.close()
    assert load_generator(pg.config.models).peft_model is None


def test_lora_reuses_the_stored_adapter_and_answers_as_in_the_run(stored_run):
    store, run_id = stored_run
    run = store.get_run(run_id)
    lora = next(r for r in run.results if r.strategy == "lora")
    stored = {a.question: a.answer.text for a in store.get_answers(run_id, "lora")}
    pg = Playground.from_run(store, run_id, names=["lora"])
    try:
        details = pg.reports["lora"].details  # loaded, not retrained
        assert details["loaded from"] == lora.prepare.artifact_path
        assert "loss_curve" not in details
        for question, text in stored.items():
            (answer,) = pg.ask(question)
            assert answer.answer.text == text  # same adapter, greedy decoding
        label = pg.add_adapter(lora.prepare.artifact_path, label="exported")
        assert label == "exported"
        assert {a.strategy for a in pg.ask("What do B cells produce?")} == {"lora", "exported"}
    finally:
        pg.close()


def test_a_missing_corpus_is_a_clear_error(stored_run):
    store, run_id = stored_run
    shutil.rmtree(store.get_run(run_id).config["corpus"])
    with pytest.raises(ValueError, match="cannot be read any more"):
        Playground.from_run(store, run_id)
