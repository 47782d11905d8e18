"""What a running job reports and reads: progress fields (throttled), its cancel flag, and the
heartbeat that tells the queue its worker is alive."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from typing import Any

from eval.events import ProgressEvent
from service.jobs.queue import JobQueue

HEARTBEAT_S = 5.0  # how often the worker refreshes the heartbeat of the job it runs
WRITE_EVERY_S = 0.25  # progress snapshots at most this often (stage changes always)
CANCEL_POLL_S = 0.2  # the cancel flag is read from the DB at most this often
# Stages whose events count done/total items (the general-knowledge questions too, so the
# bar moves in every stage).
COUNTED = ("answer", "generate", "retention", "retention_base", "probe", "judge", "oracle")


class JobProgress:
    """Turns harness events into job fields; writes them throttled, stage changes at once."""

    def __init__(self, queue: JobQueue, job_id: str, log: list[str]):
        self.queue, self.job_id = queue, job_id
        self.fields: dict[str, Any] = {}
        self.log = list(log)
        self.key: tuple[Any, Any] = (None, None)
        self.last_write = 0.0
        # Per strategy its stage, and per (strategy, stage) when its counting began: the
        # events of arms running at once interleave, and each arm's stage changes are logged
        # once, not at every switch between them.
        self.stages: dict[Any, str] = {}
        self.t0: dict[tuple[Any, Any], float] = {}

    def __call__(self, ev: ProgressEvent) -> None:
        stage, strategy = ev.stage, ev.strategy
        changed = self.stages.get(strategy, object()) != stage
        if changed:
            note = f" ({ev.error})" if ev.error is not None else ""
            note += f" ({ev.status})" if ev.status else ""
            self.log.append(f"{time.strftime('%H:%M:%S')} {strategy or 'run'}: {stage}{note}")
            self.stages[strategy] = stage
            self.t0[(strategy, stage)] = time.monotonic()
        if (strategy, stage) != self.key:  # the fields now describe another arm or stage
            self.key = (strategy, stage)
            self.fields.update(done=0, total=0, loss=None, eta_s=None)
        answer_t0 = self.t0.get((strategy, stage)) if stage in COUNTED else None
        self.fields.update(stage=stage, strategy=strategy)
        if stage == "train":
            self.fields.update(
                done=ev.step or 0,
                total=ev.steps or 0,
                loss=ev.loss,
                eta_s=ev.eta_s,
            )
        elif stage in COUNTED:
            done, total = ev.done or 0, ev.total or 0
            self.fields.update(done=done, total=total)
            if done and answer_t0 is not None:  # no ETA comes with these events
                rate = (time.monotonic() - answer_t0) / done
                self.fields["eta_s"] = rate * (total - done)
        self.flush(force=changed)

    def flush(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < WRITE_EVERY_S:
            return
        self.last_write = now
        self.queue.update(self.job_id, heartbeat=time.time(), log=self.log, **self.fields)


class CancelFlag:
    """The job's cancel flag for the harness (`is_set()`), read from the DB at most every
    CANCEL_POLL_S."""

    def __init__(self, queue: JobQueue, job_id: str):
        self.queue, self.job_id = queue, job_id
        self.last, self.value = 0.0, False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self.value and now - self.last >= CANCEL_POLL_S:
            self.last = now
            self.value = self.queue.cancel_requested(self.job_id)
        return self.value


def heartbeat(queue: JobQueue, job_id: str, stop: threading.Event) -> None:
    """Refresh the job's heartbeat every HEARTBEAT_S until `stop` is set."""
    # A thread, because one training step or model load can outlast STALE_S without an event.
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(sqlite3.Error):
            queue.update(job_id, heartbeat=time.time())
