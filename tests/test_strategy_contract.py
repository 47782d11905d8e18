"""The strategy contract, checked for every registered strategy (new ones get it for free)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from core.config import ConfigError, ModelConfig
from core.corpus import hf_token_spans, ingest
from core.engines.in_process import _GENERATORS, load_generator
from core.qa import load_qa
from core.types import Answer, Context, PrepareReport
from strategies import (
    create_strategy,
    get_strategy_class,
    make_config,
    register_strategy,
    strategy_names,
)
from strategies.base import StrategyContext

ALL = strategy_names(include_hidden=True)


def test_builtin_strategies_are_registered():
    assert {"system_prompt", "few_shot", "rag", "lora", "fake"} <= set(ALL)
    assert "fake" not in strategy_names()  # test-only strategies are not offered to users


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("rag")(type("Other", (get_strategy_class("fake"),), {}))


@pytest.mark.parametrize("name", ALL)
def test_config_round_trips_and_documents_every_field(name):
    cls = get_strategy_class(name).config_class
    cfg = cls()
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert cls.from_yaml(cfg.to_yaml()) == cfg
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f"{name}.{f.name} has no help text"
    with pytest.raises(ConfigError, match="unknown option"):
        cls.from_dict({"no_such_option": 1})


@pytest.mark.parametrize("name", ALL)
def test_constructor_is_cheap(name, tmp_path):
    models = ModelConfig(generator="tiny", cache_dir=str(tmp_path / "cache"))
    t0 = time.perf_counter()
    create_strategy(name, None, StrategyContext(models=models, workdir=tmp_path))
    assert time.perf_counter() - t0 < 0.5
    assert not any(key[2] == models.cache_dir for key in _GENERATORS)  # nothing loaded


@pytest.fixture
def prepared_inputs(mini_corpus, tiny_models):
    corpus_dir, qa_path = mini_corpus
    tok = load_generator(tiny_models).tokenizer
    from core.config import ChunkingConfig

    corpus = ingest(
        corpus_dir, ChunkingConfig(chunk_tokens=48, overlap_tokens=8), hf_token_spans(tok)
    )
    pairs = load_qa(qa_path)
    return corpus, pairs[:7], pairs[7:]


SMALL_SETTINGS = {
    "lora": {"epochs": 1, "batch_size": 4},
    "few_shot": {"k": 2},
    "lora+rag": {"lora": {"epochs": 1, "batch_size": 4}},
    "few_shot+rag": {"few_shot": {"k": 2}},
}


@pytest.mark.parametrize("name", ALL)
def test_prepare_then_answer(name, prepared_inputs, tiny_models, tmp_path):
    corpus, train, test = prepared_inputs
    events = []
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path, progress=events.append)
    s = create_strategy(name, SMALL_SETTINGS.get(name), ctx)
    report = s.prepare(corpus, train)
    assert isinstance(report, PrepareReport)
    questions = [p.question for p in test]
    try:
        answers = s.answer(questions)
        assert s.answer([]) == []
    finally:
        s.close()
    assert len(answers) == len(questions)
    for q, a in zip(questions, answers, strict=True):
        assert isinstance(a, Answer)
        assert a.question == q
        assert isinstance(a.text, str)
        assert a.cost.prompt_tokens > 0 and a.cost.output_tokens >= 0
        assert all(isinstance(c, Context) for c in a.contexts)
        Answer.from_dict(a.to_dict())  # answers survive storage
    assert report.artifact_bytes >= 0
    if report.artifact_path:
        assert Path(report.artifact_path).exists()


def test_invalid_settings_are_refused():
    with pytest.raises(ConfigError, match="top_k"):
        make_config("rag", {"top_k": 0})
    with pytest.raises(ConfigError, match="selection"):
        make_config("few_shot", {"selection": "best"})
    with pytest.raises(ConfigError, match="backend"):
        make_config("rag", {"backend": "pinecone"})
