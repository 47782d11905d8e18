"""A model-free strategy for tests: deterministic, instant, registered like the real ones."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from core.config import ConfigBase, check, option
from core.types import Answer, Context, Corpus, Cost, PrepareReport, QAPair
from strategies.base import RunCancelled, Strategy
from strategies.registry import register_strategy

_WORD = re.compile(r"\w+")


@dataclass
class FakeConfig(ConfigBase):
    answer_words: int = option(4, "Words of the best-matching sentence returned as the answer.")
    fail_on_prepare: bool = option(False, "Raise in prepare() (to test failure handling).")
    delay_s: float = option(0.0, "Seconds to sleep per answered batch (tests of long runs).")
    train_steps: int = option(
        0,
        "Pretend training steps in prepare(), each step_s long, reported as training progress "
        "and written to a file in the work folder (crash and cancel tests of training).",
    )
    step_s: float = option(0.1, "Seconds per pretend training step.")

    def validate(self) -> None:
        check(1 <= int(self.answer_words) <= 100, "answer_words must be in 1..100")
        check(0.0 <= float(self.delay_s) <= 600.0, "delay_s must be in 0..600")
        check(0 <= int(self.train_steps) <= 100_000, "train_steps must be in 0..100000")
        check(0.0 <= float(self.step_s) <= 60.0, "step_s must be in 0..60")


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
        if not self.config.train_steps:
            return PrepareReport(details={"sentences": len(self.sentences)})
        weights = self._pretend_training(int(self.config.train_steps))
        return PrepareReport(
            artifact_bytes=weights.stat().st_size,
            artifact_path=str(weights.parent),
            details={"sentences": len(self.sentences)},
        )

    def _pretend_training(self, steps: int):
        """Sleep `steps` times, reporting progress and appending to a weights file, as a
        trainer would; cancellable between steps. Returns the file."""
        weights = self.ctx.workdir / self.name / "weights.bin"
        weights.parent.mkdir(parents=True, exist_ok=True)
        with open(weights, "wb") as f:
            for step in range(1, steps + 1):
                if self.ctx.cancelled():
                    raise RunCancelled
                time.sleep(float(self.config.step_s))
                f.write(step.to_bytes(4, "little"))
                f.flush()
                self.ctx.progress(
                    {"stage": "train", "step": step, "steps": steps, "loss": 1 / step}
                )
        return weights

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
