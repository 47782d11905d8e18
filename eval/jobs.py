"""Background runs: a durable job queue in the run store's SQLite file and one worker process.

The app (or any script) only submits jobs and polls their progress; a separate worker process
(`python -m eval worker --store PATH`, started by `ensure_worker`) takes queued jobs one at a
time and runs them with the harness. So a page reload, a closed tab or a second browser neither
kills nor repeats a run, and two runs never fight for the same cores.

- Progress (stage, strategy, done/total, loss, ETA, a short log) lives in the `jobs` table of
  the run store file, written at most a few times a second and always on stage changes.
- Cancel is a flag in that table that the worker polls between batches.
- The worker writes its pid and a heartbeat while a job runs. A running job whose worker is gone
  or silent for more than `STALE_S` is marked interrupted (and its run too) by whoever next
  lists jobs or starts a worker; `JobQueue.resume(run_id)` then continues the run, keeping the
  strategies already done.
- One worker per store file: it holds an exclusive lock on `<store>.worker.lock` for its life,
  and exits by itself after `idle_exit_s` without work.

Jobs of kind "qagen" generate question/answer pairs with the model (`submit_qagen`); the pairs
and their stats land in a JSON file next to the store, read with `qagen_result(job_id)`.

Typical use (the app):
    queue = JobQueue(store_path)
    job_id = queue.submit(config, owner=session_id)
    ensure_worker(store_path)
    queue.get(job_id)  # poll
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from core.config import ModelConfig
from core.files import write_text_atomic
from core.owners import Access
from core.qagen import QAGenConfig
from eval.config import RunConfig
from eval.store import RunStore

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
STALE_S = 30.0  # a running job's heartbeat older than this means its worker is gone
HEARTBEAT_S = 5.0  # how often the worker refreshes the heartbeat of the job it runs
WRITE_EVERY_S = 0.25  # progress snapshots at most this often (stage changes always)
CANCEL_POLL_S = 0.2  # the cancel flag is read from the DB at most this often
LOG_LINES = 50  # the stored log keeps this many last lines
KEEP_JOBS_S = 30 * 86400  # finished jobs (not their runs) are forgotten after this
RUN_KINDS = ("run", "resume")  # job kinds that make or continue a comparison run
COUNTED = ("answer", "generate")  # stages whose events count done/total items
ROOT = Path(__file__).resolve().parents[1]  # the project folder, importable by the worker

JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',        -- browser-session id; each person lists their own
    kind TEXT NOT NULL,                    -- run | resume | qagen
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

_PUBLIC = (
    "id",
    "owner",
    "kind",
    "status",
    "run_id",
    "error",
    "stage",
    "strategy",
    "done",
    "total",
    "loss",
    "eta_s",
    "cancel_requested",
    "worker_pid",
    "heartbeat",
    "created_at",
    "started_at",
    "finished_at",
)


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

    @contextlib.contextmanager
    def _conn(self):
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    # --- submitting --------------------------------------------------------------------------
    def submit(self, config: RunConfig, owner: str = "") -> str:
        """Queue a comparison run; returns the job id. The run row is created at once (status
        "queued"), so `get(job_id)["run_id"]` is known before the worker starts it.

        Relative paths in the config (corpus, qa, workdir) are made absolute so a worker started
        from another folder reads the same files; the run is stored in this queue's file.
        Raises ConfigError for an invalid config.
        """
        config = _absolute_paths(config, self.path)
        with self._conn() as c:  # one transaction: never a run without its job, nor the reverse
            run_id = self.store.create_run(
                config.to_dict(), config.name, owner=owner, status="queued", conn=c
            )
            return self._insert("run", run_id, config.to_dict(), owner, conn=c)

    def resume(self, run_id: str, owner: str = "", access: Access = Access()) -> str:
        """Queue a job that continues stored run `run_id`: strategies stored as done are kept,
        the others run (again). Returns the job id. Raises RunNotFound for an unknown run (or
        one `access` does not see) and ValueError when the run is queued, running, or done
        with every strategy."""
        self.mark_interrupted()
        run = self.store.get_run(run_id, access)
        if run.status in ("queued", "running"):
            raise ValueError(f"run {run_id} is already {run.status}; wait for it or cancel it")
        wanted = run.config.get("strategies", [])
        kept = {r.strategy for r in run.results if r.status == "done"}
        if run.status == "done" and all(s in kept for s in wanted):
            raise ValueError(f"run {run_id} finished every strategy: nothing to resume")
        config = RunConfig.from_dict({**run.config, "store_path": str(self.path)})
        with self._conn() as c:
            self.store.set_status(run_id, "queued", conn=c)
            return self._insert("resume", run_id, config.to_dict(), owner, conn=c)

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
        job = self.get(job_id)
        if job is None or job["kind"] != "qagen":
            raise JobNotFound(job_id)
        if job["status"] != "done":
            raise ValueError(f"question generation {job_id} is {job['status']}, not done")
        return json.loads(self._result_path(job_id).read_text(encoding="utf-8"))

    def _result_path(self, job_id: str) -> Path:
        return self.path.parent / "qagen" / f"{job_id}.json"

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
        if conn is not None:
            conn.execute(sql, row)
            return job_id
        with self._conn() as c:
            c.execute(sql, row)
        return job_id

    # --- reading -----------------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any] | None:
        """One job as a dict (None if unknown): id, owner, kind, status, run_id, error, stage,
        strategy, done, total, loss, eta_s, log (list of lines), cancel_requested, worker_pid,
        heartbeat, created_at, started_at, finished_at. Stale running jobs are marked
        interrupted first."""
        self.mark_interrupted()
        with self._conn() as c:
            row = c.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _to_dict(row) if row else None

    def list_jobs(
        self, owner: str | None = None, limit: int = 50, kinds: tuple[str, ...] | None = None
    ) -> list[dict[str, Any]]:
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
        return [_to_dict(r) for r in rows]

    def wait(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.1) -> dict[str, Any]:
        """Block until the job has finished (any of FINISHED) and return it; for tests and
        scripts. Raises JobNotFound or TimeoutError."""
        end = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job["status"] in FINISHED:
                return job
            if time.monotonic() > end:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
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
            alive, silent = _pid_alive(r["worker_pid"]), now - (r["heartbeat"] or 0)
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
        """Forget jobs that finished more than `older_than_s` seconds ago, and the pairs file
        of a qagen job among them; the runs they made stay in the store (History shows them).
        Returns how many jobs were removed. The worker prunes when it starts."""
        cutoff = time.time() - older_than_s
        marks = ",".join("?" * len(FINISHED))
        with self._conn() as c:
            rows = c.execute(
                f"SELECT id, kind FROM jobs WHERE status IN ({marks}) AND finished_at < ?",
                [*FINISHED, cutoff],
            ).fetchall()
            c.executemany("DELETE FROM jobs WHERE id=?", [(r["id"],) for r in rows])
        for r in rows:
            if r["kind"] == "qagen":
                self._result_path(r["id"]).unlink(missing_ok=True)
        return len(rows)

    # --- used by the worker ------------------------------------------------------------------
    def _claim(self) -> dict[str, Any] | None:
        """Take the oldest queued job for this process (atomically), or None."""
        now, pid = time.time(), os.getpid()
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute(
                "SELECT id FROM jobs WHERE status='queued' ORDER BY created_at LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE jobs SET status='running', stage='starting', worker_pid=?, heartbeat=?, "
                "started_at=? WHERE id=?",
                (pid, now, now, row["id"]),
            )
            full = c.execute("SELECT * FROM jobs WHERE id=?", (row["id"],)).fetchone()
        job = _to_dict(full)
        job["config"] = json.loads(full["config_json"])
        return job

    def _update(self, job_id: str, **fields: Any) -> None:
        if "log" in fields:
            fields["log_json"] = json.dumps(fields.pop("log")[-LOG_LINES:])
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._conn() as c:
            c.execute(f"UPDATE jobs SET {cols} WHERE id=?", [*fields.values(), job_id])

    def _cancel_requested(self, job_id: str) -> bool:
        with self._conn() as c:
            row = c.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row and row[0])


def _to_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in _PUBLIC}
    out["cancel_requested"] = bool(out["cancel_requested"])
    out["log"] = json.loads(row["log_json"] or "[]")
    return out


def _absolute_paths(config: RunConfig, store_path: Path) -> RunConfig:
    changes: dict[str, Any] = {"store_path": str(store_path)}
    for key in ("corpus", "qa", "workdir"):
        value = getattr(config, key)
        if value:
            changes[key] = str(Path(value).resolve())
    return config.replace(**changes)


def _pid_alive(pid: int | None) -> bool:
    """Whether process `pid` exists and is not a zombie (a killed child not yet reaped)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


# --- progress --------------------------------------------------------------------------------
class _Progress:
    """Turns harness events into job fields; writes them throttled, stage changes at once."""

    def __init__(self, queue: JobQueue, job_id: str, log: list[str]):
        self.queue, self.job_id = queue, job_id
        self.fields: dict[str, Any] = {}
        self.log = list(log)
        self.key: tuple[Any, Any] = (None, None)
        self.last_write = 0.0
        self.answer_t0: float | None = None

    def __call__(self, ev: dict[str, Any]) -> None:
        stage, strategy = ev.get("stage", ""), ev.get("strategy")
        changed = (strategy, stage) != self.key
        if changed:
            note = f" ({ev['error']})" if "error" in ev else ""
            note += f" ({ev['status']})" if ev.get("status") else ""
            self.log.append(f"{time.strftime('%H:%M:%S')} {strategy or 'run'}: {stage}{note}")
            self.key = (strategy, stage)
            self.fields.update(done=0, total=0, loss=None, eta_s=None)
            self.answer_t0 = time.monotonic() if stage in COUNTED else None
        self.fields.update(stage=stage, strategy=strategy)
        if stage == "train":
            self.fields.update(
                done=ev.get("step", 0),
                total=ev.get("steps", 0),
                loss=ev.get("loss"),
                eta_s=ev.get("eta_s"),
            )
        elif stage in COUNTED:
            done, total = ev.get("done", 0), ev.get("total", 0)
            self.fields.update(done=done, total=total)
            if done and self.answer_t0 is not None:  # no ETA comes with these events
                rate = (time.monotonic() - self.answer_t0) / done
                self.fields["eta_s"] = rate * (total - done)
        self.flush(force=changed)

    def flush(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < WRITE_EVERY_S:
            return
        self.last_write = now
        self.queue._update(self.job_id, heartbeat=time.time(), log=self.log, **self.fields)


class _CancelFlag:
    """The job's cancel flag for the harness (`is_set()`), read from the DB at most every
    CANCEL_POLL_S."""

    def __init__(self, queue: JobQueue, job_id: str):
        self.queue, self.job_id = queue, job_id
        self.last, self.value = 0.0, False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self.value and now - self.last >= CANCEL_POLL_S:
            self.last = now
            self.value = self.queue._cancel_requested(self.job_id)
        return self.value


def _heartbeat(queue: JobQueue, job_id: str, stop: threading.Event) -> None:
    # A thread, because one training step or model load can outlast STALE_S without an event.
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(sqlite3.Error):
            queue._update(job_id, heartbeat=time.time())


class _Cancelled(Exception):
    pass


def _compare(queue: JobQueue, job: dict[str, Any], progress: _Progress) -> str:
    from eval.harness import run_comparison

    run_id = job["run_id"]
    run_comparison(
        RunConfig.from_dict(job["config"]),
        store=queue.store,
        progress=progress,
        cancel=_CancelFlag(queue, job["id"]),
        run_id=run_id,
        resume=job["kind"] == "resume",
    )
    return "cancelled" if queue.store.get_run(run_id).status == "cancelled" else "done"


def _generate_pairs(queue: JobQueue, job: dict[str, Any], progress: _Progress) -> str:
    from core.qagen import generate_qa, pairs_to_records
    from eval.harness import read_corpus

    payload, cancel = job["config"], _CancelFlag(queue, job["id"])
    models = ModelConfig.from_dict(payload["models"])
    progress({"stage": "read corpus"})
    corpus = read_corpus(payload["corpus"], RunConfig(models=models))
    progress({"stage": "generate"})

    def step(done: int, total: int) -> None:
        progress({"stage": "generate", "done": done, "total": total})
        if cancel.is_set():
            raise _Cancelled

    try:
        result = generate_qa(corpus, QAGenConfig.from_dict(payload["qagen"]), models, step)
    except _Cancelled:
        return "cancelled"
    result_json = json.dumps({"records": pairs_to_records(result.pairs), "stats": result.stats})
    write_text_atomic(queue._result_path(job["id"]), result_json)  # the page polls for it
    return "done"


def _finish_run(queue: JobQueue, run_id: str | None, status: str, error: str) -> None:
    """Mark the job's run (qagen jobs have none) finished unless the harness already did."""
    if run_id is None:
        return
    with contextlib.suppress(Exception):
        if queue.store.get_run(run_id).status in ("queued", "running"):
            queue.store.finish_run(run_id, status, error)


def _execute(queue: JobQueue, job: dict[str, Any]) -> None:
    """Run one claimed job to its end; every outcome lands in the job row (and the run row)."""
    job_id = job["id"]
    progress = _Progress(queue, job_id, job["log"])
    progress({"stage": "starting"})
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(queue, job_id, stop), daemon=True)
    beat.start()
    body = _generate_pairs if job["kind"] == "qagen" else _compare
    status, error = "failed", None
    try:
        status = body(queue, job, progress)
    except Exception as e:  # the harness has marked the run failed when it got that far
        error = f"{type(e).__name__}: {e}"
        _finish_run(queue, job["run_id"], "failed", error)
    except BaseException:  # SIGTERM or Ctrl-C: the worker stops, the run can be resumed
        status, error = "interrupted", "interrupted: the worker was stopped"
        _finish_run(queue, job["run_id"], "interrupted", error)
        raise
    finally:
        stop.set()
        progress({"stage": status})  # logged unless the harness already said so
        queue._update(job_id, status=status, error=error, finished_at=time.time())


# --- the worker --------------------------------------------------------------------------------
def _lock_path(store_path: str | Path) -> Path:
    return Path(str(Path(store_path).resolve()) + ".worker.lock")


def _try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock on `path`, or None when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def worker_pid(store_path: str | Path) -> int | None:
    """The pid of the worker serving `store_path`, or None when no worker holds the lock."""
    path = _lock_path(store_path)
    if not path.exists():
        return None
    fd = _try_lock(path)
    if fd is not None:  # nobody holds it
        os.close(fd)
        return None
    with contextlib.suppress(ValueError, OSError):
        return int(path.read_text().strip() or 0) or None
    return None


def work(
    store_path: str | Path, idle_exit_s: float = 600.0, once: bool = False, poll_s: float = 0.5
) -> None:
    """The worker loop (what `python -m eval worker` runs): take queued jobs one at a time and
    run them, until no job has come for `idle_exit_s` seconds (or, with `once`, until the
    queue is empty). Returns at once if another worker already serves this store file."""
    inherited = os.environ.pop("ADAPTLAB_WORKER_LOCK_FD", None)
    if inherited:  # ensure_worker took the lock for us, so no second worker can slip in
        fd = int(inherited)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the same open file: granted at once
        os.set_inheritable(fd, False)  # not passed on to processes the run starts
    else:
        fd = _try_lock(_lock_path(store_path))
        if fd is None:
            print(f"another worker serves {store_path}; exiting", file=sys.stderr)
            return
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        queue = JobQueue(store_path)
        queue.mark_interrupted()  # jobs a killed predecessor left as running
        queue.prune()
        idle_since = time.monotonic()
        while True:
            job = queue._claim()
            if job is None:
                if once or time.monotonic() - idle_since > idle_exit_s:
                    return
                time.sleep(poll_s)
                continue
            print(f"{time.strftime('%H:%M:%S')} job {job['id']} ({job['run_id']})", flush=True)
            _execute(queue, job)
            idle_since = time.monotonic()
    finally:
        os.close(fd)


def ensure_worker(store_path: str | Path, idle_exit_s: float = 600.0) -> bool:
    """Start a detached worker process for `store_path` unless one is running; True if it
    started one. Marks stale running jobs interrupted first. The worker's output goes to
    `<store>.worker.log`; it exits by itself after `idle_exit_s` seconds without jobs."""
    store_path = Path(store_path).resolve()
    JobQueue(store_path).mark_interrupted()
    fd = _try_lock(_lock_path(store_path))
    if fd is None:
        return False
    try:
        # The child inherits this locked open file: the lock passes to it without a gap in
        # which a second caller could start another worker.
        env = {
            **os.environ,
            "ADAPTLAB_WORKER_LOCK_FD": str(fd),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        command = [sys.executable, "-m", "eval", "worker", "--store", str(store_path)]
        command += ["--idle-exit", str(idle_exit_s)]
        with open(str(store_path) + ".worker.log", "ab") as log:
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
                start_new_session=True,
            )
    finally:
        os.close(fd)
    return True


def main_worker(store_path: str, idle_exit_s: float = 600.0, once: bool = False) -> int:
    """CLI entry: the worker loop, with SIGTERM stopping it cleanly (its job interrupted)."""

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        work(store_path, idle_exit_s=idle_exit_s, once=once)
    except KeyboardInterrupt:
        return 130
    return 0


def render_jobs(jobs: list[dict[str, Any]]) -> str:
    """One line per job (for `python -m eval jobs`)."""
    lines = []
    for j in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(j["created_at"]))
        where = f"{j['strategy'] or 'run'}: {j['stage']}"
        if j["total"]:
            where += f" {j['done']}/{j['total']}"
        lines.append(
            f"{j['id']}  {when}  {j['status']:<11}  {j['run_id'] or j['kind']}  "
            f"{j['owner'] or '-'}  {where}" + (f"  {j['error']}" if j["error"] else "")
        )
    return "\n".join(lines) or "no jobs"
