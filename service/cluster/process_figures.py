"""What the kernel says about a process while it measures an arm: its nice value, its threads and
how often a CPU was taken from them (involuntary context switches), read from /proc.

The evidence behind the Ray worker's niceness setting (issue 33): a worker niced by Ray (15 by
default) beside Ray's own services at nice 0 loses its CPU to them at every wake-up, and each
loss stalls torch's other OpenMP threads at the next barrier; the switch count shows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ProcessFigures:
    """One reading of a process: nice value, thread count, involuntary context switches summed
    over all its threads (None where /proc is missing)."""

    nice: int | None
    threads: int | None
    involuntary_switches: int | None

    @classmethod
    def read(cls, pid: int | None = None) -> ProcessFigures:
        """The figures of process `pid` (default: this one) now."""
        pid = os.getpid() if pid is None else pid
        try:
            nice = os.getpriority(os.PRIO_PROCESS, pid)
        except OSError:
            nice = None
        # /proc/<pid>/status counts the main thread only: torch's OpenMP threads are tasks of
        # their own, and they are the ones that lose the CPU.
        tasks = Path(f"/proc/{pid}/task")
        switches, threads = 0, 0
        try:
            for task in tasks.iterdir():
                try:
                    text = (task / "status").read_text()
                except OSError:  # the thread ended meanwhile
                    continue
                threads += 1
                for line in text.splitlines():
                    if line.startswith("nonvoluntary_ctxt_switches:"):
                        switches += int(line.split()[1])
        except OSError:
            return cls(nice, None, None)
        return cls(nice, threads, switches)

    def since(self, before: ProcessFigures) -> int | None:
        """Involuntary switches between `before` and this reading (threads that ended
        meanwhile are not counted: a lower bound)."""
        if self.involuntary_switches is None or before.involuntary_switches is None:
            return None
        return max(0, self.involuntary_switches - before.involuntary_switches)
