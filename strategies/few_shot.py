"""Few-shot: worked examples from the training split placed before the question."""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.config import check, option
from core.tuning_space import Categorical, IntRange
from core.types import Answer, Corpus, PrepareReport, QAPair
from strategies.base import GenerativeStrategy, PromptConfig
from strategies.registry import register_strategy

SELECTIONS = ("similar", "random")


@dataclass
class FewShotConfig(PromptConfig):
    k: int = option(4, "Most examples shown before each question.", tune=IntRange(1, 8))
    selection: str = option(
        "similar",
        "'similar': the training questions closest to the question (embedding cosine); "
        "'random': a seeded random draw, the same for every question.",
        choices=SELECTIONS,
        tune=Categorical(SELECTIONS),
    )
    max_shot_tokens: int = option(
        400, "Token budget for the examples; shots that would exceed it are dropped."
    )
    seed: int = option(0, "Seed of the random selection.")

    def validate(self) -> None:
        super().validate()
        check(1 <= int(self.k) <= 64, "k must be in 1..64")
        check(int(self.max_shot_tokens) >= 16, "max_shot_tokens must be >= 16")


@register_strategy("few_shot")
class FewShotStrategy(GenerativeStrategy):
    config_class = FewShotConfig
    default = True
    description = "Few-shot: k worked Q/A examples from the training split before the question."
    display_name = "Few-shot examples"
    leaves_out = True  # a question's own pairs are skipped in its pool (select)

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        if not train:
            raise ValueError("few_shot needs training Q/A pairs to draw examples from")
        cfg = self.config
        self.set_system_prompt(corpus)
        self.pool = self.targets(train)  # shots show answers formatted as the task wants
        gen = self.ctx.generator
        # Cost of each shot once, so per-question selection is a sum, not re-tokenising.
        self.shot_tokens = [
            gen.count_tokens(f"Question: {p.question}\n{p.answers[0]}") + 8 for p in self.pool
        ]
        details = {"pool_size": len(self.pool), "selection": cfg.selection}
        if cfg.selection == "similar":
            self.pool_vectors = self.ctx.embedder.encode([p.question for p in self.pool])
            details["embedder"] = self.ctx.embedder.name
        else:
            order = list(range(len(self.pool)))
            random.Random(cfg.seed).shuffle(order)
            self.random_order = order
        return PrepareReport(details=details)

    def _within_budget(self, ranked: list[int]) -> list[QAPair]:
        chosen, used = [], 0
        for i in ranked:
            if len(chosen) == self.config.k:
                break
            if used + self.shot_tokens[i] > self.config.max_shot_tokens:
                continue
            chosen.append(i)
            used += self.shot_tokens[i]
        # Most similar last: nearest to the question, where small models attend most.
        return [self.pool[i] for i in reversed(chosen)]

    def select(self, questions: list[str]) -> list[list[QAPair]]:
        """The shots for each question, within the token budget."""
        if self.config.selection == "random":
            return [self._within_budget(self._allowed(self.random_order, q)) for q in questions]
        import numpy as np

        sims = self.ctx.embedder.encode(questions) @ self.pool_vectors.T
        out = []
        for row, q in zip(sims, questions, strict=True):
            ranked = [int(i) for i in np.argsort(-row)]
            # An identical training question would leak the answer; the split prevents it,
            # but user-supplied train/test files might not.
            ranked = [i for i in ranked if self.pool[i].question.strip() != q.strip()]
            out.append(self._within_budget(self._allowed(ranked, q)))
        return out

    def _allowed(self, ranked: list[int], question: str) -> list[int]:
        """`ranked` without the pairs left out for `question` (tuning on training pairs)."""
        skip = self.left_out(question)
        return [i for i in ranked if self.pool[i].id not in skip] if skip else ranked

    def answer(self, questions: list[str]) -> list[Answer]:
        return self.generate_answers(questions, self.system, shots=self.select(questions))
