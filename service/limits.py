"""What one owner and one job may take of the shared worker: the operator's limits and checks.

The limits live in `<home>/worker_limits.yaml` (any subset of WorkerLimits' fields), beside the
store file (`<home>/runs.sqlite`); without the file the defaults hold. Caps are checked when a
job is submitted (`check_submit`); budgets are enforced by the worker while the job runs.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigBase, check, option
from service.accounts import is_account
from service.operator import load_operator

LIMITS_FILE = "worker_limits.yaml"


class JobRefused(ValueError):
    """A job over a submit cap; the message says which cap and how to get under it."""


@dataclass
class WorkerLimits(ConfigBase):
    """The operator's limits on the worker; every browser user shares one worker."""

    job_wall_s: float = option(6 * 3600.0, "Longest wall-clock time one job may run, seconds.")
    job_tokens: int = option(
        200_000_000, "Most model tokens (prompt, generated, trained on) one job may spend."
    )
    grace_s: float = option(
        60.0,
        "Seconds a job over its budget has to stop at its next cancel check before the worker "
        "marks it failed and exits (a new worker takes the next job).",
    )
    owner_jobs: int = option(3, "Most queued plus running jobs of one owner, of every kind.")
    queued_jobs: int = option(
        30, "Most queued jobs of all owners together (a fresh owner token is no way around)."
    )
    worker_memory_mb: int = option(
        -1,
        "Memory limit (RLIMIT_DATA: heap and writable mappings) of the worker process in MB, "
        "set again before each job (the worker runs one job at a time, so it is the job's "
        "cap); -1: the machine's physical memory, or none on a machine with an NVIDIA GPU (CUDA's "
        "driver maps memory of its own: gpu_memory_fraction caps the GPU); 0: none.",
    )
    gpu_memory_fraction: float = option(
        0.9,
        "Share of each GPU's memory one job may allocate through PyTorch "
        "(torch.cuda.set_per_process_memory_fraction), set before each job; 1: all of it.",
    )
    owner_disk_mb: float = option(
        2048.0, "Disk one owner's runs and adapter uploads may take, in MB."
    )

    def validate(self) -> None:
        check(float(self.job_wall_s) > 0, "job_wall_s must be > 0")
        check(int(self.job_tokens) > 0, "job_tokens must be > 0")
        check(float(self.grace_s) >= 0, "grace_s must be >= 0")
        check(int(self.owner_jobs) >= 1, "owner_jobs must be >= 1")
        check(int(self.queued_jobs) >= 1, "queued_jobs must be >= 1")
        check(int(self.worker_memory_mb) >= -1, "worker_memory_mb must be -1, 0 or a size")
        check(float(self.owner_disk_mb) > 0, "owner_disk_mb must be > 0")
        check(0 < float(self.gpu_memory_fraction) <= 1, "gpu_memory_fraction must be in (0, 1]")

    def memory_cap_bytes(self) -> int | None:
        """The RLIMIT_DATA to set on the worker, or None for no limit."""
        mb = int(self.worker_memory_mb)
        if mb == 0:
            return None
        if mb < 0:
            if Path("/dev/nvidiactl").exists():  # CUDA would fail to start under the cap
                return None
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return mb * 2**20


def load_worker_limits(home: str | Path) -> WorkerLimits:
    """The limits of `<home>/worker_limits.yaml`, or the defaults when there is no such file.
    Raises ConfigError naming the file and line for one that does not parse or holds bad
    values (service.operator)."""
    return load_operator(home, LIMITS_FILE, WorkerLimits)


def limit_gpu_memory(limits: WorkerLimits) -> float | None:
    """Cap what this process may allocate on each CUDA device at `gpu_memory_fraction` of it,
    so one job cannot take a GPU that the next job (or another service) needs; an allocation
    past it raises torch's OutOfMemoryError in that job. Returns the fraction set, or None
    where there is no NVIDIA GPU or no torch (nothing to cap)."""
    if not Path("/dev/nvidiactl").exists():  # no NVIDIA driver: do not pay for importing torch
        return None
    try:
        import torch  # heavy and optional: only on a machine with an NVIDIA driver
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    fraction = float(limits.gpu_memory_fraction)
    for device in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(fraction, device)
    return fraction


def check_submit(conn: sqlite3.Connection, owner: str, limits: WorkerLimits) -> None:
    """Refuse one more job when its owner already has `owner_jobs` queued or running, or the
    queue already holds `queued_jobs` (except an account's first: see below). Owner "" (the
    operator's scripts and CLI) has only the global cap. Raises JobRefused."""
    queued = conn.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0]
    mine = (
        conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE owner=? AND status IN ('queued', 'running')", (owner,)
        ).fetchone()[0]
        if owner
        else 0
    )
    # A signed-in account with nothing queued or running always gets one job in: a dozen
    # accounts filling the queue cannot lock a colleague out. Link tokens cost nothing to
    # make, so they get no such seat (else fresh tokens would grow the queue without end).
    seat = is_account(owner) and mine == 0
    if queued >= int(limits.queued_jobs) and not seat:
        raise JobRefused(
            f"the server's queue is full ({queued} jobs waiting); try again when some finished"
        )
    if not owner:
        return
    if mine >= int(limits.owner_jobs):
        raise JobRefused(
            f"you already have {mine} jobs queued or running (at most {limits.owner_jobs}); "
            "wait for one to finish or cancel one"
        )
