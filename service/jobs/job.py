"""A job as the queue returns it: one typed record per row of the `jobs` table."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from core.types import known_fields


@dataclass
class Job:
    """One queued, running or finished job: what it is (kind, owner, run), where it stands
    (status, stage, strategy, done/total, loss, ETA, the last log lines) and who runs it."""

    id: str
    kind: str  # run | resume | qagen | estimate | a registered page kind (service.jobs.kinds)
    status: str  # one of service.jobs.queue.STATUSES
    owner: str = ""
    run_id: str | None = None  # the run it makes or continues (None for the other kinds)
    error: str | None = None
    stage: str = "queued"
    strategy: str | None = None
    done: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    log: list[str] = field(default_factory=list)
    cancel_requested: bool = False
    worker_pid: int | None = None
    heartbeat: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    # The kind's own JSON payload (a run config, a qagen request...): read by that kind's body
    # in eval/jobs when the worker claims the job; None on the rows pages read.
    config: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row, with_payload: bool = False) -> Job:
        """The job of one `jobs` row; columns the record has no field for are left out."""
        job = cls(**known_fields(cls, row, skip=("log", "config", "cancel_requested")))
        job.cancel_requested = bool(row["cancel_requested"])
        job.log = json.loads(row["log_json"] or "[]")
        if with_payload:
            job.config = json.loads(row["config_json"])
        return job
