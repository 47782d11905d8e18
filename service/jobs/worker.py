"""The worker process: one per store file, taking queued jobs one at a time.

The app (or any script) only submits jobs and polls their progress; a separate worker process
(`python -m eval worker --store PATH`, started by `ensure_worker`) runs them with the body
registered for their kind (`service.jobs.kinds`). So a page reload, a closed tab or a second
browser neither kills nor repeats a run, and two runs never fight for the same cores. The worker
holds an exclusive lock on `<store>.worker.lock` for its life, writes its pid and a heartbeat
while a job runs, and exits by itself after `idle_exit_s` without work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from eval.events import ProgressEvent
from service.cluster.slots import RunSlots, operator_settings
from service.jobs import page_kinds  # registers the playground and merge kinds
from service.jobs.job import Job
from service.jobs.kinds import job_body
from service.jobs.progress import JobProgress, heartbeat
from service.jobs.queue import JobQueue
from service.jobs.watchdog import Watchdog
from service.limits import WorkerLimits, limit_gpu_memory, load_worker_limits

ROOT = Path(__file__).resolve().parents[2]  # where the packages are, put on the worker's path
PROBE_PATIENCE_S = 0.5  # longer than a worker_pid probe holds the lock, far shorter than a worker


def _finish_run(queue: JobQueue, run_id: str | None, status: str, error: str) -> None:
    """Mark the job's run (qagen jobs have none) finished unless the harness already did."""
    if run_id is None:
        return
    with contextlib.suppress(Exception):
        if queue.store.get_run(run_id).status in ("queued", "running"):
            queue.store.finish_run(run_id, status, error)


def _execute(queue: JobQueue, job: Job, limits: WorkerLimits | None = None) -> None:
    """Run one claimed job to its end; every outcome lands in the job row (and the run row).
    A job over its wall-clock or token budget is stopped by the watchdog and marked failed."""
    job_id = job.id
    progress = JobProgress(queue, job_id, job.log)
    progress(ProgressEvent("starting"))
    stop = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(queue, job_id, stop), daemon=True)
    beat.start()
    dog = Watchdog(queue, job, limits or WorkerLimits(), hard_stop=_hard_stop)
    dog.start()
    status, error = "failed", None
    if job.kind != page_kinds.PLAYGROUND:  # its adapters and indexes would sit idle
        page_kinds.release_playground()
    # The operator's caps as they are now, for this job: memory (RLIMIT_DATA) and each GPU.
    _limit_memory(limits or WorkerLimits())
    limit_gpu_memory(limits or WorkerLimits())
    try:
        status = job_body(job.kind)(queue, job, progress)
        if dog.reason:  # it stopped at the cancel the watchdog asked for: History says why
            status, error = "failed", dog.reason
            if job.run_id:
                queue.store.finish_run(job.run_id, "failed", error)
    except Exception as e:  # the harness has marked the run failed when it got that far
        error = dog.reason or f"{type(e).__name__}: {e}"
        _finish_run(queue, job.run_id, "failed", error)
    except BaseException:  # SIGTERM or Ctrl-C: the worker stops, the run can be resumed
        status, error = "interrupted", "interrupted: the worker was stopped"
        _finish_run(queue, job.run_id, "interrupted", error)
        raise
    finally:
        dog.stop()
        stop.set()
        progress(ProgressEvent(status))  # logged unless the harness already said so
        queue.update(job_id, status=status, error=error, finished_at=time.time())


def _hard_stop(queue: JobQueue, job: Job, reason: str) -> None:
    """A job over its budget that ignored the cancel: mark it (and its run) failed with the
    reason, then end this worker; the next page poll starts a fresh one for the next job."""
    with contextlib.suppress(Exception):
        _finish_run(queue, job.run_id, "failed", reason)
        queue.update(job.id, status="failed", stage="failed", error=reason, finished_at=time.time())
    os._exit(3)  # a thread cannot interrupt a stuck C call; only the process can end


def _limits(home: Path) -> WorkerLimits:
    """The operator's limits, read again for every job; a broken file leaves the defaults in
    force (said in the worker's log) rather than stopping the worker."""
    try:
        return load_worker_limits(home)
    except ValueError as e:
        print(f"{e}; the default worker limits apply", file=sys.stderr, flush=True)
        return WorkerLimits()


def _limit_memory(limits: WorkerLimits) -> None:
    """Cap the worker's memory, so one job cannot take the server's: an allocation past it
    fails in that job instead of the kernel killing something else. RLIMIT_DATA, not RLIMIT_AS:
    it counts the heap and writable mappings, not address space merely reserved, which V8 (the
    HTML report's chart renderer, vl_convert, run by tracking in the worker) reserves by the
    terabyte and fails without."""
    import resource

    cap = limits.memory_cap_bytes()
    if cap is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))


def _lock_path(store_path: str | Path) -> Path:
    """The file whose exclusive lock marks the one worker of `store_path`."""
    return Path(str(Path(store_path).resolve()) + ".worker.lock")


def _try_lock(path: Path, patience_s: float = PROBE_PATIENCE_S) -> int | None:
    """An fd holding the exclusive lock on `path`, or None when another process holds it.

    `worker_pid` probes by taking the lock for an instant: a worker (or `ensure_worker`)
    trying at that instant waits `patience_s` instead of taking the probe for a worker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    end = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= end:
                os.close(fd)
                return None
            time.sleep(0.01)


def worker_pid(store_path: str | Path) -> int | None:
    """The pid of the worker serving `store_path`, or None when no worker holds the lock."""
    path = _lock_path(store_path)
    if not path.exists():
        return None
    fd = _try_lock(path, patience_s=0.0)
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
        queue.store.mark_orphans()  # runs whose CLI process died
        queue.prune()
        idle_since = time.monotonic()
        # Several runs at once only when the operator's cluster.yaml hands arms to a cluster.
        slots = RunSlots(operator_settings(store_path).parallel_runs)
        while True:
            job = queue.claim() if slots.free() else None
            if job is None:
                if slots.running():
                    idle_since = time.monotonic()
                elif once or time.monotonic() - idle_since > idle_exit_s:
                    return
                time.sleep(poll_s)
                continue
            print(f"{time.strftime('%H:%M:%S')} job {job.id} ({job.run_id})", flush=True)
            limits = _limits(queue.path.parent)
            if slots.size > 1:
                slots.start(_execute, JobQueue(store_path), job, limits)
            else:
                _execute(queue, job, limits)
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
                cwd=Path.cwd(),  # job configs hold paths relative to where the app was started
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


def serve_queued(queue: JobQueue, jobs: list[Job]) -> bool:
    """What a page calls while it polls `jobs`: when one of them is queued and no worker serves
    the queue (it died, or exited idle), start one, so a queued job never waits forever.
    True if a worker was started."""
    if not any(j.status == "queued" for j in jobs):
        return False
    return ensure_worker(queue.path)


def main_worker(store_path: str, idle_exit_s: float = 600.0, once: bool = False) -> int:
    """CLI entry: the worker loop, with SIGTERM stopping it cleanly (its job interrupted)."""

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    # Only in a process of its own (`python -m eval worker`, what ensure_worker starts, or
    # `adaptlab worker`): a test or script calling this function keeps its memory unlimited.
    argv0 = Path(sys.argv[0]) if sys.argv else Path()
    if argv0.parts[-2:] == ("eval", "__main__.py") or argv0.name == "adaptlab":
        _limit_memory(_limits(Path(store_path).resolve().parent))
    try:
        work(store_path, idle_exit_s=idle_exit_s, once=once)
    except KeyboardInterrupt:
        return 130
    return 0
