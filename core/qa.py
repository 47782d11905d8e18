"""Question/answer files (JSONL, JSON, CSV), the leak-safe train/test split and the validation
share carved from the training pairs (LoRA's and tuning's)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import SplitConfig
from core.tasks import TaskSpec, gold_problem
from core.types import QAPair
from core.untrusted.caps import MAX_QUESTION_CHARS
from core.untrusted.sandbox import FileParser, ParseRefused


class QAFormatError(ValueError):
    """The Q/A file cannot be used; the message names the file, the line and the problem."""


def _answers(raw: dict[str, Any], where: str, json_answers: bool = False) -> tuple[str, ...]:
    value = raw.get("answers")
    if value in (None, ""):  # a CSV may carry both columns with one of them empty
        value = raw.get("answer")
    if isinstance(value, str):
        text = value.strip()
        value = [text]
        if text.startswith("["):  # CSV cells hold lists as JSON
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                value = parsed
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]  # numeric answers ("1945") often come unquoted in JSON
    if value is not None and not isinstance(value, list):
        raise QAFormatError(f"{where}: 'answers' must be a list of strings or 'answer' a string")
    kept: list[str] = []
    for a in value or []:
        # Format tasks: a gold answer may be a JSON object, kept as its JSON text.
        if json_answers and isinstance(a, dict):
            a = json.dumps(a, ensure_ascii=False)
        a = _scalar(a, "an answer", where)
        if a and a not in kept:
            kept.append(a)
    if not kept:
        raise QAFormatError(f"{where}: no answer (give 'answers' or 'answer')")
    return tuple(kept)


def _scalar(value: Any, what: str, where: str) -> str:
    """A string, or a finite number as text; None is ''. Anything else (an object, a list, a
    boolean, NaN) was turned into text like "{'text': ...}" before; now it is an error."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise QAFormatError(f"{where}: {what} must be text, not {json.dumps(value)[:60]}")


def _pair(raw: Any, n: int, where: str, json_answers: bool = False) -> QAPair:
    if not isinstance(raw, dict):
        raise QAFormatError(f"{where}: expected an object with 'question' and 'answers'")
    if None in raw:  # csv.DictReader puts the cells beyond the header under None
        raise QAFormatError(f"{where}: more cells than the header has columns")
    question = _scalar(raw.get("question"), "'question'", where)
    if not question:
        raise QAFormatError(f"{where}: missing 'question'")
    if len(question) > MAX_QUESTION_CHARS:
        raise QAFormatError(f"{where}: question over {MAX_QUESTION_CHARS:,} characters")
    pid = _scalar(raw.get("id"), "'id'", where)
    source = _scalar(raw.get("source"), "'source'", where)
    passage = _scalar(raw.get("passage"), "'passage'", where)
    group = _scalar(raw.get("group"), "'group'", where)
    answers = _answers(raw, where, json_answers)
    return QAPair(pid or f"q{n}", question, answers, source or None, passage or None, group or None)


def _rows(path: Path, text: str) -> list[tuple[str, Any]]:
    """(where, raw record) for every non-blank record of the file."""
    name, ext = path.name, path.suffix.lower()
    if ext == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        try:
            header = [(f or "").strip().lower() for f in reader.fieldnames or []]
        except csv.Error as e:
            raise QAFormatError(f"{name} line 1: unreadable CSV header ({e})") from e
        if "question" not in header or not {"answer", "answers"} & set(header):
            raise QAFormatError(
                f"{name} line 1: the CSV header needs a 'question' and an 'answers' (or 'answer') "
                f"column, found {header}"
            )
        repeated = sorted({h for h in header if h and header.count(h) > 1})
        if repeated:
            raise QAFormatError(f"{name} line 1: the CSV header repeats {repeated}")
        reader.fieldnames = header
        rows = []
        try:
            for row in reader:
                if any(isinstance(v, str) and v.strip() for v in row.values()):
                    rows.append((f"{name} line {reader.line_num}", row))
        except csv.Error as e:  # a cell over csv's 128 KB field limit, a NUL byte...
            raise QAFormatError(f"{name} line {reader.line_num + 1}: unreadable CSV ({e})") from e
        return rows
    if ext not in (".jsonl", ".json"):
        raise QAFormatError(f"{name}: Q/A files must be .jsonl, .json or .csv, not {ext or '?'}")
    if ext == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise QAFormatError(f"{name} line {e.lineno}: invalid JSON ({e.msg})") from e
        except RecursionError as e:
            raise QAFormatError(f"{name}: JSON nested too deeply") from e
        return [(f"{name} item {i}", item) for i, item in enumerate(items, 1)]
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"{name} line {lineno}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise QAFormatError(f"{name} line {lineno}: invalid JSON ({e.msg})") from e
        except RecursionError as e:
            raise QAFormatError(f"{name} line {lineno}: JSON nested too deeply") from e
    return rows


def load_qa(path: str | Path, task: TaskSpec | None = None) -> list[QAPair]:
    """Read Q/A pairs: .jsonl (one object a line), .json (a list of objects, or JSON lines) or
    .csv (with a header).

    Fields: question; answers (a list, in CSV a JSON list or one string) or answer (a string);
    optional id (default q<n>), source, passage (the text a generated pair came from) and
    group (paraphrases of one question). Under a JSON format `task` an answer may be a JSON
    object, kept as its JSON text; under any format task every gold answer must follow the
    format. Raises QAFormatError naming the line of the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise QAFormatError(f"Q/A file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise QAFormatError(f"{path.name}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    pairs: list[QAPair] = []
    first_seen: dict[str, str] = {}
    json_answers = task is not None and task.is_json
    for where, raw in _rows(path, text):
        pair = _pair(raw, len(pairs) + 1, where, json_answers)
        for answer in pair.answers if task is not None else ():
            problem = gold_problem(task, answer)
            if problem:
                raise QAFormatError(f"{where}: {problem}")
        if pair.id in first_seen:
            raise QAFormatError(
                f"{where}: duplicate id {pair.id!r} (first at {first_seen[pair.id]})"
            )
        first_seen[pair.id] = where
        pairs.append(pair)
    if not pairs:
        raise QAFormatError(f"{path.name}: no question/answer pairs found")
    return pairs


# Question words and function words: two questions differing only in these ask the same thing.
_STOP_WORDS = """
    a an the of in on at to for by with from and or is are was were be been being what which
    who whom whose when where why how does do did can could would should will that this these
    those it its as into than then there their they he she his her has have had"""
_STOP = frozenset(_STOP_WORDS.split())


def content_words(question: str) -> frozenset[str]:
    """Lower-cased words without punctuation and stopwords: what near-duplicates share."""
    words = re.findall(r"\w+", question.lower())
    return frozenset(w for w in words if len(w) > 1 and w not in _STOP)  # "what's" -> "s"


def _normalised(question: str) -> str:
    return " ".join(re.findall(r"\w+", question.lower()))


# Bounds on the candidates one question is compared with, so that a hostile file (40,000
# questions sharing their rarest words) costs linear time: a word's posting list stops growing
# at MAX_POSTING questions, and one question is compared with at most MAX_CANDIDATES others.
# Real Q/A files stay far below both (a rare word is in a few questions), so their groups are
# exactly the Jaccard rule's; past the bounds a pair may be missed, never wrongly merged.
MAX_POSTING = 200
MAX_CANDIDATES = 400
CHECK_EVERY = 2000  # questions between two calls of near_duplicate_groups' `check`


class SimilarQuestions:
    """An inverted index of content-word sets answering "which indexed sets may reach Jaccard
    >= threshold with this one" with a bounded candidate list.

    Prefix filtering: under one global order of words (rarest first by `df`, then by the word),
    two sets with Jaccard >= t share a word among the first |a| - ceil(t|a|) + 1 of each. Only
    those prefix words are indexed and looked up, capped at MAX_POSTING / MAX_CANDIDATES.
    """

    def __init__(self, df: Counter[str], threshold: float):
        self.df, self.threshold = df, threshold
        self.sets: dict[int, frozenset[str]] = {}
        self._index: dict[str, list[int]] = {}

    def _prefix(self, ws: frozenset[str]) -> list[str]:
        ordered = sorted(ws, key=lambda w: (self.df[w], w))
        return ordered[: len(ws) - math.ceil(self.threshold * len(ws) - 1e-9) + 1]

    def similar(self, ws: frozenset[str]) -> list[int]:
        """Keys of indexed sets with Jaccard >= threshold to `ws` (among the candidates)."""
        candidates: set[int] = set()
        for w in self._prefix(ws):
            candidates.update(self._index.get(w, ()))
            if len(candidates) >= MAX_CANDIDATES:
                break
        t = self.threshold
        return [
            j for j in candidates if len(ws & self.sets[j]) >= t * len(ws | self.sets[j]) - 1e-9
        ]

    def add(self, key: int, ws: frozenset[str]) -> None:
        """Index the non-empty set `ws` under `key`."""
        self.sets[key] = ws
        for w in self._prefix(ws):
            posting = self._index.setdefault(w, [])
            if len(posting) < MAX_POSTING:
                posting.append(key)


def near_duplicate_groups(
    pairs: list[QAPair], threshold: float, check: Callable[[], None] | None = None
) -> list[list[int]]:
    """Indices of `pairs` grouped (union-find) so that questions with the same normalised text,
    or content-word Jaccard >= threshold, or the same non-empty `passage` (generated pairs),
    share a group. Groups and members in input order.

    Questions with the same content words are one candidate; the others come from a
    `SimilarQuestions` index with a bounded candidate count, so the time is linear in the
    number of questions. `check` is called every CHECK_EVERY questions (it raises to cancel).
    """
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    same_text: dict[str, int] = {}
    same_words: dict[frozenset[str], int] = {}
    same_passage: dict[str, int] = {}
    same_group: dict[str, int] = {}
    words = [content_words(p.question) for p in pairs]
    for i, p in enumerate(pairs):
        union(i, same_text.setdefault(_normalised(p.question), i))
        if words[i]:  # identical content words: Jaccard 1
            union(i, same_words.setdefault(words[i], i))
        if p.passage:  # pairs drawn from one passage would leak it across the split
            union(i, same_passage.setdefault(" ".join(p.passage.split()), i))
        if p.group:  # declared paraphrases: one side of the split, like near-duplicates
            union(i, same_group.setdefault(p.group, i))

    distinct = list(same_words.values())  # one question per set of content words
    index = SimilarQuestions(Counter(w for i in distinct for w in words[i]), threshold)
    for n, i in enumerate(distinct):
        if check is not None and n % CHECK_EVERY == 0:
            check()
        for j in index.similar(words[i]):
            union(i, j)
        index.add(i, words[i])

    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def group_ids(pairs: list[QAPair], groups: list[list[int]]) -> dict[str, str]:
    """qid -> the id of its group (the id of the group's first member), from
    `near_duplicate_groups`' index groups: what the statistics resample or flip as one unit,
    since questions from one passage, or near-duplicates, are not independent."""
    return {pairs[i].id: pairs[g[0]].id for g in groups for i in g}


def split_pairs(
    pairs: list[QAPair], config: SplitConfig, check: Callable[[], None] | None = None
) -> tuple[list[QAPair], list[QAPair]]:
    """Seeded (train, test) split with near-duplicate questions kept on one side (see
    `split_pairs_grouped`, which also gives each question's group)."""
    train, test, _ = split_pairs_grouped(pairs, config, check)
    return train, test


def split_pairs_grouped(
    pairs: list[QAPair], config: SplitConfig, check: Callable[[], None] | None = None
) -> tuple[list[QAPair], list[QAPair], dict[str, str]]:
    """Seeded (train, test) split with near-duplicate questions kept on one side.

    Shuffled whole groups go to test while they fit in round(n * test_fraction) pairs (at least
    one test and one train pair when there are two groups or more); each side keeps the input
    order. The same pairs and config always give the same split. The third item maps every
    qid to its group id (`group_ids`).
    """
    groups = near_duplicate_groups(pairs, config.near_duplicate_jaccard, check)
    ids = group_ids(pairs, groups)
    if len(groups) < 2:
        return list(pairs), [], ids
    random.Random(config.seed).shuffle(groups)
    n = len(pairs)
    want = min(max(1, round(n * config.test_fraction)), n - 1)
    test_idx: set[int] = set()
    for g in groups:
        if len(test_idx) + len(g) <= want:  # a group that would overshoot is left to train
            test_idx.update(g)
        if len(test_idx) == want:
            break
    if not test_idx:  # every group is bigger than the target: the first (seeded) smallest one
        test_idx.update(min(groups, key=len))
    train = [p for i, p in enumerate(pairs) if i not in test_idx]
    test = [p for i, p in enumerate(pairs) if i in test_idx]
    return train, test, ids


# The split's default near-duplicate threshold (SplitConfig.near_duplicate_jaccard), for the
# validation draws that are not handed the run's own.
DEFAULT_JACCARD = SplitConfig().near_duplicate_jaccard


def split_validation(
    pairs: list[QAPair], fraction: float, seed: int, jaccard: float = DEFAULT_JACCARD
) -> tuple[list[QAPair], list[QAPair]]:
    """(train, validation): a seeded `fraction` of the pairs (rounded down) held out by group.

    Drawn as the test split is: whole near-duplicate groups (same or similar question, same
    `passage`) go to validation while they fit, so a paraphrase of a validation question is
    never trained on. At least one pair always stays in training; fraction 0 gives no
    validation set. Each side keeps the input order.
    """
    n_val = min(int(len(pairs) * float(fraction)), max(0, len(pairs) - 1))
    if n_val <= 0:
        return list(pairs), []
    groups = near_duplicate_groups(pairs, jaccard)
    random.Random(seed).shuffle(groups)
    held: set[int] = set()
    for g in groups:
        if len(held) + len(g) <= n_val:  # a group that would overshoot stays in training
            held.update(g)
        if len(held) == n_val:
            break
    if not held and len(groups) > 1:  # every group is bigger than the target: the smallest
        held.update(min(groups, key=len))
    return (
        [p for i, p in enumerate(pairs) if i not in held],
        [p for i, p in enumerate(pairs) if i in held],
    )


def leave_out_groups(
    pairs: list[QAPair], jaccard: float = DEFAULT_JACCARD
) -> dict[str, frozenset[str]]:
    """Question (stripped) -> ids of the pairs in its near-duplicate group, itself included:
    what a strategy answering that question must not read when it is scored on its own
    training pairs (few-shot's pool)."""
    out: dict[str, set[str]] = {}
    for g in near_duplicate_groups(pairs, jaccard):
        ids = {pairs[i].id for i in g}
        for i in g:
            out.setdefault(pairs[i].question.strip(), set()).update(ids)
    return {q: frozenset(ids) for q, ids in out.items()}


# --- in the bounded parser child (core.untrusted.sandbox): never in the web process
# -------------------


def qa_records(path: Path) -> list[dict[str, Any]]:
    """`load_qa(path)` as JSON records (what the child sends back)."""
    return [dataclasses.asdict(p) for p in load_qa(path)]


def split_ids(path: Path, split: dict[str, Any], task: dict | None = None) -> dict[str, Any]:
    """The pairs of `path` split by `split` (a SplitConfig dict): {"pairs": n, "train": ids,
    "test": ids}; gold answers checked against `task` (a TaskSpec dict) when given. Parsing
    and the near-duplicate grouping both run where this is called."""
    pairs = load_qa(path, TaskSpec.from_dict(task))
    train, test = split_pairs(pairs, SplitConfig.from_dict(split))
    return {"pairs": len(pairs), "train": [p.id for p in train], "test": [p.id for p in test]}


def _in_child(fn: Callable[..., Any], path: str | Path, *args: Any) -> Any:

    path = Path(path)
    if not path.is_file():
        raise QAFormatError(f"Q/A file not found: {path.name}")
    with FileParser() as parser:
        try:
            return parser.call(fn, path, *args)
        except ParseRefused as e:  # a QAFormatError's message, or the limit it went over
            text = str(e)
            raise QAFormatError(text if path.name in text else f"{path.name}: {text}") from None


def load_qa_bounded(path: str | Path) -> list[QAPair]:
    """`load_qa` in the bounded parser child (memory, CPU and wall time capped), for files a
    browser uploaded. Raises QAFormatError with the reason."""
    return [
        QAPair(
            r["id"], r["question"], tuple(r["answers"]), r["source"], r["passage"], r.get("group")
        )
        for r in _in_child(qa_records, path)
    ]


def split_ids_bounded(
    path: str | Path, config: SplitConfig, task: TaskSpec | None = None
) -> dict[str, Any]:
    """`split_ids` in the bounded parser child: a hostile file's parsing or grouping costs the
    child's time, never the web process's. Raises QAFormatError."""
    return _in_child(split_ids, path, config.to_dict(), task.to_dict() if task else None)
