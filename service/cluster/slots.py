"""Runs handed to a cluster by the app's job worker: the operator's executor applied to queued
runs, and the slots that let several runs (of different owners) proceed at once.

With `<app home>/cluster.yaml` saying `executor: {kind: ray, ...}` and `parallel_runs: N`, the
worker drives up to N runs from threads: each thread only coordinates (relays progress, writes
the store), while the arms run as Ray work, so the cluster's capacity, not this process, bounds
how many proceed. Without the file nothing changes: local arms, one job at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval.config import RunConfig
from service.cluster.settings import ClusterSettings, load_cluster_settings


def operator_settings(store_path: str | Path) -> ClusterSettings:
    """The cluster settings beside the app's run store (`<home>/runs.sqlite` ->
    `<home>/cluster.yaml`); the defaults when there is none."""
    return load_cluster_settings(Path(store_path).resolve().parent)


def with_operator_executor(config: RunConfig, store_path: str | Path) -> RunConfig:
    """`config` with the operator's executor: a queued run's config came from a browser, whose
    executor section (an address to connect to) is never trusted."""
    return config.replace(executor=operator_settings(store_path).executor)


class RunSlots:
    """At most `size` jobs running at once, each in its own thread."""

    def __init__(self, size: int):
        self.size = size
        self.threads: list[threading.Thread] = []

    def running(self) -> int:
        """Jobs still running (finished threads are forgotten)."""
        self.threads = [t for t in self.threads if t.is_alive()]
        return len(self.threads)

    def free(self) -> bool:
        """Whether another job may start now."""
        return self.running() < self.size

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in a new thread (daemon: a stopped worker leaves its runs to be
        marked interrupted by their stale heartbeats, as a killed worker's are)."""
        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        """Wait for every running job."""
        for thread in self.threads:
            thread.join()
        self.threads = []
