"""The worker's watchdog: stops a job that runs past its wall-clock or token budget.

The budgets are the operator's (`service.limits.WorkerLimits`), enforced by the worker and
not by the job, so a job body cannot opt out: past a budget the watchdog sets the job's cancel
flag with the reason; a job still running `grace_s` later (stuck in one long call) is ended by
`hard_stop` (the worker marks it failed and exits).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable

from core.usage import tokens_used
from service.jobs.job import Job
from service.jobs.queue import JobQueue
from service.limits import WorkerLimits

POLL_S = 0.5


class Watchdog:
    """A thread that watches one running job's wall time and tokens; `reason` is set once the
    job went over a budget."""

    def __init__(
        self,
        queue: JobQueue,
        job: Job,
        limits: WorkerLimits,
        hard_stop: Callable[[JobQueue, Job, str], None],
    ):
        self.queue, self.job, self.limits, self.hard_stop = queue, job, limits, hard_stop
        self.reason: str | None = None
        self._t0 = time.monotonic()
        self._tokens0 = tokens_used()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        """Start watching (the job's clock and token count start at construction)."""
        self._thread.start()

    def stop(self) -> None:
        """The job ended: stop watching."""
        self._done.set()

    def over_budget(self) -> str | None:
        """Why the job is over a budget now, or None."""
        elapsed = time.monotonic() - self._t0
        if elapsed > float(self.limits.job_wall_s):
            return f"stopped: over its wall-clock budget of {self.limits.job_wall_s:g} s"
        spent = tokens_used() - self._tokens0
        if spent > int(self.limits.job_tokens):
            return f"stopped: over its token budget of {int(self.limits.job_tokens):,} tokens"
        return None

    def _watch(self) -> None:
        asked_at = None
        while not self._done.wait(POLL_S):
            if self.reason is None:
                self.reason = self.over_budget()
                if self.reason is None:
                    continue
                asked_at = time.monotonic()
                with contextlib.suppress(sqlite3.Error):
                    self.queue.update(self.job.id, cancel_requested=1, error=self.reason)
            elif time.monotonic() - asked_at > float(self.limits.grace_s):
                self.hard_stop(self.queue, self.job, self.reason)
                return
