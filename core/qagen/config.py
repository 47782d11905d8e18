"""How Q/A pairs are generated (`QAGenConfig`) and what a generation returns (`QAGenResult`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.config import ConfigBase, check, option
from core.types import QAPair

ProgressFn = Callable[[int, int], None]  # (done, total)

METHODS = ("cloze", "model")
BLANK = "_____"


@dataclass
class QAGenConfig(ConfigBase):
    """How question/answer pairs are generated from a corpus."""

    method: str = option(
        "cloze",
        "'cloze': fill-in-the-blank questions cut from corpus sentences (no model, "
        "deterministic); 'model': the generator writes a question and answer per passage, and "
        "only answers found in the passage are kept.",
    )
    n: int = option(100, "Most pairs generated in total.")
    per_chunk: int = option(2, "Most pairs generated from one chunk.")
    seed: int = option(0, "Seed choosing sentences, answer spans and chunks.")
    min_sentence_words: int = option(6, "Shortest sentence (in words) used for a question.")
    max_sentence_words: int = option(40, "Longest sentence (in words) used for a question.")
    max_answer_words: int = option(8, "Longest answer (in words) kept.")
    wh_questions: bool = option(
        True, "Rewrite simple 'X is a/the Y.' sentences as 'What is X?' instead of a blank."
    )
    max_prompts: int = option(
        60, "model method: most chunks shown to the generator (one prompt each)."
    )
    max_new_tokens: int = option(64, "model method: most tokens generated per prompt.")

    def validate(self) -> None:
        check(self.method in METHODS, f"method must be one of {', '.join(METHODS)}")
        check(int(self.n) >= 1, "n must be >= 1")
        check(int(self.per_chunk) >= 1, "per_chunk must be >= 1")
        check(int(self.min_sentence_words) >= 3, "min_sentence_words must be >= 3")
        check(
            int(self.max_sentence_words) >= int(self.min_sentence_words),
            "max_sentence_words must be >= min_sentence_words",
        )
        check(int(self.max_answer_words) >= 1, "max_answer_words must be >= 1")
        check(int(self.max_prompts) >= 1, "max_prompts must be >= 1")
        check(1 <= int(self.max_new_tokens) <= 1024, "max_new_tokens must be in 1..1024")


@dataclass
class QAGenResult:
    """Generated pairs and what happened: `stats` has considered, kept and rejected (by reason)."""

    pairs: list[QAPair]
    stats: dict[str, Any] = field(default_factory=dict)
