"""CPU time beside wall time, and whether a measurement ran on a contended machine.

Wall-clock latency alone lies on a shared machine: the same RAG run measured 1.28 s/question
alone and 15 s/question beside another job. `cpu_clock` records, around a step, this process's
CPU time (`time.process_time`, every thread) and the CPU time every *other* process used
meanwhile (system-wide busy time from /proc/stat via psutil, minus ours).

The rule (`contended`), decided here: a measurement is contended when
- other processes kept, on average, more than half a core busy beyond the cores this process
  leaves free (cores - its threads), or
- this process ran less than 2/3 of the wall time (wall > 1.5 x CPU time): it was waiting for
  a core, since generation and training never wait on I/O.
The first catches a busy neighbour even when our threads still got some time; the second is the
fallback where system-wide figures are missing. Wall > 1.5 x CPU/threads alone would flag
every uncontended run whose work is partly single-threaded (Python between matmuls).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

SLOW_FACTOR = 1.5  # wall above this many times our CPU time: we were waiting for a core
NEIGHBOUR_CORES = 0.5  # other processes' average busy cores beyond the ones we leave free


def torch_threads() -> int:
    """Threads torch computes with (1 when torch is not imported yet: nothing ran on it)."""
    import sys

    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else 1


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _system_busy_s() -> float | None:
    try:
        import psutil

        t = psutil.cpu_times()
    except Exception:  # no /proc/stat (some sandboxes): the fallback rule applies
        return None
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


@dataclass
class CpuSample:
    """What a step used: wall and CPU seconds, torch threads, cores, and other processes' CPU
    seconds over the same window (None where the system figures are unavailable)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    threads: int = 1
    cores: int = 1
    others_cpu_s: float | None = None
    # The work ran in another process (a model server, here or elsewhere): our CPU time and
    # the other processes' busy time say nothing about contention, so it is never flagged.
    remote: bool = False

    @property
    def others_cores(self) -> float | None:
        """Cores other processes kept busy on average during the step."""
        if self.others_cpu_s is None or self.wall_s <= 0:
            return None
        return max(0.0, self.others_cpu_s) / self.wall_s

    @property
    def contended(self) -> bool:
        if self.remote:
            return False
        return contended(self.wall_s, self.cpu_s, self.threads, self.cores, self.others_cpu_s)

    def to_dict(self) -> dict:
        return {**asdict(self), "others_cores": self.others_cores, "contended": self.contended}


def contended(
    wall_s: float,
    cpu_s: float,
    threads: int = 1,
    n_cores: int = 1,
    others_cpu_s: float | None = None,
) -> bool:
    """The contention rule of this module's docstring, on one measurement."""
    if wall_s <= 0:
        return False
    if others_cpu_s is not None:
        spare = max(0, n_cores - min(threads, n_cores))
        if others_cpu_s / wall_s > spare + NEIGHBOUR_CORES:
            return True
    return wall_s > SLOW_FACTOR * cpu_s


class cpu_clock:
    """Context manager filling a CpuSample around a step (nests freely; cheap to read)."""

    def __init__(self, remote: bool = False) -> None:
        self.result = CpuSample(remote=remote)

    def __enter__(self) -> CpuSample:
        self._sys = _system_busy_s()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self.result

    def __exit__(self, *exc) -> None:
        r = self.result
        r.wall_s = time.perf_counter() - self._wall
        r.cpu_s = time.process_time() - self._cpu
        r.threads, r.cores = torch_threads(), cores()
        end = _system_busy_s()
        if self._sys is not None and end is not None:
            r.others_cpu_s = max(0.0, (end - self._sys) - r.cpu_s)


def tokens_per_s(tokens: float, seconds: float) -> float | None:
    """Throughput, None for no time."""
    return tokens / seconds if seconds > 0 else None
