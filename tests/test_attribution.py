"""Error attribution: gold passages, the retrieved test, the four cells and the advice text."""

import pytest

from core.config import ConfigError
from core.types import Chunk, Context, Corpus, Document, QAPair
from eval.attribution import (
    GoldPassage,
    VerdictConfig,
    advice,
    closed_book_cells,
    gold_passages,
    passage_retrieved,
    retrieval_cells,
)

CHUNKS = [
    Chunk("c0", "a.md", "The thymus matures T cells. It sits behind the sternum.", 10),
    Chunk("c1", "a.md", "B cells make antibodies in the bone marrow.", 8),
    Chunk("c2", "b.md", "Pharmacists dispense medicines.", 4),
]
CORPUS = Corpus([Document("a.md", ""), Document("b.md", "")], CHUNKS)


def test_gold_passages_from_field_answer_or_none():
    pairs = [
        QAPair(
            "p", "Where are T cells matured?", ("thymus",), "a.md", "The thymus matures T cells."
        ),
        QAPair("a", "What do B cells make?", ("antibodies",), "a.md"),
        QAPair("n", "Who wrote it?", ("nobody here",), None),
    ]
    gold = gold_passages(pairs, CORPUS)
    assert gold["p"] == GoldPassage("The thymus matures T cells.", "a.md", "passage")
    assert gold["a"].found_by == "answer" and gold["a"].text == CHUNKS[1].text
    assert gold["n"] == GoldPassage(None, None, "none")


def test_passage_retrieved():
    sentence = GoldPassage("The thymus  matures T cells.", "a.md", "passage")
    chunk0 = [Context(CHUNKS[0].text)]
    assert passage_retrieved(sentence, ("thymus",), chunk0) is True
    assert passage_retrieved(sentence, ("thymus",), [Context(CHUNKS[1].text)]) is False
    # A passage longer than a chunk: the chunk lies inside it.
    long = GoldPassage(CHUNKS[1].text + " More text follows here.", "a.md", "passage")
    assert passage_retrieved(long, ("antibodies",), [Context(CHUNKS[1].text)]) is True
    # Without a passage field: a chunk holding a gold answer as whole words.
    by_answer = GoldPassage(CHUNKS[1].text, "a.md", "answer")
    assert passage_retrieved(by_answer, ("antibodies",), [Context(CHUNKS[1].text)]) is True
    assert passage_retrieved(by_answer, ("antibody",), [Context(CHUNKS[1].text)]) is False
    # Closed book or shots only: not a retrieval question.
    assert passage_retrieved(by_answer, ("x",), []) is None
    assert passage_retrieved(by_answer, ("x",), [Context("Q: a\nA: b", kind="shot")]) is None


def test_retrieval_cells_and_shares():
    scores = {"q1": 1.0, "q2": 0.2, "q3": 0.9, "q4": 0.0, "q5": 0.1, "q6": 0.7}
    retrieved = {"q1": True, "q2": True, "q3": False, "q4": False, "q5": True, "q6": None}
    c = retrieval_cells("rag", scores, retrieved, threshold=0.5)
    assert c.qids == {
        "retrieved_right": ["q1"],
        "retrieved_wrong": ["q2", "q5"],
        "missed_right": ["q3"],
        "missed_wrong": ["q4"],
    }
    assert c.n == 5 and c.misses == 3  # q6 has no retrieval flag: left out
    assert c.share("retrieved_wrong") == pytest.approx(2 / 3)
    assert c.share("retrieved_right", of="all") == pytest.approx(1 / 5)
    assert c.to_dict()["counts"]["retrieved_wrong"] == 2
    # threshold decides "right": at 0.95 q3 becomes a retrieval failure
    assert retrieval_cells("rag", scores, retrieved, 0.95).count("missed_wrong") == 2


def test_closed_book_cells():
    base = {"q1": 1.0, "q2": 1.0, "q3": 0.0, "q4": 0.0}
    lora = {"q1": 1.0, "q2": 0.0, "q3": 0.6, "q4": 0.0, "unseen": 1.0}
    c = closed_book_cells("lora", lora, base, 0.5)
    assert c.qids == {
        "known_right": ["q1"],
        "known_wrong": ["q2"],
        "new_right": ["q3"],
        "new_wrong": ["q4"],
    }


def test_advice_names_the_larger_failure():
    reading = retrieval_cells(
        "rag", {f"q{i}": 0.0 for i in range(10)}, {f"q{i}": i < 8 for i in range(10)}, 0.5
    )
    text = advice(reading, ceiling=0.21)
    assert text.startswith("80% of rag's misses are reading failures")
    assert "not a better index" in text and "F1 0.21" in text
    index = retrieval_cells(
        "rag", {"a": 0.0, "b": 0.0, "c": 1.0}, {"a": False, "b": False, "c": False}, 0.5
    )
    text = advice(index)
    assert text.startswith("100% of rag's misses are retrieval failures") and "top_k" in text
    assert "1 right answers came without the passage" in text
    perfect = retrieval_cells("rag", {"a": 1.0}, {"a": True}, 0.5)
    assert advice(perfect) == "rag answered all 1 questions right."


def test_advice_closed_book():
    base = {f"q{i}": float(i < 2) for i in range(30)}
    lora = {**base, "q0": 0.0, "q5": 1.0}
    text = advice(closed_book_cells("lora", lora, base, 0.5))
    assert text.startswith("lora answered 1 of 28 questions the base model missed and lost 1")
    assert "pairs+corpus" in text
    # Once trained on corpus pairs, the advice stops sending the user back to them.
    tried = advice(closed_book_cells("lora", lora, base, 0.5), corpus_pairs=True)
    assert "pairs+corpus" not in tried and "retrieval is the lever" in tried


def test_verdict_config_round_trip_and_validation():
    cfg = VerdictConfig(right_threshold=0.8)
    assert VerdictConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        VerdictConfig(right_threshold=1.5)
    with pytest.raises(ConfigError):
        VerdictConfig(power_target=0)
    with pytest.raises(ConfigError, match="right_metric"):
        VerdictConfig(right_metric="bleu")


def test_a_json_gold_is_found_in_passages_by_its_free_text_fields_not_its_labels():
    from core.tasks import TaskSpec

    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "source": {"type": "string", "enum": ["a", "b"]},
        },
    }
    task = TaskSpec("format", schema)
    gold = '{"answer": "antibodies", "source": "a"}'
    assert task.answer_phrases(gold) == ["antibodies"]  # the enum label "a" locates nothing
    assert task.answer_phrases('{"answer": "x y", "n": 3}') == ["x y", "3"]
    assert TaskSpec("style").answer_phrases("Antibodies (Source: a).") == [
        "Antibodies (Source: a)."
    ]
    pair = QAPair("j", "What do B cells make?", (gold,), "a.md")
    # The JSON text is in no chunk; without the task the pair has no gold passage at all.
    assert gold_passages([pair], CORPUS)["j"].found_by == "none"
    found = gold_passages([pair], CORPUS, task)["j"]
    assert found.found_by == "answer" and found.text == CHUNKS[1].text
    hit, miss = [Context(CHUNKS[1].text)], [Context(CHUNKS[2].text)]
    assert passage_retrieved(found, (gold,), hit, task) is True
    assert passage_retrieved(found, (gold,), miss, task) is False
    assert passage_retrieved(found, (gold,), hit) is False  # read as plain text: never found


def test_raft_puts_the_passage_of_a_json_gold_in_its_training_example():
    import random

    from core.tasks import TaskSpec
    from strategies.lora.data import raft_passages

    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    pair = QAPair("j", "What do B cells make?", ('{"answer": "antibodies"}',), "a.md")
    retrieved = [Context(CHUNKS[0].text), Context(CHUNKS[2].text)]
    rng = random.Random(0)
    passages, oracle = raft_passages(
        pair, retrieved, CORPUS, 2, False, rng, TaskSpec("format", schema)
    )
    assert oracle and CHUNKS[1].text in [p.text for p in passages]
    # Before the task was passed, a format run's RAFT trained on distractors alone.
    assert raft_passages(pair, retrieved, CORPUS, 2, False, rng) == (retrieved[:2], False)
