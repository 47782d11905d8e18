"""The configuration of one comparison run (what the CLI's --config YAML holds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core import caps
from core.config import (
    ChunkingConfig,
    ConfigBase,
    ConfigError,
    ModelConfig,
    PriceTable,
    SplitConfig,
    check,
    option,
)
from core.qagen import QAGenConfig
from eval.attribution import VerdictConfig
from eval.cluster import ExecutorConfig
from eval.judge import JudgeConfig
from eval.stability import StabilityConfig
from eval.tracking import TrackingConfig
from eval.tuning.config import TuningConfig
from strategies import default_strategies


@dataclass
class RunConfig(ConfigBase):
    corpus: str = option("sample_data/corpus", "Folder (or file) of documents.")
    qa: str = option(
        "sample_data/qa.jsonl",
        "Question/answer file (JSONL, JSON or CSV). Empty: pairs are generated from the corpus "
        "(see qa_generation) and saved under workdir/generated_qa.",
    )
    strategies: list[str] = option(
        help="Strategies to compare, by name (default: those registered as default).",
        default_factory=default_strategies,
    )
    strategy_configs: dict[str, dict[str, Any]] = option(
        {}, "Per-strategy settings, by strategy name (see each strategy's config)."
    )
    models: ModelConfig = option(ModelConfig, "Generator and embedder shared by all strategies.")
    chunking: ChunkingConfig = option(ChunkingConfig, "How documents are chunked.")
    split: SplitConfig = option(SplitConfig, "How Q/A pairs are split into train and test.")
    n_test: int = option(
        0,
        "Use only the first N test questions (0 = the whole test split).",
        label="Test questions (0 = the whole test split)",
    )
    batch_size: int = option(8, "Questions generated together in one batch.")
    metrics: list[str] = option(
        [], "Metrics to score (empty = every default metric; 'judge' is scored when named)."
    )
    prices: PriceTable = option(PriceTable, "Hourly prices that turn measured time into money.")
    store_path: str = option(".adaptlab/runs.sqlite", "SQLite file holding every run.")
    workdir: str = option(".adaptlab/work", "Folder for indexes, adapters and uploads.")
    bootstrap_resamples: int = option(2000, "Resamples for the 95% confidence intervals.")
    name: str = option("", "A label for the run.", label="Label for the run (optional)")
    retention_questions: int = option(
        40,
        "General-knowledge questions (shipped set) each strategy also answers, to measure lost "
        "general ability against the base model (0 = skip).",
        label="General-knowledge questions",
    )
    qa_generation: QAGenConfig = option(
        QAGenConfig, "How Q/A pairs are generated when no Q/A file is given (qa empty)."
    )
    verdict: VerdictConfig = option(
        VerdictConfig,
        "How answers are judged right, the oracle-reading ceiling and the power figures.",
    )
    learning_curve: list[float] = option(
        [],
        "Training-data fractions below 1 (e.g. [0.25, 0.5]) at which strategies that train are "
        "prepared and scored again: quality against the amount of training data.",
        label="Learning curve: training fractions (empty = off)",
    )
    judge: JudgeConfig = option(
        JudgeConfig, "The model that grades answers for the 'judge' metric, and how it is asked."
    )
    tracking: TrackingConfig = option(
        TrackingConfig, "Experiment tracking: log each stored run to MLflow."
    )
    tuning: TuningConfig = option(
        TuningConfig,
        "Search each strategy's tunable settings on validation pairs (never the test split) "
        "before it is measured; the time is charged to its preparation.",
    )
    stability: StabilityConfig = option(
        StabilityConfig, "Re-draw the train/test split and run again: does the winner hold?"
    )
    executor: ExecutorConfig = option(
        ExecutorConfig, "Where arms run: in this process (local) or as Ray work (ray)."
    )

    def validate(self) -> None:
        from eval.metrics import METRICS
        from strategies import get_strategy_class, make_config

        check(bool(self.strategies), "choose at least one strategy")
        check(len(set(self.strategies)) == len(self.strategies), "a strategy is listed twice")
        for name in self.strategies:
            try:
                get_strategy_class(name)
            except KeyError as e:
                raise ConfigError(str(e)) from None
        for name, cfg in self.strategy_configs.items():
            try:
                make_config(name, cfg)
            except KeyError as e:
                raise ConfigError(str(e)) from None
        unknown = [m for m in self.metrics if m not in METRICS]
        check(not unknown, f"unknown metric(s): {', '.join(unknown)}; known: {', '.join(METRICS)}")
        check(int(self.n_test) >= 0, "n_test must be >= 0")
        check(1 <= int(self.batch_size) <= 256, "batch_size must be in 1..256")
        check(100 <= int(self.bootstrap_resamples) <= 100_000, "bootstrap_resamples: 100..100000")
        check(int(self.retention_questions) >= 0, "retention_questions must be >= 0")
        check(
            len(self.learning_curve) <= caps.MAX_LEARNING_CURVE_POINTS,
            f"learning_curve has {len(self.learning_curve)} points (at most "
            f"{caps.MAX_LEARNING_CURVE_POINTS}: each one trains every training strategy again)",
        )
        check(int(self.n_test) <= caps.MAX_TEST_QUESTIONS, "n_test is over the server's limit")
        check(
            int(self.retention_questions) <= caps.MAX_RETENTION_QUESTIONS,
            f"retention_questions must be <= {caps.MAX_RETENTION_QUESTIONS}",
        )
        check(
            all(0 < float(f) < 1 for f in self.learning_curve),
            "learning_curve fractions must be between 0 and 1 (1 is the main run)",
        )
