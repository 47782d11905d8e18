"""A Ray head on this machine, on loopback, for tests and benchmarks: started, waited for, and
stopped with everything it started (`ray start --block` under its own process group)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_head(cpus: int = 2, timeout_s: float = 120.0) -> Iterator[str]:
    """A Ray head with `cpus` CPUs, no GPU and no dashboard on 127.0.0.1; yields its address
    (host:port) once it accepts connections, and stops it on exit."""
    port = free_port()
    # Ray's socket paths must stay short: a temp folder of its own directly under /tmp.
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    command = [
        str(Path(sys.executable).with_name("ray")),
        *("start", "--head", "--block", "--port", str(port), "--num-cpus", str(cpus)),
        *("--num-gpus", "0", "--node-ip-address", "127.0.0.1", "--include-dashboard=false"),
        *("--disable-usage-stats", "--temp-dir", str(temp)),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(port, head, timeout_s)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # --block: stopping `ray start` stops what it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for(port: int, head: subprocess.Popen, timeout_s: float) -> None:
    """Return once the head's port accepts connections; RuntimeError if it exits or is late."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the local Ray head did not start") from None
            time.sleep(0.5)
