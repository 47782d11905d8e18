"""Closed book: the base model with a system prompt describing the domain."""

from __future__ import annotations

from dataclasses import dataclass

from core.types import Answer, Corpus, PrepareReport, QAPair
from strategies.base import GenerativeStrategy, PromptConfig
from strategies.registry import register_strategy


@dataclass
class SystemPromptConfig(PromptConfig):
    """Only the shared prompt options: the template and the domain description."""


@register_strategy("system_prompt")
class SystemPromptStrategy(GenerativeStrategy):
    config_class = SystemPromptConfig
    default = True
    baseline = True  # closed book: the reference for retention and known/new questions
    reads_pairs = False
    description = "Closed book: the base model with a domain system prompt, no documents."
    display_name = "System prompt (closed book)"

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        self.set_system_prompt(corpus)
        return PrepareReport(details={"system_prompt": self.system})

    def answer(self, questions: list[str]) -> list[Answer]:
        return self.generate_answers(questions, self.system)
