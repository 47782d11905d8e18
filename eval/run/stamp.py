"""What a run read (the corpus fingerprint, the Q/A file's hash, the test question ids), so a
resume can refuse to mix two different inputs in one run and say which one changed.

A run's stored `fingerprint` is `InputStamp.fingerprint`: the documents and the Q/A file
together, so two runs with the same fingerprint asked the same questions about the same
documents. The documents are identified by their names and text, not by how a run chunked them
(a resume that adds a strategy using the model's tokenizer reads the same documents).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.corpus import fingerprint
from core.types import Document


class InputsChanged(ValueError):
    """The inputs on disk are not the ones a stored run read; the message says which."""


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class InputStamp:
    """The identity of a run's inputs."""

    corpus: str  # core.corpus fingerprint of the documents' names and text (not the chunking)
    qa_sha256: str  # hash of the Q/A file's bytes (a generated one too)
    test_ids: list[str] = field(default_factory=list)  # the questions asked, in order

    @property
    def fingerprint(self) -> str:
        """Corpus and Q/A file in one short id (what the run's `fingerprint` holds)."""
        return hashlib.sha256(f"{self.corpus}\0{self.qa_sha256}".encode()).hexdigest()[:16]

    @classmethod
    def read(cls, documents: list[Document], qa_file: str | Path, test_ids: list[str]):
        """The stamp of what a run reads now: these documents, this Q/A file, these questions."""

        return cls(fingerprint(documents, {}), file_sha256(qa_file), list(test_ids))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> InputStamp | None:
        """The stamp stored with a run; None for runs stored before stamps existed."""
        if not data or "corpus" not in data or "qa_sha256" not in data:
            return None
        return cls(str(data["corpus"]), str(data["qa_sha256"]), list(data.get("test_ids", [])))

    def changes(self, now: InputStamp) -> list[str]:
        """What differs between this (stored) stamp and `now`, in words; empty when nothing."""
        out = []
        if self.corpus != now.corpus:
            out.append(
                f"the documents changed (corpus fingerprint {self.corpus[:12]} then, "
                f"{now.corpus[:12]} now)"
            )
        if self.qa_sha256 != now.qa_sha256:
            out.append(
                f"the Q/A file changed (sha256 {self.qa_sha256[:12]} then, "
                f"{now.qa_sha256[:12]} now)"
            )
        if self.test_ids != now.test_ids:
            gone = [q for q in self.test_ids if q not in set(now.test_ids)]
            new = [q for q in now.test_ids if q not in set(self.test_ids)]
            detail = []
            if gone:
                detail.append(f"{len(gone)} no longer asked, e.g. {gone[0]!r}")
            if new:
                detail.append(f"{len(new)} new, e.g. {new[0]!r}")
            if not detail:
                detail.append("same questions in another order")
            out.append(f"the test questions differ ({'; '.join(detail)})")
        return out

    def check_resume(self, now: InputStamp, run_id: str) -> None:
        """Raise InputsChanged naming every difference when `now` is not what run `run_id`
        read: resuming would mix two test sets in one comparison."""
        diffs = self.changes(now)
        if diffs:
            raise InputsChanged(
                f"run {run_id} cannot be resumed: {'; '.join(diffs)}. Start a new run instead."
            )
