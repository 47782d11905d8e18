"""A model-free strategy for tests: deterministic, instant, registered like the real ones."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from core.config import ConfigBase, check, option
from core.types import Answer, Context, Corpus, Cost, PrepareReport, QAPair
from strategies import Strategy, register_strategy

_WORD = re.compile(r"\w+")


@dataclass
class FakeConfig(ConfigBase):
    answer_words: int = option(4, "Words of the best-matching sentence returned as the answer.")
    fail_on_prepare: bool = option(False, "Raise in prepare() (to test failure handling).")
    delay_s: float = option(0.0, "Seconds to sleep per answered batch (tests of long runs).")

    def validate(self) -> None:
        check(1 <= int(self.answer_words) <= 100, "answer_words must be in 1..100")
        check(0.0 <= float(self.delay_s) <= 600.0, "delay_s must be in 0..600")


@register_strategy("fake")
class FakeStrategy(Strategy):
    """Answers with the first words of the corpus sentence sharing most words with the question."""

    config_class = FakeConfig
    description = "Test double: word-overlap lookup in the corpus, no model."
    display_name = "Fake (test)"
    hidden = True
    uses_models = False

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        if self.config.fail_on_prepare:
            raise RuntimeError("fake strategy asked to fail in prepare()")
        self.sentences = [
            (s.strip(), c.source)
            for c in corpus.chunks
            for s in re.split(r"(?<=[.!?])\s+", c.text)
            if s.strip()
        ]
        return PrepareReport(details={"sentences": len(self.sentences)})

    def answer(self, questions: list[str]) -> list[Answer]:
        if self.config.delay_s:
            time.sleep(float(self.config.delay_s))
        out = []
        for q in questions:
            qw = {w.lower() for w in _WORD.findall(q)}
            best, src = max(
                self.sentences or [("", None)],
                key=lambda s: len(qw & {w.lower() for w in _WORD.findall(s[0])}),
            )
            text = " ".join(best.split()[: self.config.answer_words])
            out.append(
                Answer(
                    question=q,
                    text=text,
                    contexts=[Context(best, source=src)] if best else [],
                    cost=Cost(prompt_tokens=len(q.split()), output_tokens=len(text.split())),
                    raw=text,
                )
            )
        return out


@register_strategy("fake2")
class FakeTwinStrategy(FakeStrategy):
    """The fake strategy under a second name, so one model-free run can hold two strategies
    (queue, kill-and-resume tests)."""

    description = "Test double: a second copy of the fake strategy."
    display_name = "Fake twin (test)"
