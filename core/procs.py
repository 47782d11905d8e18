"""Which process does a piece of work (pid, host, start time), and whether it is still alive.

A run or a job records the `ProcessRef` of the process working on it; whoever later lists or
opens it asks `state()`: a process that is gone (killed, crashed, machine rebooted) means the
work was interrupted. The start time guards against a recycled pid: after a reboot or a long
time, another program may hold the same number.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

ALIVE, GONE, UNKNOWN = "alive", "gone", "unknown"
State = Literal["alive", "gone", "unknown"]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux), or None."""
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return None


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None where unknown."""
    fields = _stat_fields(pid)
    with contextlib.suppress(TypeError, IndexError, ValueError):
        return int(fields[19])  # field 22 of stat; the first two (pid, comm) are cut off
    return None


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` exists on this machine and is not a zombie (killed, not reaped)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    fields = _stat_fields(pid)
    return not (fields and fields[0] == "Z")


@dataclass(frozen=True)
class ProcessRef:
    """A process: pid, host name and start time (clock ticks since boot; None if unknown)."""

    pid: int
    host: str
    started: int | None = None

    @classmethod
    def current(cls) -> ProcessRef:
        """This process."""
        return cls(os.getpid(), socket.gethostname(), start_ticks(os.getpid()))

    def state(self) -> State:
        """ "alive", "gone", or "unknown" for a process on another host (it cannot be checked
        from here, so it is not declared dead)."""
        if self.host != socket.gethostname():
            return UNKNOWN
        if not pid_alive(self.pid):
            return GONE
        if self.started is not None and start_ticks(self.pid) not in (None, self.started):
            return GONE  # the pid now belongs to another process
        return ALIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProcessRef | None:
        """The record back from `to_dict()`; None for None or an incomplete record."""
        if not data or not data.get("pid"):
            return None
        started = data.get("started")
        return cls(
            int(data["pid"]), str(data.get("host", "")), None if started is None else int(started)
        )

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"
