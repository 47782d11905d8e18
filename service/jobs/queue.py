"""The job queue: jobs of one store file in its `jobs` table; submit, read, cancel, prune.

Progress (stage, strategy, done/total, loss, ETA, a short log) lives in the job row, written by
the worker (`service.jobs.worker`). Cancel is a flag in that row that the worker polls. A running
job whose worker is gone or silent for more than `STALE_S` is marked interrupted (and its run
too) by whoever next lists jobs or starts a worker; `JobQueue.resume(run_id)` then continues
the run, keeping the strategies already done.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from core.access import Access
from core.config import ModelConfig
from core.procs import pid_alive
from core.qagen import QAGenConfig
from eval.config import RunConfig
from eval.run.stamp import InputsChanged, InputStamp, file_sha256
from eval.store.db import connect
from eval.store.runs import RunStore
from service.estimate.records import Estimate
from service.jobs.job import Job
from service.limits import check_submit, load_worker_limits
from service.quota import owner_disk_use

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
STALE_S = 30.0  # a running job's heartbeat older than this means its worker is gone
LOG_LINES = 50  # the stored log keeps this many last lines
KEEP_JOBS_S = 30 * 86400  # finished jobs (not their runs) are forgotten after this
FAIR_WINDOW_S = 24 * 3600.0  # worker time an owner used in this window decides who goes next
RUN_KINDS = ("run", "resume")  # job kinds that make or continue a comparison run

JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',        -- browser-session id; each person lists their own
    kind TEXT NOT NULL,                    -- run | resume | qagen | estimate
    status TEXT NOT NULL,                  -- one of STATUSES
    run_id TEXT,
    config_json TEXT NOT NULL,
    error TEXT,
    stage TEXT NOT NULL DEFAULT 'queued',
    strategy TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    loss REAL,
    eta_s REAL,
    log_json TEXT NOT NULL DEFAULT '[]',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    heartbeat REAL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, created_at);
"""


class JobNotFound(KeyError):
    def __str__(self) -> str:
        return f"no job {self.args[0]!r} in the queue"


class JobQueue:
    """Jobs of one store file. Cheap to create; every call opens its own connection, so one
    object per page run (or one per browser) is fine and all of them see the same jobs."""

    def __init__(self, store_path: str | Path):
        self.path = Path(store_path).resolve()
        self.store = RunStore(self.path)  # creates the file and the runs tables
        with self._conn() as c:
            c.executescript(JOBS_SCHEMA)

    def _conn(self):
        return connect(self.path)

    # --- submitting --------------------------------------------------------------------------
    def submit(self, config: RunConfig, owner: str = "") -> str:
        """Queue a comparison run; returns the job id. The run row is created at once (status
        "queued"), so `get(job_id).run_id` is known before the worker starts it.

        Relative paths in the config (corpus, qa, workdir) are made absolute so a worker started
        from another folder reads the same files; the run is stored in this queue's file.
        Raises ConfigError for an invalid config.
        """
        config = _absolute_paths(config, self.path)
        if owner:  # a browser owner past their disk quota makes no more run files
            owner_disk_use(self.path.parent, owner, self.store).check(0, "a new run")
        with self._conn() as c:  # one transaction: never a run without its job, nor the reverse
            run_id = self.store.create_run(
                config.to_dict(), config.name, owner=owner, status="queued", conn=c
            )
            return self._insert("run", run_id, config.to_dict(), owner, conn=c)

    def resume(self, run_id: str, owner: str = "", access: Access = Access()) -> str:
        """Queue a job that continues stored run `run_id`: strategies stored as done are kept,
        the others run (again). Returns the job id. Raises RunNotFound for an unknown run (or
        one `access` does not see) and ValueError when the run is queued, running, or done
        with every strategy, and InputsChanged (a ValueError) when its Q/A file changed since
        (the worker checks the documents and test questions too, as it reads them)."""
        self.mark_interrupted()
        run = self.store.get_run(run_id, access)
        if run.status in ("queued", "running"):
            raise ValueError(f"run {run_id} is already {run.status}; wait for it or cancel it")
        wanted = RunConfig.from_stored(run.config).strategies
        kept = {r.strategy for r in run.results if r.status == "done"}
        if run.status == "done" and all(s in kept for s in wanted):
            raise ValueError(f"run {run_id} finished every strategy: nothing to resume")
        _check_qa_file(run)
        # A run stored before tuning existed ran untuned: its other arms must too.
        stored = {"tuning": {"budget": "off"}, **run.config, "store_path": str(self.path)}
        config = RunConfig.from_dict(stored)
        with self._conn() as c:
            self.store.set_status(run_id, "queued", conn=c)
            return self._insert("resume", run_id, config.to_dict(), owner, conn=c)

    def submit_task(self, kind: str, payload: dict[str, Any], owner: str = "") -> str:
        """Queue a job of a registered kind that makes no run (service.jobs.kinds), with its
        JSON `payload`; returns the job id."""
        return self._insert(kind, None, payload, owner)

    def submit_qagen(
        self, corpus: str | Path, config: QAGenConfig, models: ModelConfig, owner: str = ""
    ) -> str:
        """Queue question/answer generation from the corpus folder `corpus`; returns the job id.
        When the job is done, `qagen_result(job_id)` holds the pairs (nothing is saved into the
        corpus: the person reviews them first). No run is made."""
        payload = {
            "corpus": str(Path(corpus).resolve()),
            "qagen": config.to_dict(),
            "models": models.to_dict(),
        }
        return self._insert("qagen", None, payload, owner)

    def qagen_result(self, job_id: str) -> dict[str, Any]:
        """{"records": [...], "stats": {...}} of a finished qagen job (records as
        `core.qagen.pairs_to_records` makes them). Raises JobNotFound for an unknown job and
        ValueError when the job has not finished well."""
        return self._result(job_id, "qagen", "question generation")

    def submit_estimate(self, config: RunConfig, owner: str = "") -> str:
        """Queue a dry-run estimate of `config` (`service.estimate.probe`); returns the job id. The
        worker keeps its models loaded for the run that usually follows. Read the figures with
        `estimate_result(job_id)`; no run is made."""
        config = _absolute_paths(config, self.path)
        return self._insert("estimate", None, config.to_dict(), owner)

    def estimate_result(self, job_id: str) -> Estimate:
        """The `estimate_run` figures of a finished estimate job. Raises JobNotFound for an
        unknown job and ValueError when the job has not finished well."""
        return Estimate.from_dict(self._result(job_id, "estimate", "the estimate")) or Estimate()

    def _result(self, job_id: str, kind: str, what: str) -> dict[str, Any]:
        job = self.get(job_id)
        if job is None or job.kind != kind:
            raise JobNotFound(job_id)
        if job.status != "done":
            raise ValueError(f"{what} {job_id} is {job.status}, not done")
        return json.loads(self.result_path(job_id, kind).read_text(encoding="utf-8"))

    def result_path(self, job_id: str, kind: str = "qagen") -> Path:
        """Where a job of `kind` writes its result (qagen: the pairs; estimate: the figures;
        playground, merge: service.jobs.page_kinds)."""
        return self.path.parent / kind / f"{job_id}.json"

    def _insert(
        self,
        kind: str,
        run_id: str | None,
        payload: dict[str, Any],
        owner: str,
        conn: sqlite3.Connection | None = None,
    ) -> str:
        job_id = uuid.uuid4().hex[:12]
        row = (
            job_id,
            str(owner or ""),
            kind,
            "queued",
            run_id,
            json.dumps(payload),
            time.time(),
            json.dumps([f"{time.strftime('%H:%M:%S')} {kind}: queued"]),
        )
        sql = (
            "INSERT INTO jobs (id, owner, kind, status, run_id, config_json, created_at, "
            "log_json) VALUES (?,?,?,?,?,?,?,?)"
        )
        limits = load_worker_limits(self.path.parent)  # <home>/worker_limits.yaml
        if conn is not None:
            check_submit(conn, row[1], limits)  # raises JobRefused, rolling back the run row
            conn.execute(sql, row)
            return job_id
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")  # two submitters cannot both pass the caps
            check_submit(c, row[1], limits)
            c.execute(sql, row)
        return job_id

    # --- reading -----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """One job (None if unknown); stale running jobs are marked interrupted first."""
        self.mark_interrupted()
        with self._conn() as c:
            row = c.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list_jobs(
        self, owner: str | None = None, limit: int = 50, kinds: tuple[str, ...] | None = None
    ) -> list[Job]:
        """Newest first; only `owner`'s jobs when given, everyone's when None; only jobs of
        `kinds` when given (RUN_KINDS: the comparison runs). Marks stale running jobs
        interrupted first."""
        self.mark_interrupted()
        clauses, args = [], []
        if owner is not None:
            clauses.append("owner=?")
            args.append(owner)
        if kinds is not None:
            clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._conn() as c:
            rows = c.execute(
                f"SELECT * FROM jobs {where} ORDER BY created_at DESC LIMIT ?", [*args, limit]
            ).fetchall()
        return [Job.from_row(r) for r in rows]

    def wait(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.1) -> Job:
        """Block until the job has finished (any of FINISHED) and return it; for tests and
        scripts. Raises JobNotFound or TimeoutError."""
        end = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.status in FINISHED:
                return job
            if time.monotonic() > end:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(poll_s)

    # --- changing ----------------------------------------------------------------------------
    def cancel(self, job_id: str, access: Access = Access()) -> None:
        """Cancel a job: a queued one at once (its run marked cancelled), a running one at the
        worker's next check (between batches or training steps). Finished jobs are left as
        they are. Raises JobNotFound for an unknown id or one `access` does not see."""
        now = time.time()
        with self._conn() as c:
            row = c.execute(
                "SELECT run_id, status, owner FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
            if row is None or not access.sees(row["owner"]):
                raise JobNotFound(job_id)
            # Conditional update: the worker may claim the job between the read and this write.
            n = c.execute(
                "UPDATE jobs SET status='cancelled', stage='cancelled', finished_at=?, "
                "cancel_requested=1 WHERE id=? AND status='queued'",
                (now, job_id),
            ).rowcount
            if not n:
                c.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
        if n and row["run_id"]:
            self.store.finish_run(row["run_id"], "cancelled", "cancelled before it started")

    def inputs_in_use(self) -> set[Path]:
        """The corpus folders and Q/A files that queued or running jobs read (resolved), so
        that nobody deletes them from under a job."""
        self.mark_interrupted()
        with self._conn() as c:
            rows = c.execute(
                "SELECT config_json FROM jobs WHERE status IN ('queued', 'running')"
            ).fetchall()
        used = set()
        for r in rows:
            payload = json.loads(r["config_json"])
            used.update(Path(payload[k]).resolve() for k in ("corpus", "qa") if payload.get(k))
        return used

    def mark_interrupted(self) -> int:
        """Mark running jobs whose worker process is gone, or whose heartbeat is older than
        STALE_S, as interrupted, and their runs too. Returns how many were marked."""
        now = time.time()
        with self._conn() as c:
            rows = c.execute(
                "SELECT id, run_id, worker_pid, heartbeat FROM jobs WHERE status='running'"
            ).fetchall()
        marked = 0
        for r in rows:
            alive, silent = pid_alive(r["worker_pid"]), now - (r["heartbeat"] or 0)
            if alive and silent <= STALE_S:
                continue
            why = (
                f"no heartbeat from the worker for {silent:.0f} s"
                if alive
                else f"the worker process (pid {r['worker_pid']}) stopped"
            )
            with self._conn() as c:
                n = c.execute(
                    "UPDATE jobs SET status='interrupted', stage='interrupted', error=?, "
                    "finished_at=? WHERE id=? AND status='running'",
                    (f"interrupted: {why}; resume the run to continue", now, r["id"]),
                ).rowcount
            if n and r["run_id"]:
                self.store.finish_run(r["run_id"], "interrupted", f"interrupted: {why}")
            marked += n
        return marked

    def prune(self, older_than_s: float = KEEP_JOBS_S) -> int:
        """Forget jobs that finished more than `older_than_s` seconds ago, and the result file
        of a qagen, estimate, playground or merge job among them; the runs they made stay in
        the store (History shows them). Returns how many jobs were removed. The worker prunes
        when it starts."""
        cutoff = time.time() - older_than_s
        marks = ",".join("?" * len(FINISHED))
        with self._conn() as c:
            rows = c.execute(
                f"SELECT id, kind FROM jobs WHERE status IN ({marks}) AND finished_at < ?",
                [*FINISHED, cutoff],
            ).fetchall()
            c.executemany("DELETE FROM jobs WHERE id=?", [(r["id"],) for r in rows])
        for r in rows:  # qagen, estimate and page jobs leave a result file; runs have none
            self.result_path(r["id"], r["kind"]).unlink(missing_ok=True)
        return len(rows)

    # --- used by the worker ------------------------------------------------------------------
    def claim(self) -> Job | None:
        """Take the next queued job for this process (atomically), or None; its `config`
        holds the kind's payload. Fair share between owners: the owner who has had the least
        worker time in the last FAIR_WINDOW_S goes first (then the oldest job), so one owner's
        many or long jobs never keep another's waiting, and starting often buys nothing (the
        order is by time used, not by when an owner last started)."""
        now, pid = time.time(), os.getpid()
        since = now - FAIR_WINDOW_S
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute(
                "SELECT q.id FROM jobs q WHERE q.status='queued' ORDER BY "
                "(SELECT COALESCE(SUM(COALESCE(s.finished_at, :now) - MAX(s.started_at, :since)),"
                " 0) FROM jobs s WHERE s.owner=q.owner AND s.started_at IS NOT NULL "
                "AND COALESCE(s.finished_at, :now) > :since), q.created_at LIMIT 1",
                {"now": now, "since": since},
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE jobs SET status='running', stage='starting', worker_pid=?, heartbeat=?, "
                "started_at=? WHERE id=?",
                (pid, now, now, row["id"]),
            )
            full = c.execute("SELECT * FROM jobs WHERE id=?", (row["id"],)).fetchone()
        return Job.from_row(full, with_payload=True)

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of one job (`log` as a list of lines, the last LOG_LINES kept)."""
        if "log" in fields:
            fields["log_json"] = json.dumps(fields.pop("log")[-LOG_LINES:])
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._conn() as c:
            c.execute(f"UPDATE jobs SET {cols} WHERE id=?", [*fields.values(), job_id])

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to cancel job `job_id`."""
        with self._conn() as c:
            row = c.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row and row[0])


def _check_qa_file(run) -> None:
    """Refuse at once to resume a run whose Q/A file is gone or changed (cheap: one hash)."""
    then = InputStamp.from_dict(run.meta.inputs)
    qa_file = run.meta.split.qa_file
    if then is None or not qa_file:
        return
    try:
        now = file_sha256(qa_file)
    except OSError as e:
        raise InputsChanged(f"run {run.id} cannot be resumed: its Q/A file is gone ({e})") from e
    then.check_resume(InputStamp(then.corpus, now, then.test_ids), run.id)


def _absolute_paths(config: RunConfig, store_path: Path) -> RunConfig:
    changes: dict[str, Any] = {"store_path": str(store_path)}
    for key in ("corpus", "qa", "workdir"):
        value = getattr(config, key)
        if value:
            changes[key] = str(Path(value).resolve())
    return config.replace(**changes)
