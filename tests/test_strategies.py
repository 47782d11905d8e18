"""Behaviour of the individual strategies beyond the shared contract (tiny model)."""

from __future__ import annotations

import pytest

from strategies import create_strategy
from strategies.base import StrategyContext


@pytest.fixture
def setup(chunked_mini, tiny_models, tmp_path):
    return *chunked_mini, StrategyContext(models=tiny_models, workdir=tmp_path)


@pytest.mark.parametrize("backend", ["faiss", "chroma"])
def test_rag_retrieves_the_passage_holding_the_answer(setup, backend):
    corpus, pairs, ctx = setup
    rag = create_strategy("rag", {"backend": backend, "top_k": 2}, ctx)
    rag.prepare(corpus, [])
    hits = rag.retrieve(["Where do T cells mature?", "Which Greek root gave pharmacy its name?"])
    assert "thymus" in " ".join(c.text for c in hits[0])
    assert "pharma" in " ".join(c.text for c in hits[1])
    assert all(c.source and c.score is not None for row in hits for c in row)
    assert [c.score for c in hits[0]] == sorted((c.score for c in hits[0]), reverse=True)


def test_rag_hnsw_matches_flat_on_small_corpus(setup):
    corpus, _, ctx = setup
    flat = create_strategy("rag", {"index": "flat", "top_k": 1}, ctx)
    hnsw = create_strategy("rag", {"index": "hnsw", "top_k": 1}, ctx)
    flat.prepare(corpus, [])
    hnsw.prepare(corpus, [])
    qs = ["What do antibodies bind?", "What degree does a pharmacist need?"]
    assert [r[0].text for r in flat.retrieve(qs)] == [r[0].text for r in hnsw.retrieve(qs)]


def test_rag_respects_context_budget(setup):
    corpus, _, ctx = setup
    rag = create_strategy("rag", {"top_k": 10, "max_context_tokens": 40}, ctx)
    rag.prepare(corpus, [])
    picked = rag.retrieve(["immune system"])[0]
    assert len(picked) >= 1
    sizes = {c.id: c.n_tokens for c in corpus.chunks}
    by_text = {c.text: c.n_tokens for c in corpus.chunks}
    assert len(sizes) > len(picked)
    assert len(picked) == 1 or sum(by_text[c.text] for c in picked) <= 40


def test_few_shot_similar_picks_related_examples_within_budget(setup):
    corpus, pairs, ctx = setup
    fs = create_strategy("few_shot", {"k": 2, "selection": "similar"}, ctx)
    fs.prepare(corpus, pairs[:8])
    shots = fs.select(["What do B cells make?"])[0]
    assert len(shots) == 2
    assert shots[-1].id == "q1"  # the closest example sits next to the question
    tight = create_strategy("few_shot", {"k": 4, "max_shot_tokens": 16}, ctx)
    tight.prepare(corpus, pairs[:8])
    for row in tight.select(["What do B cells make?"]):
        assert len(row) <= 1


def test_few_shot_never_shows_the_question_itself(setup):
    corpus, pairs, ctx = setup
    fs = create_strategy("few_shot", {"k": 3}, ctx)
    fs.prepare(corpus, pairs)
    shots = fs.select([pairs[0].question])[0]
    assert pairs[0].id not in {s.id for s in shots}


def test_few_shot_random_is_seeded(setup):
    corpus, pairs, ctx = setup
    picks = []
    for seed in (1, 1, 2):
        fs = create_strategy("few_shot", {"k": 3, "selection": "random", "seed": seed}, ctx)
        fs.prepare(corpus, pairs)
        picks.append([s.id for s in fs.select(["x"])[0]])
    assert picks[0] == picks[1] != picks[2]


def test_lora_trains_saves_and_leaves_base_model_untouched(setup):
    corpus, pairs, ctx = setup
    gen = ctx.generator
    conv = [[{"role": "user", "content": "What do B cells produce?"}]]
    before = gen.generate(conv, max_new_tokens=6)[0].text
    lora = create_strategy(
        "lora", {"epochs": 8, "batch_size": 8, "learning_rate": 5e-3, "r": 4}, ctx
    )
    report = lora.prepare(corpus, pairs)
    curve = report.training.losses
    assert len(curve) == report.training.steps == 16  # ceil(10 / 8) * 8 epochs
    assert sum(curve[-3:]) / 3 < sum(curve[:3]) / 3  # it learns
    assert report.trainable_params > 0
    files = {p.name for p in __import__("pathlib").Path(report.artifact_path).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert gen.generate(conv, max_new_tokens=6)[0].text == before  # base unaffected
    lora.answer(["What do B cells produce?"])
    lora.close()
    assert gen.peft_model is None  # the shared model is plain again
    assert gen.generate(conv, max_new_tokens=6)[0].text == before


def test_lora_adapter_reloads_with_identical_answers(setup):
    corpus, pairs, ctx = setup
    lora = create_strategy("lora", {"epochs": 4, "learning_rate": 5e-3}, ctx)
    report = lora.prepare(corpus, pairs)
    qs = [p.question for p in pairs[:3]]
    trained = [a.text for a in lora.answer(qs)]
    lora.close()
    gen = ctx.generator
    gen.load_adapter("reloaded", report.artifact_path)
    convs = [lora_messages(lora, q) for q in qs]
    from core.prompts import clean_answer

    again = [clean_answer(g.text) for g in gen.generate(convs, 8, adapter="reloaded")]
    gen.detach_adapter("reloaded")
    assert again == trained


def lora_messages(lora, q):
    from core.prompts import answer_messages

    return answer_messages(q, lora.system)


def test_lora_pairs_plus_corpus_adds_facts_but_no_test_question(setup):
    import dataclasses

    from strategies.lora.corpus_facts import HeldOut, corpus_fact_pairs

    corpus, pairs, ctx = setup
    train, test = pairs[:7], pairs[7:]
    ctx = dataclasses.replace(ctx, held_out=tuple(test))
    seen = []
    ctx.progress = lambda ev: seen.append(ev)
    opts = {"epochs": 1, "batch_size": 8, "val_fraction": 0.0, "corpus_phrasings": 2}
    plain = create_strategy("lora", opts, ctx)
    base = plain.prepare(corpus, train).details
    plain.close()
    more = create_strategy("lora", {**opts, "data": "pairs+corpus"}, ctx)
    details = more.prepare(corpus, train).details
    more.close()
    assert base["corpus_pairs"] == 0 and details["corpus_pairs"] > 0
    assert details["qa_examples"] == base["qa_examples"] + details["corpus_pairs"]
    stats = next(ev for ev in seen if ev.get("stage") == "corpus_pairs")
    assert stats["kept"] == details["corpus_pairs"]
    # What it trained on is what corpus_fact_pairs gives with the test and train pairs held out.
    expected = corpus_fact_pairs(corpus, phrasings=2, held_out=HeldOut([*test, *train]))
    assert len(expected.pairs) == details["corpus_pairs"]
    guard = HeldOut(test)
    assert not any(guard.leaks(p) for p in expected.pairs)
