"""A Ray head on this machine, on loopback, for tests and benchmarks: started, waited for, and
stopped with everything it started (`ray start --block` under its own process group)."""

from __future__ import annotations

import contextlib
import json
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
    with _ray_start(
        ["--head", "--port", str(port), "--num-cpus", str(cpus), "--include-dashboard=false"]
    ) as node:
        _wait_for(port, node, timeout_s)
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def local_node(
    address: str,
    cpus: int = 1,
    resources: dict[str, float] | None = None,
    hidden: Path | None = None,
    timeout_s: float = 120.0,
) -> Iterator[None]:
    """A second Ray node on this machine joined to the head at `address`, with `cpus` CPUs,
    custom `resources` and a temp folder of its own; stopped on exit.

    `hidden`: a folder this node's processes must not reach. The node then runs in a mount
    namespace of its own (`unshare -m`, root only) with an empty tmpfs over that folder, as a
    node of a real cluster does not see the driver's disk: what its workers write there stays
    in that tmpfs, and what they read there is missing."""
    extra = ["--address", address, "--num-cpus", str(cpus)]
    if resources:
        extra += ["--resources", json.dumps(resources)]
    wrap: list[str] = []
    if hidden is not None:
        wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c"]
        wrap += [f'mount -t tmpfs none "{hidden}" && exec "$@"', "sh"]
    with _ray_start(extra, wrap) as node:
        _wait_for_nodes(address, node, timeout_s)
        yield


@contextlib.contextmanager
def _ray_start(extra: list[str], wrap: list[str] = ()) -> Iterator[subprocess.Popen]:
    """`ray start --block` with `extra` arguments on loopback, in its own process group and
    temp folder; stopped (SIGTERM, then SIGKILL) with everything it started on exit."""
    # Ray's socket paths must stay short: a temp folder of its own directly under /tmp.
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    command = [
        *wrap,
        str(Path(sys.executable).with_name("ray")),
        *("start", "--block", *extra, "--num-gpus", "0", "--node-ip-address", "127.0.0.1"),
        *("--disable-usage-stats", "--temp-dir", str(temp)),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    node = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield node
    finally:
        node.send_signal(signal.SIGTERM)  # --block: stopping `ray start` stops what it started
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, node: subprocess.Popen, timeout_s: float) -> None:
    """Return once the cluster at `address` counts two live nodes (the head and `node`);
    RuntimeError if `node` exits or is late. Asked of the GCS by a short-lived driver, so this
    process stays free to connect to the cluster later."""
    deadline = time.monotonic() + timeout_s
    probe = [
        sys.executable,
        "-c",
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, "
        "configure_logging=False); print(sum(n['Alive'] for n in ray.nodes()))",
        address,
    ]
    while True:
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the second local Ray node did not start")
        out = subprocess.run(probe, capture_output=True, text=True, timeout=timeout_s)
        count = int(out.stdout.strip() or 0) if out.returncode == 0 else 0
        if count >= 2:
            return
        time.sleep(1.0)


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
