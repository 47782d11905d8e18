"""The operator's cluster settings for the app (`<app home>/cluster.yaml`, never typed in a
browser), and where a stored run ran, in words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigBase, check, option
from eval.config import ExecutorConfig
from eval.records import ResultExtras
from eval.store.rows import RunMeta
from service.operator import load_operator

SETTINGS_FILE = "cluster.yaml"


@dataclass
class ClusterSettings(ConfigBase):
    """The operator's cluster settings for the app's job worker (`<app home>/cluster.yaml`)."""

    executor: ExecutorConfig = option(ExecutorConfig, "Where queued runs measure their arms.")
    parallel_runs: int = option(
        1,
        "Runs the job worker drives at once (each one's arms run on the cluster); 1 = one run "
        "at a time, as without a cluster.",
    )

    def validate(self) -> None:
        check(1 <= int(self.parallel_runs) <= 256, "parallel_runs must be in 1..256")


def settings_path(home: str | Path) -> Path:
    """Where the operator's cluster settings live under the app home."""
    return Path(home) / SETTINGS_FILE


def load_cluster_settings(home: str | Path) -> ClusterSettings:
    """The operator's cluster settings under `home`; the defaults (local, one run at a time)
    when there is no file. A malformed file is a ConfigError naming it and the line."""
    return load_operator(home, SETTINGS_FILE, ClusterSettings)


def where_ran(meta: RunMeta, extras: list[ResultExtras]) -> str:
    """Where a run ran, in words (History's "Where"): the executor, then each node and device
    its arms were measured on, from the run's `meta` and its results' `extras`."""
    executor = meta.executor or {"kind": "local"}
    places = sorted(
        {f"{e.placement.node or '?'} ({e.placement.device or '?'})" for e in extras if e.placement}
    )
    if places:
        return f"{executor.get('kind', 'ray')}: {', '.join(places)}"
    if executor.get("kind") == "ray":
        return f"ray ({executor.get('nodes', '?')} node(s))"
    node = executor.get("node")
    return f"local ({node})" if node else "local"
