"""Generated pairs as files and as table rows: JSONL storage, and the rows the Corpus page edits
(`pairs_to_records` / `check_records` / `records_to_pairs`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.files import write_text_atomic
from core.qagen.heuristics import find_span, pair_id
from core.types import QAPair


def save_qa_jsonl(pairs: list[QAPair], path: str | Path) -> Path:
    """Write pairs as JSONL (id, question, answers, source, passage); `core.qa.load_qa` reads
    it back. Returns the path."""
    lines = []
    for p in pairs:
        rec: dict[str, Any] = {"id": p.id, "question": p.question, "answers": list(p.answers)}
        if p.source:
            rec["source"] = p.source
        if p.passage:
            rec["passage"] = p.passage
        lines.append(json.dumps(rec, ensure_ascii=False))
    return write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


ANSWER_SEP = " | "


class QARecordError(ValueError):
    """Edited rows cannot be used; the message lists the rows (1-based) and the problems."""


def pairs_to_records(pairs: list[QAPair]) -> list[dict[str, Any]]:
    """Flat rows for an editable table: id, question, answer (alternatives joined by ' | '),
    source, passage, grounded (the reference answer is found in the passage, ignoring case,
    spacing and punctuation; None without a passage)."""
    return [
        {
            "id": p.id,
            "question": p.question,
            "answer": ANSWER_SEP.join(p.answers),
            "source": p.source or "",
            "passage": p.passage or "",
            "grounded": (find_span(p.answers[0], p.passage) is not None) if p.passage else None,
        }
        for p in pairs
    ]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        return ""
    return str(value).strip()


def check_records(records: list[dict[str, Any]]) -> list[str]:
    """Problems in edited rows, one message each ('row 3: ...'), without raising. Rows with
    neither question nor answer are blank and ignored."""
    problems: list[str] = []
    ids: dict[str, int] = {}
    for i, rec in enumerate(records, 1):
        question, answer = _cell(rec.get("question")), _cell(rec.get("answer"))
        if not question and not answer:
            continue
        if not question:
            problems.append(f"row {i}: the question is empty")
        if not [a for a in answer.split(ANSWER_SEP.strip()) if a.strip()]:
            problems.append(f"row {i}: the answer is empty")
        pid = _cell(rec.get("id"))
        if pid and pid in ids:
            problems.append(f"row {i}: id {pid!r} is also used by row {ids[pid]}")
        ids.setdefault(pid, i)
        passage = _cell(rec.get("passage"))
        first = answer.split(ANSWER_SEP.strip())[0].strip()
        if passage and first and find_span(first, passage) is None:
            problems.append(f"row {i}: the answer {first!r} is not in its passage")
    return problems


def records_to_pairs(
    records: list[dict[str, Any]], *, allow_ungrounded: bool = False
) -> list[QAPair]:
    """QAPairs from edited rows (as made by `pairs_to_records`; `answer` may also be a list).

    Blank rows (no question and no answer) are dropped. A row with only one of them, or two
    rows with the same id, raise QARecordError listing every problem. A reference answer no
    longer found in its passage is an error too, unless `allow_ungrounded` (the UI shows
    `check_records` and lets the user confirm); such a pair keeps its passage. Rows without
    an id get a generated one.
    """
    problems = check_records(
        [
            {**r, "answer": ANSWER_SEP.join(r["answer"])}
            if isinstance(r.get("answer"), list)
            else r
            for r in records
        ]
    )
    if allow_ungrounded:
        problems = [p for p in problems if "is not in its passage" not in p]
    if problems:
        raise QARecordError("; ".join(problems))
    pairs = []
    for rec in records:
        raw = rec.get("answer")
        answers = (
            [_cell(a) for a in raw]
            if isinstance(raw, list)
            else _cell(raw).split(ANSWER_SEP.strip())
        )
        answers = list(dict.fromkeys(a.strip() for a in answers if a and a.strip()))
        question = _cell(rec.get("question"))
        if not question and not answers:
            continue
        pid = _cell(rec.get("id")) or pair_id(question, answers[0])
        pairs.append(
            QAPair(
                pid,
                question,
                tuple(answers),
                _cell(rec.get("source")) or None,
                _cell(rec.get("passage")) or None,
            )
        )
    return pairs
