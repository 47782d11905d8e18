"""Format-task pairs made from factual Q/A pairs: each gold answer becomes the JSON object
{"answer": ..., "source": ..., "quote": ...} that a JSON Schema written beside them describes.

`answer` is the pair's answer text, `source` the document's name without its extension, and
`quote` the sentence holding the answer: looked for in the pair's passage (generated pairs keep
the sentence they came from), else in the text of the document the pair names. A field some
answers lack (no source named, no sentence found) stays out of the schema's `required`.
The sample's format task (sample_data/build_tasks.py) is built with the same `format_record`,
without quotes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.qagen.heuristics import split_sentences
from core.types import QAPair

FIELDS = ("answer", "source", "quote")
# A `source` enum names every document; past this many names it would swell every prompt that
# carries the schema (the system prompt does), so the field is then plain text.
MAX_ENUM = 50


def document_key(name: str) -> str:
    """A document's name as `source` gives it: its base name without the extension."""
    return Path(str(name).replace("\\", "/")).stem


def quote_for(answer: str, texts: Iterable[str | None]) -> str | None:
    """The first sentence holding `answer` (case-insensitive; as whole words where a sentence
    has it so, else anywhere: "pharma" is quoted from "...from pharma." before "Pharmacy is...")
    in the first of `texts` that holds it, else None."""
    needle = answer.strip().lower()
    if not needle:
        return None
    whole = re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")
    for text in texts:
        if not text or needle not in text.lower():
            continue
        sentences = [text[a:b] for a, b in split_sentences(text)]
        for found in (whole.search, lambda s: needle in s):
            for sentence in sentences:
                if found(sentence.lower()):
                    return sentence
    return None


def format_record(
    pair: QAPair, documents: Mapping[str, str] | None = None, quotes: bool = True
) -> dict[str, Any]:
    """`pair` as a Q/A file record whose answers are JSON objects. `documents`: document key
    (`document_key`) -> text, where a quote is looked for when the passage has none; `quotes`
    False leaves quotes out (the sample's task)."""
    source = document_key(pair.source) if pair.source else None
    texts = (pair.passage, (documents or {}).get(source or ""))
    answers = []
    for text in pair.answers:
        obj: dict[str, Any] = {"answer": text}
        if source:
            obj["source"] = source
        quote = quote_for(text, texts) if quotes else None
        if quote:
            obj["quote"] = quote
        answers.append(obj)
    record: dict[str, Any] = {"id": pair.id, "question": pair.question, "answers": answers}
    for key in ("source", "passage", "group"):
        if getattr(pair, key):
            record[key] = getattr(pair, key)
    return record


def format_schema(records: list[dict[str, Any]], documents: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON Schema the records' answers validate against: `answer` always required,
    `source` and `quote` required when every answer has them; `source` an enum of the
    documents' keys and the sources used (at most MAX_ENUM names, else any text)."""
    answers = [a for r in records for a in r["answers"]]
    present = [f for f in FIELDS if any(f in a for a in answers)]
    required = [f for f in present if all(f in a for a in answers)]
    properties: dict[str, Any] = {f: {"type": "string", "minLength": 1} for f in present}
    used = {a["source"] for a in answers if "source" in a}
    names = sorted({*map(document_key, documents), *used})
    if "source" in properties and 0 < len(names) <= MAX_ENUM:
        properties["source"] = {"type": "string", "enum": names}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "A sourced answer",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class FormatTask:
    """A format task made from Q/A pairs: the Q/A file's records (answers as JSON objects) and
    the JSON Schema they validate against."""

    records: list[dict[str, Any]]  # Q/A file records, as written to the file
    schema: dict[str, Any]  # a JSON Schema document

    @property
    def answers(self) -> int:
        """Gold answers in all."""
        return sum(len(r["answers"]) for r in self.records)

    @property
    def quoted(self) -> int:
        """Gold answers given a quote."""
        return sum("quote" in a for r in self.records for a in r["answers"])


def build_format_task(pairs: list[QAPair], documents: Mapping[str, str]) -> FormatTask:
    """The format task made from `pairs` over a corpus whose documents are `documents`
    (document name -> text)."""
    texts = {document_key(name): text for name, text in documents.items()}
    records = [format_record(p, texts) for p in pairs]
    return FormatTask(records, format_schema(records, documents))
