"""What the results store holds: its SQLite schema and the typed rows it returns."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from core.types import Answer
from eval.records import CostSummary, PreparedRecord, ResultExtras

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
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    extras: ResultExtras = field(default_factory=ResultExtras)

    def to_dict(self) -> dict[str, Any]:
        """The result as the JSON export and `--json` write it (the stored shapes)."""
        return {
            "strategy": self.strategy,
            "status": self.status,
            "config": self.config,
            "prepare": self.prepare.to_dict(),
            "cost": self.cost.to_dict(),
            "metrics": self.metrics,
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
class Run:
    """A stored run: its config, metadata and per-strategy results (answers load on demand)."""

    id: str
    name: str
    status: str
    created_at: float
    finished_at: float | None
    config: dict[str, Any]
    fingerprint: str | None
    meta: dict[str, Any]
    error: str | None
    results: list[StrategyResult]
    owner: str = ""
    process: dict[str, Any] | None = None  # ProcessRef.to_dict() of whoever last ran it


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
