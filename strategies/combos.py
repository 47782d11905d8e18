"""Combinations: strategies built by composing registered ones, not by copying them.

`lora+rag` answers with the fine-tuned adapter and retrieved passages; `few_shot+rag` puts shots
and passages in one prompt. Each part is the registered strategy itself, prepared on the same
inputs, so a fix in `rag` or `lora` reaches the combination too. Published results (RAFT) find
that fine-tuning and retrieval stack when the model was trained to read context: `lora+rag`
therefore trains in the retrieval-aware mode by default; set `lora.mode` to `qa` to see the
naive stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.config import ConfigBase, option
from core.types import Answer, Corpus, PrepareReport, QAPair
from strategies.base import GenerativeStrategy
from strategies.few_shot import FewShotConfig
from strategies.lora import LoraStrategyConfig
from strategies.rag import RagConfig
from strategies.registry import create_strategy, get_strategy_class, register_strategy


class CompositeStrategy(GenerativeStrategy):
    """A strategy made of registered parts; `parts` maps a config field to a strategy name.

    The first part is the one whose system prompt (and adapter, if any) answers: a LoRA adapter
    was trained under its own system prompt and must be asked under the same one.
    """

    parts: ClassVar[dict[str, str]] = {}

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self.members = {
            field: create_strategy(name, getattr(self.config, field), ctx)
            for field, name in self.parts.items()
        }

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        reports = {f: s.prepare(corpus, train) for f, s in self.members.items()}
        lead = self.members[next(iter(self.parts))]
        self.system = lead.system
        self.adapter = getattr(lead, "adapter", None)
        # The lead part's details stay at the top, every part's details are kept under its
        # field name; the training log is the part that trained (the lead or another).
        lead_report = reports[next(iter(self.parts))]
        details = dict(lead_report.details)
        details.update({f: r.details for f, r in reports.items()})
        return PrepareReport(
            trainable_params=sum(r.trainable_params for r in reports.values()),
            artifact_bytes=sum(r.artifact_bytes for r in reports.values()),
            artifact_path=next(
                (r.artifact_path for r in reports.values() if r.artifact_path), None
            ),
            details=details,
            training=next((r.training for r in reports.values() if r.training), None),
        )

    def close(self) -> None:
        for member in self.members.values():
            member.close()

    @classmethod
    def reuse_config(cls, config, prepared):
        parts = {
            field: get_strategy_class(name).reuse_config(getattr(config, field), prepared)
            for field, name in cls.parts.items()
        }
        return config.replace(**parts)

    @classmethod
    def held_out_pairs(cls, config, train):
        """The pairs a part holds out, when every other part that reads the training pairs
        holds out the same ones (a few-shot part would show them as shots); else none."""
        held: list[QAPair] = []
        readers = []
        for field, name in cls.parts.items():
            part = get_strategy_class(name)
            own = part.held_out_pairs(getattr(config, field), train)
            held = held or own
            if part.reads_pairs:
                readers.append({p.id for p in own})
        ids = {p.id for p in held}
        return held if held and all(r == ids for r in readers) else []

    @classmethod
    def validates_on_training(cls):
        """Whether every part can be scored on the training pairs (none trains, each reads
        them not at all or through a pool that leaves a question's own pairs out)."""
        return not cls.trains and all(
            get_strategy_class(name).validates_on_training() for name in cls.parts.values()
        )

    @classmethod
    def training_settings(cls, config):
        """The training section of the first part that has one."""
        return next((s for _, s in cls._trained_parts(config)), None)

    @classmethod
    def with_training(cls, config, settings):
        """`config` with the first trained part's training section set to `settings`."""
        for field, _ in cls._trained_parts(config):
            part = get_strategy_class(cls.parts[field])
            return config.replace(**{field: part.with_training(getattr(config, field), settings)})
        return config

    @classmethod
    def _trained_parts(cls, config):
        """(field, training section) of each part that trains, in the parts' order."""
        for field, name in cls.parts.items():
            found = get_strategy_class(name).training_settings(getattr(config, field))
            if found is not None:
                yield field, found

    @classmethod
    def retrieval_depth(cls, config):
        depths = [
            get_strategy_class(name).retrieval_depth((config or {}).get(field) or {})
            for field, name in cls.parts.items()
        ]
        return next((d for d in depths if d is not None), None)

    @classmethod
    def retriever(cls, config):
        found = (
            get_strategy_class(name).retriever((config or {}).get(field) or {})
            for field, name in cls.parts.items()
        )
        return next((r for r in found if r is not None), None)


def _raft_lora() -> LoraStrategyConfig:
    # Room for the passages RAG will show at answer time (3 chunks of 192 tokens by default);
    # at 256 tokens most distractors would be cut and the adapter would not learn to pick.
    return LoraStrategyConfig(mode="raft", max_seq_tokens=768)


@dataclass
class LoraRagConfig(ConfigBase):
    lora: LoraStrategyConfig = option(
        help="Fine-tuning settings (mode 'raft' trains the adapter to read passages).",
        default_factory=_raft_lora,
    )
    rag: RagConfig = option(RagConfig, "Retrieval settings.")


@register_strategy("lora+rag")
class LoraRagStrategy(CompositeStrategy):
    config_class = LoraRagConfig
    parts = {"lora": "lora", "rag": "rag"}
    trains = True
    retrieves = True
    description = "LoRA + RAG: the fine-tuned adapter answering with retrieved passages."
    display_name = "LoRA + RAG (RAFT)"

    def answer(self, questions: list[str]) -> list[Answer]:
        passages = self.members["rag"].retrieve(questions)
        return self.generate_answers(questions, self.system, passages=passages)


@dataclass
class FewShotRagConfig(ConfigBase):
    few_shot: FewShotConfig = option(FewShotConfig, "Example selection settings.")
    rag: RagConfig = option(RagConfig, "Retrieval settings.")


@register_strategy("few_shot+rag")
class FewShotRagStrategy(CompositeStrategy):
    config_class = FewShotRagConfig
    parts = {"few_shot": "few_shot", "rag": "rag"}
    retrieves = True
    description = "Few-shot + RAG: worked examples and retrieved passages in one prompt."
    display_name = "Few-shot + RAG"

    def answer(self, questions: list[str]) -> list[Answer]:
        shots = self.members["few_shot"].select(questions)
        passages = self.members["rag"].retrieve(questions)
        return self.generate_answers(questions, self.system, passages=passages, shots=shots)
