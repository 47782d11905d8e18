"""Q/A generation from a corpus: cloze spans, model-based filtering, editing, storage, split."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from core.config import ChunkingConfig, ConfigError, SplitConfig
from core.corpus import ingest, whitespace_token_spans
from core.qa import load_qa, split_pairs
from core.qagen import (
    QAGenConfig,
    QARecordError,
    check_records,
    find_span,
    generate_qa,
    pairs_to_records,
    parse_reply,
    records_to_pairs,
    save_qa_jsonl,
    split_sentences,
)
from core.types import QAPair
from eval.run.harness import run_comparison
from eval.run.inputs import load_inputs
from eval.store.runs import RunStore
from tests.test_harness import make_config


@pytest.fixture
def corpus(mini_corpus):
    folder, _ = mini_corpus
    return ingest(folder, ChunkingConfig(chunk_tokens=24, overlap_tokens=4), whitespace_token_spans)


def test_cloze_answers_are_spans_of_their_passage_and_source(corpus):
    result = generate_qa(corpus, QAGenConfig(n=50, per_chunk=5))
    assert len(result.pairs) >= 5
    texts = {d.name: d.text for d in corpus.documents}
    for p in result.pairs:
        assert p.answers[0] in p.passage
        assert p.passage in texts[p.source]  # the passage is a real sentence of its document
        blanked = p.question.removeprefix("Fill in the blank: ")
        if "_____" in blanked:
            assert blanked.replace("_____", p.answers[0]) == p.passage
    assert len({p.id for p in result.pairs}) == len(result.pairs)
    assert result.stats["kept"] == len(result.pairs)


def test_cloze_rewrites_simple_definitions_and_skips_headings(corpus):
    pairs = generate_qa(corpus, QAGenConfig(n=50, per_chunk=5)).pairs
    by_q = {p.question: p.answers[0] for p in pairs}
    assert by_q.get("What is pharmacy?") == "the science of preparing and dispensing drugs" or (
        by_q.get("What is Pharmacy?") == "the science of preparing and dispensing drugs"
    )
    assert not any(p.passage == "Immune system" for p in pairs)  # the heading


def test_cloze_is_deterministic_and_caps_hold(corpus):
    cfg = QAGenConfig(n=4, per_chunk=1, seed=3)
    a, b = generate_qa(corpus, cfg), generate_qa(corpus, cfg)
    assert [p.id for p in a.pairs] == [p.id for p in b.pairs] and a.stats == b.stats
    assert len(a.pairs) == 4
    assert a.stats["rejected"]["over_n"] >= 1
    per_source_chunk = {}
    chunk_of = {}
    for c in corpus.chunks:
        for p in a.pairs:
            if p.passage in c.text:
                chunk_of.setdefault(p.id, c.id)
    for cid in chunk_of.values():
        per_source_chunk[cid] = per_source_chunk.get(cid, 0) + 1
    assert max(per_source_chunk.values()) <= 1
    others = {tuple(p.id for p in generate_qa(corpus, cfg.replace(seed=s)).pairs) for s in range(6)}
    assert len(others) > 1  # the seed matters


def test_sentence_split_keeps_abbreviations_and_exact_offsets():
    text = "Dr. Smith studied e.g. T cells. The thymus is where T cells mature.\nNext line here."
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "Dr. Smith studied e.g. T cells.",
        "The thymus is where T cells mature.",
        "Next line here.",
    ]


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="method"):
        QAGenConfig(method="magic")
    with pytest.raises(ConfigError, match="max_sentence_words"):
        QAGenConfig(min_sentence_words=10, max_sentence_words=5)
    assert QAGenConfig.from_dict(QAGenConfig(n=7).to_dict()).n == 7


def test_model_method_needs_models(corpus):
    with pytest.raises(ValueError, match="ModelConfig"):
        generate_qa(corpus, QAGenConfig(method="model"))


def test_model_generator_with_tiny_model_reports_rejections(corpus, tiny_models):
    seen = []
    result = generate_qa(
        corpus,
        QAGenConfig(method="model", max_prompts=3, max_new_tokens=12),
        tiny_models,
        progress=lambda done, total: seen.append((done, total)),
    )
    stats = result.stats
    assert stats["considered"] == 3
    assert stats["kept"] + sum(stats["rejected"].values()) == 3
    assert seen[-1] == (3, 3)
    for p in result.pairs:
        assert p.answers[0] in p.passage


def test_reply_parsing_and_span_recovery():
    assert parse_reply("Question: Where do T cells mature?\nAnswer: the thymus.") == (
        "Where do T cells mature?",
        "the thymus.",
    )
    assert parse_reply("I cannot do that") is None
    passage = "The thymus is where T cells mature."
    assert find_span("THE  thymus.", passage) == "The thymus"
    assert find_span("spleen", passage) is None


def test_jsonl_round_trip_keeps_source_and_passage(tmp_path, corpus):
    pairs = generate_qa(corpus, QAGenConfig(n=5)).pairs
    path = save_qa_jsonl(pairs, tmp_path / "out" / "qa.jsonl")
    assert load_qa(path) == pairs


def test_records_round_trip_and_validation():
    p = QAPair(
        "a1",
        "Where do T cells mature?",
        ("the thymus", "thymus"),
        "immune.md",
        "The thymus is where T cells mature.",
    )
    records = pairs_to_records([p])
    assert records[0]["answer"] == "the thymus | thymus" and records[0]["grounded"] is True
    assert records_to_pairs(records) == [p]
    blank = {"id": "", "question": "", "answer": "", "source": "", "passage": ""}
    assert records_to_pairs([*records, blank]) == [p]  # blank rows from a table are dropped
    with pytest.raises(QARecordError, match="row 2: the answer is empty"):
        records_to_pairs([*records, {"question": "What?", "answer": "  "}])
    with pytest.raises(QARecordError, match="row 2: id 'a1'"):
        records_to_pairs([*records, {**records[0]}])
    edited = [{**records[0], "answer": "the spleen"}]
    assert check_records(edited) == ["row 1: the answer 'the spleen' is not in its passage"]
    with pytest.raises(QARecordError, match="not in its passage"):
        records_to_pairs(edited)
    kept = records_to_pairs(edited, allow_ungrounded=True)
    assert kept[0].answers == ("the spleen",) and kept[0].passage == p.passage
    new = records_to_pairs([{"question": "Q?", "answer": ["x", "y"]}])
    assert new[0].id.startswith("gen-") and new[0].answers == ("x", "y")


def test_split_keeps_pairs_of_one_passage_together():
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "omicron",
    ]
    pairs = []
    for i in range(12):
        passage = f"Passage number {i // 3} holds facts."
        pairs.append(
            QAPair(f"p{i}", f"Why {words[i]} {words[(i + 5) % 12]}?", (f"a{i}",), None, passage)
        )
    for seed in range(5):
        train, test = split_pairs(pairs, SplitConfig(test_fraction=0.3, seed=seed))
        assert test and train
        assert len({p.passage for p in test}) >= 1 and len(test) % 3 == 0
        test_passages = {p.passage for p in test}
        assert not test_passages & {p.passage for p in train}


def test_cli_generate_qa_writes_loadable_file(mini_corpus, tmp_path, capsys):
    folder, _ = mini_corpus
    out = tmp_path / "gen.jsonl"
    assert main(["generate-qa", "--corpus", str(folder), "-o", str(out), "--n", "3"]) == 0
    assert "3 pairs kept" in capsys.readouterr().out
    pairs = load_qa(out)
    assert len(pairs) == 3 and all(p.answers[0] in p.passage for p in pairs)
    assert main(["generate-qa", "--corpus", str(folder), "-o", str(out), "--n", "0"]) == 2
    assert "n must be" in capsys.readouterr().err


def test_harness_without_qa_file_uses_generated_pairs(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        qa="",
        strategies=["fake"],
        qa_generation={"n": 10, "per_chunk": 3},
        retention_questions=0,
    )
    inputs = load_inputs(cfg)
    assert inputs.qa_file.startswith(str(tmp_path / "work" / "generated_qa"))
    generated = load_qa(inputs.qa_file)
    assert inputs.n_pairs == len(generated) >= 5
    assert all(p.id.startswith("gen-") for p in inputs.test)
    run_id = run_comparison(cfg)
    run = RunStore(cfg.store_path).get_run(run_id)
    assert run.status == "done"
    assert run.meta.split.qa_file == inputs.qa_file
    assert set(run.meta.split.test_ids) <= {p.id for p in generated}


def test_cli_run_flags_for_generation(mini_corpus, tmp_path):
    from cli.args import parser as _parser
    from cli.main import build_config

    args = _parser().parse_args(["run", "--corpus", "x", "--generate-qa"])
    cfg = build_config(args)
    assert cfg.qa == "" and cfg.qa_generation.method == "cloze"
    args = _parser().parse_args(["run", "--qa", "a.jsonl", "--generate-qa", "model"])
    with pytest.raises(ConfigError, match="not both"):
        build_config(args)
    assert json.loads(cfg.to_json())["qa_generation"]["n"] == 100


# --- several phrasings per fact, never a test question ------------------------------------------


def test_fact_phrasings_differ_and_answer_from_the_sentence(corpus):
    from strategies.lora.corpus_facts import corpus_fact_pairs

    result = corpus_fact_pairs(corpus, phrasings=3)
    by_fact: dict[str, list[QAPair]] = {}
    for p in result.pairs:
        assert p.answers[0] in p.passage
        by_fact.setdefault(p.passage, []).append(p)
    assert result.stats["facts"] == len(by_fact) >= 5
    assert all(1 <= len(ps) <= 3 for ps in by_fact.values())
    assert max(len(ps) for ps in by_fact.values()) == 3
    for ps in by_fact.values():
        assert len({p.question for p in ps}) == len(ps)  # different phrasings, not copies
    one = corpus_fact_pairs(corpus, phrasings=1)
    assert one.stats["facts"] == result.stats["facts"] and len(one.pairs) == len(by_fact)
    assert len(corpus_fact_pairs(corpus, phrasings=3, max_pairs=4).pairs) == 4


def test_fact_pairs_never_duplicate_a_test_question(corpus):
    from strategies.lora.corpus_facts import HeldOut, corpus_fact_pairs

    every = corpus_fact_pairs(corpus, phrasings=3).pairs
    # A generated test set: its pairs' questions and passages must not come back for training.
    test = generate_qa(corpus, QAGenConfig(n=4, per_chunk=1)).pairs
    guard = HeldOut(test)
    kept = corpus_fact_pairs(corpus, phrasings=3, held_out=guard)
    assert kept.stats["rejected"]["held_out"] >= len(test)
    test_q = {p.question for p in test}
    test_passages = {p.passage for p in test}
    assert not any(p.question in test_q or p.passage in test_passages for p in kept.pairs)
    assert len(kept.pairs) < len(every)
    # A reworded near-duplicate of a test question is caught too; an unrelated one is not.
    q = QAPair("t", "Which cells produce antibodies in the blood?", ("B cells",))
    guard = HeldOut([q])
    assert guard.leaks(QAPair("g", "Which cells produce antibodies in blood?", ("B cells",)))
    assert not guard.leaks(QAPair("g", "Where do T cells mature?", ("thymus",)))


class _Parrot:
    """A generator whose replies are given per call, to test the paraphrase filter."""

    def __init__(self, replies):
        self.replies = list(replies)

    def generate(self, convs, max_new_tokens=64):
        from types import SimpleNamespace

        return [SimpleNamespace(text=self.replies.pop(0)) for _ in convs]


def test_paraphrases_are_filtered_and_weak_models_skipped():
    from strategies.lora.corpus_facts import HeldOut, paraphrase_pairs

    pairs = [
        QAPair(
            "a", "What do B cells produce?", ("antibodies",), "x", "B cells produce antibodies."
        ),
        QAPair("b", "Where do T cells mature?", ("thymus",), "x", "T cells mature in the thymus."),
        QAPair("c", "What does fever raise?", ("temperature",), "x", "Fever raises temperature."),
    ]
    good = _Parrot(["Question: B cells make what?", "The thymus is where.", "Fever raises what?"])
    kept, stats = paraphrase_pairs(pairs, good, HeldOut([]))
    assert [p.question for p in kept] == ["B cells make what?", "Fever raises what?"]
    assert kept[0].answers == ("antibodies",) and kept[0].passage == pairs[0].passage
    assert stats["capable"] and stats["rejected"] == {"not_a_question": 1}
    weak = _Parrot(["antibodies", "thymus", "What do B cells produce?"])
    kept, stats = paraphrase_pairs(pairs, weak)
    assert kept == [] and stats["capable"] is False


def test_held_out_guard_is_an_index_that_matches_a_brute_force_jaccard():
    # 20,000 held-out questions: an index lookup per generated pair, not a scan of all of them.
    import random

    from core.qa import content_words
    from strategies.lora.corpus_facts import HeldOut

    rng = random.Random(2)
    vocab = [f"w{i}" for i in range(40)]
    held = [
        QAPair(f"t{i}", " ".join(rng.sample(vocab, rng.randint(1, 6))), ("a",)) for i in range(300)
    ]
    guard = HeldOut(held, jaccard=0.6)
    sets = [content_words(p.question) for p in held]
    for n in range(300):
        q = " ".join(rng.sample(vocab, rng.randint(1, 6)))
        w = content_words(q)
        brute = any(len(w & s) >= 0.6 * len(w | s) - 1e-9 for s in sets)
        assert guard.leaks(QAPair(f"g{n}", q, ("a",))) == brute, q
    big = HeldOut([QAPair(f"t{i}", "alpha beta", ("a",)) for i in range(20_000)])
    assert big.leaks(QAPair("g", "Alpha beta?", ("a",)))
    assert not big.leaks(QAPair("g", "gamma delta", ("a",)))
