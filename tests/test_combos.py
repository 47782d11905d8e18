"""Combination strategies: built from the registered parts, answering with both parts' inputs."""

from __future__ import annotations

import pytest

from core.engines.in_process import load_generator
from strategies import create_strategy, get_strategy_class, make_config
from strategies.base import StrategyContext


@pytest.fixture
def inputs(chunked_mini):
    corpus, pairs = chunked_mini
    return corpus, pairs[:7], [p.question for p in pairs[7:]]


def test_lora_rag_answers_with_the_adapter_and_rags_passages(inputs, tiny_models, tmp_path):
    corpus, train, questions = inputs
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path)
    combo = create_strategy("lora+rag", {"lora": {"epochs": 1, "batch_size": 4}}, ctx)
    assert isinstance(combo.members["lora"], get_strategy_class("lora"))
    assert isinstance(combo.members["rag"], get_strategy_class("rag"))
    report = combo.prepare(corpus, train)
    gen = load_generator(tiny_models)
    try:
        assert combo.adapter is not None and combo.adapter == combo.members["lora"].adapter
        assert report.trainable_params > 0 and report.training.losses
        assert report.details["rag"]["chunks_indexed"] == len(corpus.chunks)
        answers = combo.answer(questions)
        expected = combo.members["rag"].retrieve(questions)
        assert [[c.text for c in a.contexts] for a in answers] == [
            [c.text for c in row] for row in expected
        ]
        # the passages are in the prompt: longer than the same question closed book
        closed = combo.members["lora"].answer(questions)
        assert all(
            a.cost.prompt_tokens > b.cost.prompt_tokens
            for a, b in zip(answers, closed, strict=True)
        )
    finally:
        combo.close()
    assert gen.peft_model is None  # closing the combination released the adapter


def test_few_shot_rag_puts_shots_and_passages_in_one_prompt(inputs, tiny_models, tmp_path):
    corpus, train, questions = inputs
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path)
    combo = create_strategy("few_shot+rag", {"few_shot": {"k": 2}, "rag": {"top_k": 2}}, ctx)
    combo.prepare(corpus, train)
    for a in combo.answer(questions):
        kinds = [c.kind for c in a.contexts]
        assert "chunk" in kinds and kinds.count("shot") == 2


def test_nested_settings_are_validated_by_the_parts():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="top_k"):
        make_config("lora+rag", {"rag": {"top_k": 0}})
    cfg = make_config("few_shot+rag", {"few_shot": {"k": 3}})
    assert cfg.few_shot.k == 3 and cfg.rag.top_k == 3
