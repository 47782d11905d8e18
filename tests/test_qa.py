"""Q/A files in each format, their errors, and the leak-safe split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import SplitConfig
from core.qa import QAFormatError, load_qa, near_duplicate_groups, split_pairs
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
        tmp_path, "qa.csv", 'question,answers,source\nQ1?,"[""a"", ""b""]",doc.md\nQ2?,plain,\n'
    )
    pairs = load_qa(p)
    assert pairs[0].answers == ("a", "b") and pairs[0].source == "doc.md"
    assert pairs[1].answers == ("plain",) and pairs[1].source is None
    j = write(tmp_path, "qa.json", json.dumps([{"question": "Q?", "answer": "A"}]))
    assert load_qa(j)[0].answers == ("A",)


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("qa.jsonl", '{"question": "ok", "answer": "a"}\n{"question": "no answer"}\n', "line 2"),
        ("qa.jsonl", '{"question": "ok", "answer": "a"}\n{broken\n', "line 2: invalid JSON"),
        ("qa.jsonl", '{"answer": "a"}\n', "missing 'question'"),
        ("qa.jsonl", '["not", "an", "object"]\n', "expected an object"),
        ("qa.jsonl", "\n\n", "no question/answer pairs"),
        ("qa.csv", "q,a\nx,y\n", "'question' column"),
        ("qa.csv", "question,answer\nQ1?,\n", "row 2"),
        ("qa.txt", "whatever", ".jsonl, .json or .csv"),
        (
            "qa.jsonl",
            '{"id": "1", "question": "a", "answer": "b"}\n'
            '{"id": "1", "question": "c", "answer": "d"}',
            "duplicate id",
        ),
    ],
)
def test_format_errors_name_the_line(tmp_path, name, text, match):
    with pytest.raises(QAFormatError, match=match):
        load_qa(write(tmp_path, name, text))


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


def test_sample_qa_file():
    pairs = load_qa(SAMPLE / "qa.jsonl")
    assert len(pairs) == 367
    assert all(p.answers and p.source in ("Pharmacy.md", "Immune_system.md") for p in pairs)
    train, test = split_pairs(pairs, SplitConfig())
    assert len(test) == round(367 * 0.2) and len(train) + len(test) == 367
