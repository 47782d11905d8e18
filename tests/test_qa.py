"""Q/A files in each format, their errors, and the leak-safe split."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from core.config import SplitConfig
from core.qa import (
    QAFormatError,
    content_words,
    load_qa,
    near_duplicate_groups,
    split_pairs,
)
from core.types import QAPair

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_jsonl_with_answers_list_and_answer_string(tmp_path):
    p = write(
        tmp_path,
        "qa.jsonl",
        '{"id": "x", "question": " Q1? ", "answers": ["a", " a ", "b", ""], "source": "s.md"}\n'
        "\n"
        '{"question": "Q2?", "answer": "c"}\n',
    )
    pairs = load_qa(p)
    assert pairs[0] == QAPair("x", "Q1?", ("a", "b"), "s.md")
    assert pairs[1] == QAPair("q2", "Q2?", ("c",), None)


def test_csv_and_json(tmp_path):
    p = write(
        tmp_path,
        "qa.csv",
        'Question , answers,source\nQ1?,"[""a"", ""b""]",doc.md\nQ2?,plain,\n\nQ3?,[not json,\n',
    )
    pairs = load_qa(p)
    assert pairs[0] == QAPair("q1", "Q1?", ("a", "b"), "doc.md")
    assert pairs[1] == QAPair("q2", "Q2?", ("plain",), None)
    assert pairs[2].answers == ("[not json",)
    both = write(tmp_path, "both.csv", "id,question,answers,answer\n7,Q?,,single\n")
    assert load_qa(both) == [QAPair("7", "Q?", ("single",))]
    j = write(tmp_path, "qa.json", json.dumps([{"id": 0, "question": "Q?", "answer": 1945}]))
    assert load_qa(j) == [QAPair("0", "Q?", ("1945",))]
    lines = write(tmp_path, "lines.json", '{"question": "Q?", "answers": "A", "source": " "}\n')
    assert load_qa(lines) == [QAPair("q1", "Q?", ("A",), None)]


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("qa.jsonl", '{"question": "ok", "answer": "a"}\n{"question": "no answer"}\n', "line 2"),
        ("qa.jsonl", '\n{"question": "ok", "answers": ["", " "]}\n', "qa.jsonl line 2: no answer"),
        ("qa.jsonl", '{"question": "ok", "answer": "a"}\n{broken\n', "line 2: invalid JSON"),
        ("qa.jsonl", '{"answer": "a"}\n', "line 1: missing 'question'"),
        ("qa.jsonl", '{"question": "q", "answers": {"a": 1}}\n', "line 1: 'answers' must be"),
        ("qa.jsonl", '["not", "an", "object"]\n', "line 1: expected an object"),
        ("qa.jsonl", "\n\n", "no question/answer pairs"),
        ("qa.json", "[]", "no question/answer pairs"),
        ("qa.json", '[{"question": "q", "answer": "a"}, 3]', "qa.json item 2: expected an object"),
        ("qa.json", '[{"question": "q",\n "answer": }]', "qa.json line 2: invalid JSON"),
        ("qa.csv", "q,a\nx,y\n", "line 1: the CSV header needs a 'question'"),
        ("qa.csv", "question,source\nx,y\n", "'answers' \\(or 'answer'\\) column"),
        ("qa.csv", "", "CSV header"),
        ("qa.csv", "question,answer\nQ1?,A\n\nQ2?,\n", "qa.csv line 4: no answer"),
        ("qa.csv", 'question,answer\n"multi\nline",\n', "qa.csv line 3: no answer"),
        ("qa.txt", "whatever", ".jsonl, .json or .csv"),
        (
            "qa.jsonl",
            '{"id": "1", "question": "a", "answer": "b"}\n'
            '{"id": "1", "question": "c", "answer": "d"}',
            "line 2: duplicate id '1' \\(first at qa.jsonl line 1\\)",
        ),
    ],
)
def test_format_errors_name_the_line(tmp_path, name, text, match):
    with pytest.raises(QAFormatError, match=match):
        load_qa(write(tmp_path, name, text))


def test_missing_file(tmp_path):
    with pytest.raises(QAFormatError, match="not found"):
        load_qa(tmp_path / "nope.jsonl")


def test_not_utf8(tmp_path):
    p = tmp_path / "qa.jsonl"
    p.write_bytes(b'{"question": "\xff\xfe", "answer": "x"}')
    with pytest.raises(QAFormatError, match="UTF-8"):
        load_qa(p)


def pairs_from(questions: list[str]) -> list[QAPair]:
    return [QAPair(f"q{i}", q, ("a",)) for i, q in enumerate(questions)]


def test_split_sizes_and_determinism():
    pairs = pairs_from([f"Question about topic{i} and item{i * 7}?" for i in range(100)])
    cfg = SplitConfig(test_fraction=0.2, seed=3)
    train, test = split_pairs(pairs, cfg)
    assert len(test) == 20 and len(train) == 80
    assert not {p.id for p in train} & {p.id for p in test}
    assert split_pairs(pairs, cfg) == (train, test)
    assert split_pairs(pairs, SplitConfig(test_fraction=0.2, seed=4))[1] != test
    assert [p.id for p in test] == sorted((p.id for p in test), key=lambda i: int(i[1:]))


def test_near_duplicates_stay_on_one_side():
    base = [f"alpha{i} beta{i} gamma{i} delta{i}?" for i in range(40)]
    dups = [
        "What is the capital of France?",
        "what is the capital of france",
        "What's the capital of France?",
        "Which city is the capital of France?",
    ]
    pairs = pairs_from(base + dups)
    dup_ids = {f"q{i}" for i in range(40, 44)}
    groups = near_duplicate_groups(pairs, 0.6)
    assert any({f"q{i}" for i in g} == dup_ids for g in groups)
    for seed in range(20):
        train, test = split_pairs(pairs, SplitConfig(test_fraction=0.25, seed=seed))
        in_test = dup_ids & {p.id for p in test}
        assert in_test in (set(), dup_ids)


def test_small_sets_keep_one_pair_on_each_side():
    two = pairs_from(["Who discovered penicillin?", "Where is the thymus?"])
    for frac in (0.01, 0.5, 0.99):
        train, test = split_pairs(two, SplitConfig(test_fraction=frac))
        assert len(train) == 1 and len(test) == 1
    same = pairs_from(["What is the thymus?", "what is the thymus"])  # one group only
    assert split_pairs(same, SplitConfig()) == (same, [])
    assert split_pairs([], SplitConfig()) == ([], [])


def test_groups_match_a_brute_force_jaccard():
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(30)] + ["the", "what", "of"]
    questions = [" ".join(rng.sample(vocab, rng.randint(1, 7))) + "?" for _ in range(300)]
    pairs = pairs_from(questions)
    for threshold in (0.3, 0.5, 0.6, 0.7, 1.0):
        groups = near_duplicate_groups(pairs, threshold)
        group_of = {i: k for k, g in enumerate(groups) for i in g}
        words = [content_words(q) for q in questions]
        for i in range(len(pairs)):
            for j in range(i):
                a, b = words[i], words[j]
                if a and b and len(a & b) / len(a | b) >= threshold:
                    assert group_of[i] == group_of[j], (questions[i], questions[j], threshold)
        # and nothing is merged without a chain of similar questions: each group of two or
        # more has every member similar to some other member
        for g in groups:
            for i in g if len(g) > 1 else []:
                assert any(
                    len(words[i] & words[j]) >= threshold * len(words[i] | words[j])
                    or questions[i].lower() == questions[j].lower()
                    for j in g
                    if j != i
                )


def count_comparisons(monkeypatch) -> list[int]:
    """A one-item list counting the word-set intersections grouping does (its comparisons)."""
    import core.qa as qa

    compared = [0]

    class CountingSet(frozenset):
        def __and__(self, other):
            compared[0] += 1
            return frozenset.__and__(self, other)

    real = qa.content_words
    monkeypatch.setattr(qa, "content_words", lambda text: CountingSet(real(text)))
    return compared


def test_grouping_scales(monkeypatch):
    # Counts the candidate comparisons instead of timing them (a timing bound fails on a busy
    # machine): all-pairs would be 5e7; the prefix-filtered index must stay far below that.
    compared = count_comparisons(monkeypatch)
    rng = random.Random(0)
    vocab = [f"term{i}" for i in range(3000)]
    common = ["immune", "system", "cells", "pharmacy"]  # words most questions share
    questions = [" ".join(rng.sample(common, 2) + rng.sample(vocab, 5)) + "?" for _ in range(10000)]
    near_duplicate_groups(pairs_from(questions), 0.6)
    assert 0 < compared[0] < 5e5


@pytest.mark.skipif(not (SAMPLE / "qa.jsonl").is_file(), reason="sample Q/A not bundled yet")
def test_sample_qa_file():
    pairs = load_qa(SAMPLE / "qa.jsonl")
    assert len(pairs) == 367
    assert all(p.answers and p.source in ("Pharmacy.md", "Immune_system.md") for p in pairs)
    train, test = split_pairs(pairs, SplitConfig())
    assert len(test) == round(367 * 0.2) and len(train) + len(test) == 367


def test_forty_thousand_copies_of_one_question_group_in_linear_time(tmp_path):
    # The attack of issue 18: a 1.6 MB file whose every question is "alpha beta" took ~16 min.
    path = tmp_path / "qa.jsonl"
    line = json.dumps({"question": "alpha beta", "answer": "x"})
    path.write_text("\n".join(line.replace('"x"', f'"x{i}"') for i in range(40_000)))
    pairs = load_qa(path)
    t0 = time.perf_counter()
    groups = near_duplicate_groups(pairs, 0.6)
    assert time.perf_counter() - t0 < 2.0
    assert groups == [list(range(40_000))]


def test_distinct_questions_of_common_words_stay_bounded(monkeypatch):
    # Every question distinct but made of the same 300 words: no rare word to index on. Counts
    # comparisons (a timing bound fails on a busy machine): all-pairs would be 2e8.
    import core.qa as qa

    compared = count_comparisons(monkeypatch)
    rng = random.Random(0)
    vocab = [f"common{i}" for i in range(300)]
    questions = [" ".join(rng.sample(vocab, 2)) for _ in range(20_000)]
    near_duplicate_groups(pairs_from(questions), 0.6)
    assert 0 < compared[0] <= 20_000 * (qa.MAX_CANDIDATES + qa.MAX_POSTING)


def test_grouping_can_be_cancelled():
    class Stop(Exception):
        pass

    calls = []

    def check():
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    questions = [f"question number {i} about term{i}" for i in range(10_000)]
    with pytest.raises(Stop):
        near_duplicate_groups(pairs_from(questions), 0.6, check=check)
    assert len(calls) == 2
