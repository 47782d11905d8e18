"""Closed book: the base model with a system prompt describing the domain."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import ConfigBase, check, option
from core.prompts import DEFAULT_SYSTEM_TEMPLATE, describe_domain, system_message
from core.types import Answer, Corpus, PrepareReport, QAPair
from strategies import GenerativeStrategy, register_strategy


@dataclass
class SystemPromptConfig(ConfigBase):
    template: str = option(
        DEFAULT_SYSTEM_TEMPLATE, "System prompt; '{domain}' is replaced by the domain text."
    )
    domain: str = option("", "What the documents are about; empty = made from document titles.")

    def validate(self) -> None:
        check(bool(self.template.strip()), "template must not be empty")


@register_strategy("system_prompt")
class SystemPromptStrategy(GenerativeStrategy):
    config_class = SystemPromptConfig
    description = "Closed book: the base model with a domain system prompt, no documents."

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        domain = describe_domain(corpus, self.config.domain)
        self.system = system_message(self.config.template, domain)
        return PrepareReport(details={"system_prompt": self.system})

    def answer(self, questions: list[str]) -> list[Answer]:
        return self.generate_answers(questions, self.system)
