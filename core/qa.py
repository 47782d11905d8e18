"""Question/answer files (JSONL, JSON, CSV) and the leak-safe train/test split."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path
from typing import Any

from core.config import SplitConfig
from core.types import QAPair


class QAFormatError(ValueError):
    """The Q/A file cannot be used; the message names the file, the line and the problem."""


def _answers(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("answers", raw.get("answer"))
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):  # CSV cells hold lists as JSON
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = [text]
        else:
            value = [text]
    if not isinstance(value, list):
        raise QAFormatError(f"{where}: 'answers' must be a list of strings or 'answer' a string")
    seen: list[str] = []
    for a in value:
        a = str(a).strip() if a is not None else ""
        if a and a not in seen:
            seen.append(a)
    if not seen:
        raise QAFormatError(f"{where}: no answer (give 'answers' or 'answer')")
    return tuple(seen)


def _pair(raw: Any, n: int, where: str) -> QAPair:
    if not isinstance(raw, dict):
        raise QAFormatError(f"{where}: expected an object with 'question' and 'answers'")
    question = str(raw.get("question") or "").strip()
    if not question:
        raise QAFormatError(f"{where}: missing 'question'")
    source = raw.get("source")
    return QAPair(
        id=str(raw.get("id") or f"q{n}"),
        question=question,
        answers=_answers(raw, where),
        source=str(source).strip() if source else None,
    )


def load_qa(path: str | Path) -> list[QAPair]:
    """Read Q/A pairs: .jsonl (one object a line), .json (a list of objects) or .csv (header).

    Fields: question; answers (list) or answer (string); optional id and source.
    Raises QAFormatError naming the line of the first problem.
    """
    path = Path(path)
    if not path.is_file():
        raise QAFormatError(f"Q/A file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise QAFormatError(f"{path.name}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    ext = path.suffix.lower()
    pairs: list[QAPair] = []
    if ext == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "question" not in reader.fieldnames:
            raise QAFormatError(f"{path.name}: the CSV header must have a 'question' column")
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            pairs.append(_pair(row, len(pairs) + 1, f"{path.name} row {reader.line_num}"))
    elif ext in (".jsonl", ".json"):
        stripped = text.lstrip()
        if ext == ".json" and stripped.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as e:
                raise QAFormatError(f"{path.name} line {e.lineno}: invalid JSON ({e.msg})") from e
            for i, item in enumerate(items, 1):
                pairs.append(_pair(item, i, f"{path.name} item {i}"))
        else:
            for lineno, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as e:
                    raise QAFormatError(f"{path.name} line {lineno}: invalid JSON ({e.msg})") from e
                pairs.append(_pair(item, len(pairs) + 1, f"{path.name} line {lineno}"))
    else:
        raise QAFormatError(f"{path.name}: Q/A files must be .jsonl, .json or .csv")
    if not pairs:
        raise QAFormatError(f"{path.name}: no question/answer pairs found")
    seen: set[str] = set()
    for p in pairs:
        if p.id in seen:
            raise QAFormatError(f"{path.name}: duplicate id {p.id!r}")
        seen.add(p.id)
    return pairs


_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "by",
        "with",
        "from",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "does",
        "do",
        "did",
        "can",
        "could",
        "would",
        "should",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "as",
        "into",
        "than",
        "then",
        "there",
        "their",
        "they",
        "he",
        "she",
        "his",
        "her",
    ]
)


def content_words(question: str) -> frozenset[str]:
    """Lower-cased words without punctuation and stopwords: what near-duplicates share."""
    words = re.findall(r"\w+", question.lower())
    return frozenset(w for w in words if len(w) > 1 and w not in _STOP)  # "what's" -> "s"


def near_duplicate_groups(pairs: list[QAPair], threshold: float) -> list[list[int]]:
    """Indices grouped so that questions with content-word Jaccard >= threshold share a group.

    An inverted index limits comparisons to questions sharing a word, so typical sets stay far
    from all-pairs cost.
    """
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    words = [content_words(p.question) for p in pairs]
    index: dict[str, list[int]] = {}
    for i, ws in enumerate(words):
        key = ws or frozenset({p_norm(pairs[i].question)})
        candidates = {j for w in key for j in index.get(w, ())}
        for j in candidates:
            a, b = words[i], words[j]
            same = p_norm(pairs[i].question) == p_norm(pairs[j].question)
            if same or (a and b and len(a & b) / len(a | b) >= threshold):
                parent[find(i)] = find(j)
        for w in key:
            index.setdefault(w, []).append(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def p_norm(question: str) -> str:
    return " ".join(re.findall(r"\w+", question.lower()))


def split_pairs(pairs: list[QAPair], config: SplitConfig) -> tuple[list[QAPair], list[QAPair]]:
    """Seeded (train, test) split with near-duplicate questions kept on one side.

    Whole groups go to test until it holds round(n * test_fraction) pairs; original order is
    kept within each side.
    """
    if not pairs:
        return [], []
    groups = near_duplicate_groups(pairs, config.near_duplicate_jaccard)
    random.Random(config.seed).shuffle(groups)
    want = max(1, round(len(pairs) * config.test_fraction)) if len(groups) > 1 else 0
    test_idx: set[int] = set()
    for g in groups:
        if len(test_idx) >= want:
            break
        if len(test_idx) + len(g) <= want:  # a group that would overshoot is left to train
            test_idx.update(g)
    if want and not test_idx:  # every group is bigger than the target: take the smallest
        test_idx.update(min(groups, key=len))
    train = [p for i, p in enumerate(pairs) if i not in test_idx]
    test = [p for i, p in enumerate(pairs) if i in test_idx]
    return train, test
