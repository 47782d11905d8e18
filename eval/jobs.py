"""Background runs for the app: a queue and one worker thread per process.

The page's script thread only submits jobs and reads their progress, so a page reload or a
second browser neither kills nor repeats a run. Jobs run one at a time (they would only fight
for the same cores). Results go to the run store as each strategy finishes.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from eval.config import RunConfig
from eval.store import RunStore


@dataclass
class Job:
    id: str
    config: RunConfig
    status: str = "queued"  # queued | running | done | failed | cancelled
    run_id: str | None = None
    error: str | None = None
    stage: str = "queued"
    strategy: str | None = None
    done: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    log: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)

    def snapshot(self) -> dict[str, Any]:
        """A copy of the progress fields, safe to read from another thread."""
        keys = ("id", "status", "run_id", "error", "stage", "strategy", "done", "total")
        out = {k: getattr(self, k) for k in keys}
        out.update(loss=self.loss, eta_s=self.eta_s, log=list(self.log[-20:]))
        return out


class JobManager:
    """Queue of comparison runs executed by one daemon worker thread."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(self, config: RunConfig) -> str:
        """Queue a run; returns the job id. The run id appears once the run starts."""
        job = Job(uuid.uuid4().hex[:10], config)
        with self._lock:
            self.jobs[job.id] = job
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, daemon=True, name="runs")
                self._worker.start()
        self._queue.put(job)
        return job.id

    def get(self, job_id: str) -> dict[str, Any] | None:
        job = self.jobs.get(job_id)
        return job.snapshot() if job else None

    def cancel(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.cancel.set()

    def wait(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the job ends (for tests and scripts)."""
        end = time.time() + timeout
        while time.time() < end:
            snap = self.get(job_id)
            if snap and snap["status"] in ("done", "failed", "cancelled"):
                return snap
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} still running after {timeout} s")

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job.cancel.is_set():
                job.status = job.stage = "cancelled"
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        from eval.harness import run_comparison

        job.status = "running"
        store = RunStore(job.config.store_path)
        job.run_id = store.create_run(job.config.to_dict(), job.config.name)
        try:
            run_comparison(
                job.config,
                store=store,
                progress=lambda ev: _apply(job, ev),
                cancel=job.cancel,
                run_id=job.run_id,
            )
            job.status = "cancelled" if job.cancel.is_set() else "done"
        except Exception as e:  # shown on the page; the store already marks the run failed
            job.status = "failed"
            job.error = f"{type(e).__name__}: {e}"


def _apply(job: Job, ev: dict[str, Any]) -> None:
    stage, strategy = ev.get("stage", ""), ev.get("strategy")
    if (strategy, stage) != (job.strategy, job.stage):
        note = f" ({ev['error']})" if "error" in ev else ""
        job.log.append(f"{strategy or 'run'}: {stage}{note}")
    job.stage, job.strategy = stage, strategy
    if stage == "train":
        job.done, job.total = ev.get("step", 0), ev.get("steps", 0)
        job.loss, job.eta_s = ev.get("loss"), ev.get("eta_s")
    elif stage == "answer":
        job.done, job.total = ev.get("done", 0), ev.get("total", 0)


_MANAGER: JobManager | None = None
_MANAGER_LOCK = threading.Lock()


def default_manager() -> JobManager:
    """The process-wide manager: every browser session of one app server shares its queue."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = JobManager()
        return _MANAGER
