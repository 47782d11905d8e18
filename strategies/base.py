"""The strategy contract: every way of adapting the model is a `Strategy`.

A strategy is built cheaply from its config and a shared `StrategyContext`, does its one-off
work in `prepare()`, then answers batches of questions. The harness (not the strategy) times
and measures both steps, so every strategy is measured the same way.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from core.config import ConfigBase, ModelConfig, check, option
from core.engines.in_process import (
    Embedder,
    Generator,
    load_embedder,
    load_generator,
    resolve_device,
)
from core.prompts import (
    CONTEXT_INSTRUCTION,
    DEFAULT_SYSTEM_TEMPLATE,
    answer_messages,
    clean_answer,
    describe_domain,
    system_message,
)
from core.tasks import TaskSpec
from core.tuning_space import Categorical
from core.types import Answer, Context, Corpus, Cost, PrepareReport, QAPair
from core.untrusted.caps import MAX_PROMPT_CHARS, check_length

ProgressFn = Callable[[dict[str, Any]], None]


class RunCancelled(Exception):
    """The user cancelled the run; long steps (training) raise it between iterations."""


@dataclass
class StrategyContext:
    """What a run shares between its strategies: models, a work folder, a seed, a progress sink.

    Models load lazily on first use and come from the shared cache in `core.engines.in_process`, so
    a run
    holds one generator and one embedder however many strategies use them.
    """

    models: ModelConfig = field(default_factory=ModelConfig)
    workdir: Path = field(default_factory=lambda: Path(".adaptlab") / "work")
    seed: int = 0
    progress: ProgressFn = lambda event: None  # noqa: E731 - a no-op default sink
    cancelled: Callable[[], bool] = lambda: False  # noqa: E731 - polled by long loops
    # The test pairs, only so generated training data can leave them out (core.qagen.HeldOut);
    # never to train on, choose shots from or answer with.
    held_out: tuple[QAPair, ...] = ()
    # Question (stripped) -> ids of training pairs `answer()` must not read for it: tuning
    # scores an arm on its own training pairs, each answered without itself and its
    # near-duplicates (few-shot's pool). Honoured by strategies whose `leaves_out` is True.
    leave_out: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The run's format or style task (None: factual Q/A): the system prompt carries its
    # instruction, shots and training targets are formatted, answers are read by its rules.
    task: TaskSpec | None = None

    @property
    def generator(self) -> Generator:
        return load_generator(self.models)

    @property
    def embedder(self) -> Embedder:
        return load_embedder(self.models)

    @property
    def device(self) -> str:

        return resolve_device(self.models.device)


class Strategy(ABC):
    """One way of adapting the base model to the corpus.

    Subclasses set `name` (by registering), `config_class` and `description`, and implement
    `prepare` and `answer`. Constructors must stay cheap: no model loading, no I/O.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ConfigBase]]
    description: ClassVar[str] = ""
    display_name: ClassVar[str] = ""  # what users call it ("LoRA + RAG (RAFT)"); default: its name
    # Roles: what the views and the harness ask of a strategy instead of its name.
    hidden: ClassVar[bool] = False  # test-only strategies are not offered in the app
    uses_models: ClassVar[bool] = True
    trains: ClassVar[bool] = False  # learns from the training split (learning curves apply)
    # The config field holding its TrainingSettings (the estimate shortens or scales training
    # through it); None when the training schedule is not a settings section.
    training_section: ClassVar[str | None] = None
    default: ClassVar[bool] = False  # in the default selection of a run
    # The closed-book reference: the base model's retention score, known/new questions and
    # domain gain are measured against it.
    baseline: ClassVar[bool] = False
    retrieves: ClassVar[bool] = False  # puts retrieved chunks in front of the model
    accepts_adapter: ClassVar[bool] = False  # answers with a saved peft adapter (playground)
    reads_pairs: ClassVar[bool] = True  # prepare() uses the training pairs (shots, examples)
    # answer() reads the training pairs only as a pool it can leave given pairs out of, per
    # question (`ctx.leave_out`, through `left_out`): scored on its own training pairs, it
    # never sees the answer it is asked for.
    leaves_out: ClassVar[bool] = False

    def __init__(self, config: ConfigBase | None, ctx: StrategyContext):
        self.config = config if config is not None else self.config_class()
        self.ctx = ctx

    @abstractmethod
    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        """One-off work before answering (indexing, training, choosing shots).

        `corpus` is the ingested documents and chunks; `train` the training split, never the
        test questions. Returns what was built (sizes, parameters, strategy details).
        """

    @abstractmethod
    def answer(self, questions: list[str]) -> list[Answer]:
        """Answer a batch of questions, one `Answer` per question, in order.

        Each answer carries the contexts it used and its token counts; the harness adds latency.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most strategies hold nothing
        """Release what prepare() holds in shared memory (adapters); artifacts stay on disk."""

    @classmethod
    def reuse_config(cls, config: ConfigBase, prepared: dict[str, Any]) -> ConfigBase:
        """The config that prepares this strategy again from a stored run's artifacts.

        `prepared` is the stored `prepare` record (artifact_path, details). Strategies whose
        preparation is expensive (training) point the config at the saved artifact; cheap ones
        return the config unchanged and prepare again.
        """
        return config

    @classmethod
    def held_out_pairs(cls, config: ConfigBase, train: list[QAPair]) -> list[QAPair]:
        """The pairs of `train` this strategy holds out to validate on and never trains on.

        Tuning scores a trial on exactly these, so the trial prepares on all of `train` as the
        arm will and the winner's artifacts serve the arm; none by default.
        """
        return []

    @classmethod
    def validates_on_training(cls) -> bool:
        """Whether this strategy can be scored on its own training pairs without having learnt
        their answers: it does not train, and reads the pairs not at all or only through a
        pool that leaves each question's own pairs out. Tuning then validates on all of them."""
        return not cls.trains and (not cls.reads_pairs or cls.leaves_out)

    def left_out(self, question: str) -> frozenset[str]:
        """Ids of the training pairs `answer()` must not read for `question` (none outside
        tuning)."""
        return self.ctx.leave_out.get(question.strip(), frozenset())

    @classmethod
    def training_settings(cls, config: ConfigBase) -> ConfigBase | None:
        """The training loop's section of `config` (its `training_section` field), or None."""
        return getattr(config, cls.training_section) if cls.training_section else None

    @classmethod
    def with_training(cls, config: ConfigBase, settings: ConfigBase) -> ConfigBase:
        """A copy of `config` whose training section is `settings` (unchanged if none)."""
        if not cls.training_section:
            return config
        return config.replace(**{cls.training_section: settings})

    @classmethod
    def retrieval_depth(cls, config: dict[str, Any]) -> int | None:
        """Chunks retrieved per question under the stored `config` (None: does not retrieve)."""
        return None

    @classmethod
    def retriever(cls, config: dict[str, Any]) -> str | None:
        """How it retrieves under the stored `config` ("dense", "bm25", "hybrid"; None: it
        does not retrieve)."""
        return None


# The instructions tuning tries (`tuning.extra_choices: {template: [...]}` adds a user's own):
# the shipped one, a concise-answer one (token F1 punishes extra words) and a plainer one.
PROMPT_TEMPLATES = (
    DEFAULT_SYSTEM_TEMPLATE,
    "You are an expert on {domain}. Reply with the answer alone, in as few words as possible.",
    "You answer questions about {domain}. Give the exact name, term or number asked for.",
    "You are a helpful assistant who knows {domain} well. Answer accurately and briefly.",
)


@dataclass
class PromptConfig(ConfigBase):
    """The system prompt options every generative strategy shares (first in each config)."""

    template: str = option(
        DEFAULT_SYSTEM_TEMPLATE,
        "System prompt; '{domain}' is replaced by the domain text.",
        tune=Categorical(PROMPT_TEMPLATES),
    )
    domain: str = option("", "What the documents are about; empty = made from document titles.")

    def validate(self) -> None:
        check(bool(self.template.strip()), "template must not be empty")
        check_length(self.template, MAX_PROMPT_CHARS, "the system prompt template")
        check_length(self.domain, MAX_PROMPT_CHARS, "the domain text")


class GenerativeStrategy(Strategy):
    """A strategy that answers through the shared generator and the shared answer wrapper."""

    adapter: str | None = None  # LoRA sets its adapter name; everyone else runs the base model
    system: str = ""

    def set_system_prompt(self, corpus: Corpus) -> None:
        """Fill the configured template with the domain (given, or made from the corpus), then
        add the run's task instruction (the schema or the style rules) when it has one."""
        self.system = system_message(
            self.config.template, describe_domain(corpus, self.config.domain)
        )
        instruction = self.ctx.task.instruction() if self.ctx.task is not None else ""
        if instruction:
            self.system = f"{self.system}\n\n{instruction}"

    @property
    def context_instruction(self) -> str:
        """The line heading retrieved passages (the task's, so passages keep the format)."""
        task = self.ctx.task
        return task.context_instruction() if task is not None else CONTEXT_INSTRUCTION

    def targets(self, pairs: Sequence[QAPair]) -> list[QAPair]:
        """`pairs` with their first answer written as the task wants it (a JSON object, a
        styled sentence): what shots show and training learns. Unchanged for factual Q/A."""
        task = self.ctx.task
        if task is None or task.kind == "qa":
            return list(pairs)
        out = []
        for p in pairs:
            first = task.target(p)
            out.append(
                dataclasses.replace(p, answers=(first, *(a for a in p.answers if a != first)))
            )
        return out

    def generate_answers(
        self,
        questions: Sequence[str],
        system: str,
        passages: Sequence[Sequence[Context]] | None = None,
        shots: Sequence[Sequence[QAPair]] | None = None,
    ) -> list[Answer]:
        """Wrap each question (with its passages or shots), generate in one batch, clean up."""
        n = len(questions)
        passages = passages or [()] * n
        shots = shots or [()] * n
        task = self.ctx.task
        convs = [
            answer_messages(q, system, passages=p, shots=s, instruction=self.context_instruction)
            for q, p, s in zip(questions, passages, shots, strict=True)
        ]
        room = max(self.ctx.models.max_new_tokens, task.min_new_tokens if task else 0)
        gens = self.ctx.generator.generate(convs, max_new_tokens=room, adapter=self.adapter)
        answers = []
        for q, p, s, g in zip(questions, passages, shots, gens, strict=True):
            contexts = list(p) + [
                Context(text=f"Q: {x.question}\nA: {x.answers[0]}", source=x.source, kind="shot")
                for x in s
            ]
            answers.append(
                Answer(
                    question=q,
                    text=(
                        task.extract(g.text, clean_answer(g.text))
                        if task is not None
                        else clean_answer(g.text)
                    ),
                    contexts=contexts,
                    cost=Cost(prompt_tokens=g.prompt_tokens, output_tokens=g.output_tokens),
                    raw=g.text,
                    truncated=g.truncated,
                )
            )
        return answers
