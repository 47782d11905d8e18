"""The configuration of one comparison run (what the CLI's --config YAML holds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from core.tasks import TASK_KINDS
from core.untrusted import caps
from eval.attribution import VerdictConfig
from eval.judge import JudgeConfig
from eval.metrics import METRICS
from eval.stats.stability import StabilityConfig
from eval.tuning.config import TuningConfig
from strategies import default_strategies, get_strategy_class, make_config

EXECUTOR_KINDS = ("local", "ray")
# The metric that decides a right answer (cost per right answer) when a format or style run
# leaves the verdict's at its default: content F1 is 0 for an answer that breaks the format,
# so "valid and content F1 >= threshold"; style: passes every rule.
TASK_RIGHT_METRIC = {"format": "content_f1", "style": "style_pass"}
TRACKERS = ("mlflow",)
DEFAULT_EXPERIMENT = "adaptlab"


@dataclass
class ExecutorConfig(ConfigBase):
    """Whether arms run in this process or as Ray work, and on which Ray cluster."""

    kind: str = option(
        "local",
        "'local': every arm in this process, one after the other. 'ray': each arm as Ray work "
        "(requirements-cluster.txt) on the cluster at `address`.",
        choices=EXECUTOR_KINDS,
    )
    address: str = option(
        "",
        "Ray cluster address (host:6379, or ray://host:10001 through Ray Client). Empty: "
        "RAY_ADDRESS, else a Ray started on this machine for the run. An operator setting: "
        "refused in settings typed in a browser.",
    )
    cpus_per_arm: int = option(
        0,
        "CPUs each Ray worker measuring an arm (or running a tuning trial) is given; torch and "
        "OpenMP use that many threads. 0 = what a local run uses: this machine's cores, capped "
        "at the largest node's CPUs.",
    )
    memory_gb: float = option(
        0.0,
        "Memory each arm worker reserves on its node, in GB (0 = none reserved). Set it to a "
        "stored run's peak RSS of the model: the estimate does not measure memory yet.",
    )
    num_gpus: float = option(
        1.0,
        "GPUs a trained arm or trial requests when the cluster has any (untrained arms ask "
        "for `untrained_gpus`); 0 keeps every arm on CPUs.",
    )
    untrained_gpus: float = option(
        0.0,
        "GPUs an arm that trains nothing (RAG, few-shot, prompts) requests when the cluster "
        "has any; fractions let several share one card.",
    )
    worker_niceness: int = option(
        0,
        "Nice value of the Ray worker processes. Ray's default, 15, lets Ray's own services "
        "take the CPU from torch's threads (measured: bench/bench_ray_stages.py); 0 runs them "
        "as a local run.",
    )
    storage: str = option(
        "",
        "Where Ray workers write adapters, indexes and trial outputs and the driver reads them: "
        "a folder every node mounts (NFS), or s3://bucket/prefix or gs://bucket/prefix through "
        "pyarrow.fs. Empty: a folder of this machine, allowed on a one-node cluster only. An "
        "operator setting, like `address`.",
    )

    def validate(self) -> None:
        check(float(self.memory_gb) >= 0, "executor.memory_gb must be >= 0")
        check(self.kind in EXECUTOR_KINDS, f"executor.kind must be one of {EXECUTOR_KINDS}")
        check(0 <= int(self.cpus_per_arm) <= 512, "executor.cpus_per_arm must be in 0..512")
        check(float(self.num_gpus) >= 0, "executor.num_gpus must be >= 0")
        check(
            float(self.num_gpus) <= 1 or float(self.num_gpus).is_integer(),
            "executor.num_gpus above 1 must be a whole number",
        )
        check(0 <= float(self.untrained_gpus) <= 1, "executor.untrained_gpus must be in 0..1")
        check(0 <= int(self.worker_niceness) <= 19, "executor.worker_niceness must be in 0..19")
        scheme = self.storage.partition("://")[0] if "://" in self.storage else ""
        check(
            scheme in ("", "s3", "gs", "file"),
            f"executor.storage: unsupported scheme {scheme!r} (a folder, s3:// or gs://)",
        )


@dataclass
class TrackingConfig(ConfigBase):
    """Whether and where a finished run is logged to an experiment tracker."""

    tracker: str = option(
        "",
        "Log each stored run to an experiment tracker: '' (off) or 'mlflow'.",
        choices=("", *TRACKERS),
    )
    uri: str = option(
        "",
        "Tracking URI (e.g. http://127.0.0.1:5000). Empty: MLFLOW_TRACKING_URI, else a local "
        "mlruns/ folder beside the run store. Keep credentials in MLflow's own environment "
        "variables, not here: the config is stored with the run.",
    )
    experiment: str = option(DEFAULT_EXPERIMENT, "MLflow experiment the runs are logged under.")

    def validate(self) -> None:
        check(bool(self.experiment), "tracking.experiment must be named")


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
    task: str = option(
        "qa",
        "What a right answer is: 'qa' (the facts, scored against the gold answers), 'format' "
        "(also a given structure: a JSON Schema file, or a regular expression) or 'style' "
        "(also a house style: rules in a YAML file). Format and style answers get at least 96 "
        "new tokens.",
        choices=TASK_KINDS,
        label="Task",
    )
    schema: str = option("", "format task: the JSON Schema file every answer must validate.")
    pattern: str = option(
        "", "format task without a schema: a regular expression every answer must match."
    )
    style: str = option(
        "",
        "style task: a YAML file of rules (max_words, required, forbidden, max_grade, closing, "
        "citation; optional rubric and example).",
    )

    @staticmethod
    def with_task_defaults(data: dict[str, Any]) -> dict[str, Any]:
        """RunConfig settings `data` with the verdict judging right answers by the task's
        metric (TASK_RIGHT_METRIC) when the task is format or style and it is left at f1."""
        verdict = dict(data.get("verdict") or {})
        right = TASK_RIGHT_METRIC.get(data.get("task") or "qa")
        if right and verdict.get("right_metric", "f1") == "f1":
            verdict["right_metric"] = right
            return {**data, "verdict": verdict}
        return data

    def validate(self) -> None:

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
        check(
            self.task != "format" or bool(self.schema or self.pattern),
            "task 'format' needs a JSON Schema file (schema) or a regular expression (pattern)",
        )
        check(self.task != "style" or bool(self.style), "task 'style' needs a style file")
