"""What the results store holds: its SQLite schema and the typed rows it returns."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from core.types import Answer, known_fields
from eval.records import CostSummary, PreparedRecord, ResultExtras
from eval.stats.intervals import Interval, intervals_to_dict

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL,             -- queued | running | done | failed | cancelled | interrupted
    created_at REAL NOT NULL,
    finished_at REAL,
    config_json TEXT NOT NULL,
    fingerprint TEXT,
    meta_json TEXT NOT NULL DEFAULT '{}',   -- corpus stats, split, models, versions, git hash
    error TEXT,
    owner TEXT NOT NULL DEFAULT '',   -- core.access token; '' = the operator (CLI, older runs)
    process_json TEXT                 -- core.procs.ProcessRef of the process running it
);
CREATE TABLE IF NOT EXISTS strategy_results (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    strategy TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,             -- done | failed
    config_json TEXT NOT NULL,
    prepare_json TEXT NOT NULL DEFAULT '{}',
    cost_json TEXT NOT NULL DEFAULT '{}',
    metrics_json TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    extras_json TEXT NOT NULL DEFAULT '{}',  -- retention, learning-curve variant, slices
    PRIMARY KEY (run_id, strategy)
);
CREATE TABLE IF NOT EXISTS answers (
    run_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    qid TEXT NOT NULL,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    golds_json TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    PRIMARY KEY (run_id, strategy, qid),
    FOREIGN KEY (run_id, strategy) REFERENCES strategy_results(run_id, strategy) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    qid TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, strategy, qid, metric),
    FOREIGN KEY (run_id, strategy) REFERENCES strategy_results(run_id, strategy) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS details (  -- what a metric says beyond its score (judge: rationale)
    run_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    qid TEXT NOT NULL,
    metric TEXT NOT NULL,
    detail_json TEXT NOT NULL,
    PRIMARY KEY (run_id, strategy, qid, metric),
    FOREIGN KEY (run_id, strategy) REFERENCES strategy_results(run_id, strategy) ON DELETE CASCADE
);
"""


@dataclass
class StrategyResult:
    """One strategy's stored outcome within a run: its settings (the strategy config's JSON
    form), what preparing it left, what it cost, its metric intervals and its extras."""

    strategy: str
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    prepare: PreparedRecord = field(default_factory=PreparedRecord)
    cost: CostSummary = field(default_factory=CostSummary)
    metrics: dict[str, Interval] = field(default_factory=dict)  # metric -> mean and its CI
    error: str | None = None
    extras: ResultExtras = field(default_factory=ResultExtras)

    def interval(self, metric: str) -> Interval:
        """The metric's interval; an empty one (all None, n=0) when the run did not score it."""
        return self.metrics.get(metric) or Interval()

    def mean(self, metric: str) -> float | None:
        """The metric's mean, None when not scored or not applicable (e.g. closed-book recall)."""
        return self.interval(metric).mean

    def to_dict(self) -> dict[str, Any]:
        """The result as the JSON export and `--json` write it (the stored shapes)."""
        return {
            "strategy": self.strategy,
            "status": self.status,
            "config": self.config,
            "prepare": self.prepare.to_dict(),
            "cost": self.cost.to_dict(),
            "metrics": intervals_to_dict(self.metrics),
            "error": self.error,
            "extras": self.extras.to_dict(),
        }


@dataclass
class StoredAnswer:
    strategy: str
    qid: str
    question: str
    golds: list[str]
    answer: Answer
    scores: dict[str, float | None] = field(default_factory=dict)
    # Per metric, what it said beyond the score as JSON-safe data (the judge's verdict record).
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class CorpusSummary:
    """What a run read of its corpus (eval.run.inputs.corpus_summary), as stored."""

    documents: int = 0
    chunks: int = 0
    tokens: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # files refused, with reasons
    names: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CorpusSummary:
        return cls(**known_fields(cls, d))


@dataclass
class SplitSummary:
    """How a run split its Q/A pairs, as stored: counts, the test question ids, the file read."""

    pairs: int = 0
    train: int = 0
    test: int = 0
    test_split: int = 0  # the whole test split (a run may ask only its first n_test)
    test_ids: list[str] = field(default_factory=list)
    qa_file: str = ""
    # test qid -> group id (core.qa.group_ids: one source passage or near-duplicates); empty
    # for runs stored before groups were, where every question is its own group
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SplitSummary:
        return cls(**known_fields(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunMeta:
    """What a run recorded beside its config, read once from the stored JSON. Sections owned by
    other records (oracle, stability, inputs, estimate, tracking...) stay in their stored form
    here and are read by their own `from_dict`, which knows their older shapes."""

    device: str = ""
    git: str = ""
    batch_size: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)  # the loaded models' details
    corpus: CorpusSummary = field(default_factory=CorpusSummary)
    split: SplitSummary = field(default_factory=SplitSummary)
    executor: dict[str, Any] | None = None  # eval.run.executor.Executor.describe()
    inputs: dict[str, Any] | None = None  # eval.run.stamp.InputStamp
    gold_passages: dict[str, dict[str, Any]] = field(default_factory=dict)
    oracle: dict[str, Any] | None = None  # eval.run.oracle.OracleReading
    retention_base: dict[str, Any] | None = None  # eval.records.Retention
    stability: dict[str, Any] | None = None  # eval.stats.stability.StabilityRecord
    estimate: dict[str, Any] | None = None  # service.estimate.records.Estimate
    tracking: dict[str, Any] | None = None  # service.tracking.TrackingResult
    task: dict[str, Any] | None = None  # core.tasks.TaskSpec of a format or style run
    paraphrases: dict[str, str] = field(default_factory=dict)  # test qid -> paraphrase group
    input_warnings: list[str] = field(default_factory=list)  # said before the run started
    other: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RunMeta:
        d = d or {}
        known = known_fields(cls, d, skip=("corpus", "split", "other"))
        other = {k: v for k, v in d.items() if k not in known and k not in ("corpus", "split")}
        return cls(
            **known,
            corpus=CorpusSummary.from_dict(d.get("corpus")),
            split=SplitSummary.from_dict(d.get("split")),
            other=other,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored shape (sections as stored, unknown keys back at the top level)."""
        out = {k: v for k, v in asdict(self).items() if k != "other"}
        return {**self.other, **out}


@dataclass
class Run:
    """A stored run: its config, metadata and per-strategy results (answers load on demand)."""

    id: str
    name: str
    status: str
    created_at: float
    finished_at: float | None
    config: dict[str, Any]
    fingerprint: str | None
    meta: RunMeta
    error: str | None
    results: list[StrategyResult]
    owner: str = ""
    process: dict[str, Any] | None = None  # ProcessRef.to_dict() of whoever last ran it


@dataclass(frozen=True)
class RunSummary:
    """One run as the store lists it (`RunStore.list_runs`): enough to label, filter and pick
    it without loading its config or results (`RunStore.get_run` does that)."""

    id: str
    name: str
    status: str
    created_at: float
    finished_at: float | None
    fingerprint: str | None
    owner: str
    process: dict[str, Any] | None  # ProcessRef.to_dict() of whoever last ran it
    strategies: list[str]  # every stored result, in the order they were stored
    finished: list[str]  # those that are done

    @property
    def has_finished(self) -> bool:
        """Whether at least one strategy finished: a run with something to show."""
        return bool(self.finished)

    @property
    def took_s(self) -> float | None:
        """Seconds from creation to its end; None while it has not ended."""
        return None if self.finished_at is None else self.finished_at - self.created_at


class RunNotFound(KeyError):
    def __str__(self) -> str:
        return f"no run {self.args[0]!r} in the store"


def create_schema(c: sqlite3.Connection) -> None:
    """Create the tables, and add in place the columns stores written before them lack."""
    c.executescript(SCHEMA)
    cols = {r[1] for r in c.execute("PRAGMA table_info(strategy_results)")}
    if "extras_json" not in cols:
        c.execute("ALTER TABLE strategy_results ADD COLUMN extras_json TEXT NOT NULL DEFAULT '{}'")
    run_cols = {r[1] for r in c.execute("PRAGMA table_info(runs)")}
    if "owner" not in run_cols:
        c.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    if "process_json" not in run_cols:
        c.execute("ALTER TABLE runs ADD COLUMN process_json TEXT")
