"""The data every layer passes around: documents, chunks, Q/A pairs, answers and their costs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One ingested file: its name (relative to the corpus root) and its extracted plain text."""

    name: str
    text: str


@dataclass(frozen=True)
class Chunk:
    """A token-bounded piece of one document; `id` is stable for a given corpus fingerprint."""

    id: str
    source: str
    text: str
    n_tokens: int


@dataclass(frozen=True)
class IngestError:
    """A file that could not be used, and why (shown to the user by name)."""

    name: str
    reason: str


@dataclass
class Corpus:
    """Documents, their chunks, the files that were refused and the fingerprint keying artifacts."""

    documents: list[Document]
    chunks: list[Chunk]
    errors: list[IngestError] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def n_tokens(self) -> int:
        return sum(c.n_tokens for c in self.chunks)


@dataclass(frozen=True)
class QAPair:
    """A question with every acceptable gold answer (the first is the reference one)."""

    id: str
    question: str
    answers: tuple[str, ...]
    source: str | None = None
    passage: str | None = None  # the text a generated pair was drawn from (its answer is in it)


@dataclass
class Cost:
    """What producing something cost. Adds up with `+` so totals are plain sums."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.prompt_tokens + other.prompt_tokens,
            self.output_tokens + other.output_tokens,
            self.latency_s + other.latency_s,
        )


@dataclass
class Context:
    """A piece of text a strategy put in front of the model: a retrieved chunk or a shot."""

    text: str
    source: str | None = None
    score: float | None = None
    kind: str = "chunk"  # "chunk" (retrieved passage) or "shot" (few-shot example)


@dataclass
class Answer:
    """A strategy's answer to one question, with the contexts it used and what it cost.

    Strategies fill `prompt_tokens`/`output_tokens` in `cost`; the harness fills `latency_s`,
    so every strategy's latency is measured the same way.
    """

    question: str
    text: str
    contexts: list[Context] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    raw: str = ""  # the generation before post-processing, for inspection

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Answer:
        return Answer(
            question=d["question"],
            text=d["text"],
            contexts=[Context(**c) for c in d.get("contexts", [])],
            cost=Cost(**d.get("cost", {})),
            raw=d.get("raw", ""),
        )


@dataclass
class PrepareReport:
    """What a strategy's one-off preparation produced; the harness adds time and memory.

    `details` holds strategy-specific figures (loss curve, index type, shots pool size...) as
    JSON-safe values.
    """

    trainable_params: int = 0
    artifact_bytes: int = 0
    artifact_path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
