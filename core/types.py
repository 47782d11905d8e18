"""The data every layer passes around: documents, chunks, Q/A pairs, answers and their costs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


def known_fields(
    cls: type, data: Mapping[str, Any] | None, skip: Iterable[str] = ()
) -> dict[str, Any]:
    """The entries of a stored mapping that dataclass `cls` declares, less `skip`. Records read
    stored JSON of any age this way: keys an older or newer version wrote are left out."""
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {k: data[k] for k in data.keys() if k in names} if data else {}  # noqa: SIM118


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
    # Files read but doubtful (a duplicate, bytes that were not valid text): said, not dropped.
    warnings: list[IngestError] = field(default_factory=list)

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
    group: str | None = None  # paraphrases of one question share a group (consistency)


@dataclass
class Cost:
    """What producing something cost. Adds up with `+` so totals are plain sums."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time (every thread), measured beside the wall-clock latency

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.prompt_tokens + other.prompt_tokens,
            self.output_tokens + other.output_tokens,
            self.latency_s + other.latency_s,
            self.cpu_s + other.cpu_s,
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

    Strategies fill `prompt_tokens`/`output_tokens` in `cost`; the harness fills `latency_s`
    and `cpu_s`, so every strategy is measured the same way.
    """

    question: str
    text: str
    contexts: list[Context] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    raw: str = ""  # the generation before post-processing, for inspection
    truncated: bool = False  # generation stopped at the token limit, not at its end

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
            truncated=bool(d.get("truncated", False)),
        )


@dataclass
class TrainStep:
    """What one optimisation step cost: its loss, the tokens it read and the memory it took."""

    step: int
    loss: float
    tokens: int = 0  # tokens in the step's batches, padding included
    useful_tokens: int = 0  # real (non-padding) tokens
    loss_tokens: int = 0  # tokens the loss is read on (answer tokens; every token in cpt)
    seconds: float = 0.0
    peak_memory_mb: float | None = None  # process RSS on the CPU, allocator peak on CUDA
    micro_batches: int = 1  # forward/backward passes the step was split into

    @property
    def padding_share(self) -> float:
        return 1.0 - self.useful_tokens / self.tokens if self.tokens else 0.0

    @property
    def useful_tokens_per_s(self) -> float:
        return self.useful_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class TrainingLog:
    """What a training run did: loss curves, the best checkpoint, and what training cost.

    The typed record every view reads (loss chart, throughput, estimate), instead of keys in
    `PrepareReport.details`. JSON round-trip through `to_dict`/`from_dict`.
    """

    mode: str = ""
    steps: int = 0  # planned optimisation steps
    steps_done: int = 0
    examples: int = 0
    val_examples: int = 0
    step_log: list[TrainStep] = field(default_factory=list)
    eval_curve: list[dict[str, float]] = field(default_factory=list)  # [{"step", "loss"}]
    best_step: int | None = None  # the validated step whose weights the adapter keeps
    best_eval_loss: float | None = None  # that step's validation loss
    checkpoint_note: str = ""  # why those weights (and not the lowest loss's), in words
    stopped_early: bool = False
    eval_s: float = 0.0  # time spent on validation
    train_s: float = 0.0  # time spent in optimisation steps
    processes: int = 1
    device: str = "cpu"
    checkpointing: bool = False  # activation checkpointing was on
    micro_batch_tokens: int | None = None  # the token budget of one micro-batch
    memory_budget_gb: float | None = None

    @property
    def losses(self) -> list[float]:
        return [s.loss for s in self.step_log]

    @property
    def final_loss(self) -> float | None:
        return self.step_log[-1].loss if self.step_log else None

    @property
    def useful_tokens_per_s(self) -> float:
        seconds = sum(s.seconds for s in self.step_log)
        return sum(s.useful_tokens for s in self.step_log) / seconds if seconds > 0 else 0.0

    @property
    def padding_share(self) -> float:
        tokens = sum(s.tokens for s in self.step_log)
        return 1.0 - sum(s.useful_tokens for s in self.step_log) / tokens if tokens else 0.0

    @property
    def peak_memory_mb(self) -> float | None:
        peaks = [s.peak_memory_mb for s in self.step_log if s.peak_memory_mb is not None]
        return max(peaks) if peaks else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any] | None) -> TrainingLog | None:
        if not d:
            return None
        d = dict(d)
        d["step_log"] = [TrainStep(**s) for s in d.get("step_log", [])]
        return TrainingLog(**d)


@dataclass
class PrepareReport:
    """What a strategy's one-off preparation produced; the harness adds time and memory.

    `details` holds strategy-specific figures (index type, shots pool size...) as JSON-safe
    values; a strategy that trains puts its typed `training` log beside them.
    """

    trainable_params: int = 0
    artifact_bytes: int = 0
    artifact_path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    training: TrainingLog | None = None
