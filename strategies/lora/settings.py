"""What a LoRA run is configured with: the adapter and its training data (`LoraStrategyConfig`)
and the training loop's own section (`TrainingSettings`), which the loop takes as it is.

Configs stored before the section existed held its fields flat (`epochs`, `learning_rate`...
beside `r`); `LoraStrategyConfig.from_dict` moves them into the section, so they still load.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any

from core.config import ConfigBase, ConfigError, check, option
from core.tuning_space import Categorical, FloatRange, IntRange
from core.untrusted.caps import MAX_TRAIN_STEPS
from strategies.base import PromptConfig
from strategies.lora.batches import default_memory_budget_gb
from strategies.lora.data import MODES

DATA = ("pairs", "pairs+corpus")


@dataclass
class TrainingSettings(ConfigBase):
    """The training loop's schedule, budget and seed."""

    epochs: float = option(
        3.0, "Passes over the training data (fractions allowed).", tune=IntRange(1, 5)
    )
    learning_rate: float = option(
        1e-3,
        "Peak AdamW learning rate (linear warm-up and decay).",
        tune=FloatRange(1e-5, 3e-3),
    )
    batch_size: int = option(
        8,
        "Examples per optimisation step (per process); a step runs in as many micro-batches "
        "as the memory budget needs, with the same result.",
    )
    max_steps: int = option(0, "Stop after this many steps (0 = no limit).")
    eval_every: int = option(50, "Validate every this many steps (and at each epoch's end).")
    patience: int = option(
        0, "Stop after this many validations without improvement (0 = never stop early)."
    )
    restore: str = option(
        "evidence",
        "Which validated weights the adapter keeps: 'evidence' (the last, unless an earlier "
        "validation's loss is lower with a paired 95% bound over the validation examples) or "
        "'lowest' (the lowest validation loss, however small its lead).",
        choices=("evidence", "lowest"),
    )
    gradient_checkpointing: bool = option(
        True,
        "Allow activation checkpointing (recompute instead of store) when one longest example "
        "would not fit the memory budget otherwise; False never uses it.",
    )
    memory_budget_gb: float = option(
        0.0,
        "Memory for training activations, in GB: sets the micro-batch size and whether "
        "checkpointing is needed. 0 = automatic: a quarter of the available memory up to 2 GB "
        "on the CPU, 80% of the free GPU memory on CUDA.",
    )
    seed: int = option(0, "Seed of adapter initialisation, data order and validation split.")

    def __post_init__(self) -> None:
        # Numbers arrive as text or the other kind from YAML, widgets and --set; converted once
        # here, so validation and the loop read them as declared.
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            kind, value = hints[f.name], getattr(self, f.name)
            if kind in (int, float) and not isinstance(value, bool):
                try:
                    setattr(self, f.name, kind(value))
                except (TypeError, ValueError):
                    raise ConfigError(f"{f.name} must be a number, got {value!r}") from None
        super().__post_init__()

    def validate(self) -> None:
        check(0 < self.epochs <= 100, "epochs must be in (0, 100]")
        check(0 < self.learning_rate < 1, "learning_rate must be in (0, 1)")
        check(1 <= self.batch_size <= 1024, "batch_size must be in 1..1024")
        check(0 <= self.max_steps <= MAX_TRAIN_STEPS, f"max_steps: 0..{MAX_TRAIN_STEPS}")
        check(self.eval_every >= 0, "eval_every must be >= 0")
        check(self.patience >= 0, "patience must be >= 0")
        check(0.0 <= self.memory_budget_gb <= 4096, "memory_budget_gb must be in [0, 4096]")

    def memory_budget(self, device: str) -> float:
        """The activation budget in GB on `device`: the one set, else the automatic one."""
        return self.memory_budget_gb or default_memory_budget_gb(device)


TRAINING_KEYS = frozenset(f.name for f in fields(TrainingSettings))


@dataclass
class LoraStrategyConfig(PromptConfig):
    r: int = option(8, "LoRA rank: size of the low-rank update.", tune=Categorical((4, 8, 16, 32)))
    alpha: int = option(16, "LoRA scaling numerator (update scaled by alpha / r).")
    dropout: float = option(0.05, "Dropout on the LoRA path during training.")
    target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "Module names to adapt (attention projections by default); ['all-linear'] for all.",
        tune=Categorical((["q_proj", "k_proj", "v_proj", "o_proj"], ["all-linear"])),
    )
    mode: str = option(
        "qa",
        "Training data: 'qa' (Q/A pairs, loss on the answer only), 'cpt' (raw corpus chunks, "
        "loss on every token), 'mix' (both), 'raft' (Q/A with retrieved passages in the "
        "prompt: the one holding the answer plus distractors, as RAG shows them).",
        choices=list(MODES),
    )
    raft_passages: int = option(
        3, "raft: passages per example (the oracle plus distractors); match rag.top_k."
    )
    raft_no_oracle: float = option(
        0.2, "raft: share of examples whose passages leave the answer's passage out."
    )
    data: str = option(
        "pairs",
        "Q/A training data: 'pairs' (the training split) or 'pairs+corpus' (plus pairs generated "
        "from every corpus sentence, corpus_phrasings per fact, never a test question).",
        choices=list(DATA),
    )
    corpus_phrasings: int = option(
        2, "pairs+corpus: questions per corpus fact (wh rewrite, cloze spans, templates)."
    )
    corpus_paraphrases: bool = option(
        False,
        "pairs+corpus: add a generator-written paraphrase per fact (kept only when the "
        "generator proves capable on the first batch).",
    )
    corpus_max_pairs: int = option(0, "pairs+corpus: most generated pairs (0 = every fact).")
    max_seq_tokens: int = option(
        256,
        "Examples longer than this are truncated (raft drops distractors first; raise it to "
        "about raft_passages x chunk tokens to keep them all).",
    )
    train_on_chunks: bool = option(
        False, "Deprecated: the same as mode 'mix' (kept so old configs still run)."
    )
    val_fraction: float = option(
        0.1, "Share of the training Q/A pairs held out to validate on (0 = no validation)."
    )
    training: TrainingSettings = option(
        TrainingSettings, "The training loop: schedule, memory budget and seed."
    )
    adapter_path: str = option(
        "", "A saved peft adapter folder to load instead of training (empty = train)."
    )

    @classmethod
    def setting_path(cls, key: str) -> str:
        return f"training.{key}" if key in TRAINING_KEYS else key

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LoraStrategyConfig:
        """As ConfigBase.from_dict, with the training fields of a flat (older) config moved
        into the `training` section; a key given both ways keeps the section's value."""
        data = dict(data or {})
        flat = {k: data.pop(k) for k in TRAINING_KEYS & set(data)}
        if flat:
            section = data.get("training")
            if isinstance(section, TrainingSettings):
                section = section.to_dict()
            data["training"] = {**flat, **(section or {})}
        return super().from_dict(data)

    def validate(self) -> None:
        super().validate()
        check(1 <= int(self.r) <= 256, "r must be in 1..256")
        check(int(self.alpha) >= 1, "alpha must be >= 1")
        check(0.0 <= float(self.dropout) < 1.0, "dropout must be in [0, 1)")
        check(
            isinstance(self.target_modules, list) and bool(self.target_modules),
            "target_modules must be a non-empty list",
        )
        check(1 <= int(self.corpus_phrasings) <= 10, "corpus_phrasings must be in 1..10")
        check(int(self.corpus_max_pairs) >= 0, "corpus_max_pairs must be >= 0")
        check(1 <= int(self.raft_passages) <= 20, "raft_passages must be in 1..20")
        check(0.0 <= float(self.raft_no_oracle) <= 1.0, "raft_no_oracle must be in [0, 1]")
        check(16 <= int(self.max_seq_tokens) <= 8192, "max_seq_tokens must be in 16..8192")
        check(0.0 <= float(self.val_fraction) < 1.0, "val_fraction must be in [0, 1)")
        check(isinstance(self.training, TrainingSettings), "training must be a section")

    @property
    def effective_mode(self) -> str:
        """`mode`, with the old `train_on_chunks=True` turning 'qa' into 'mix'."""
        return "mix" if self.train_on_chunks and self.mode == "qa" else self.mode
