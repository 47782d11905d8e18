"""Where a run's arms execute: the `executor` section of a RunConfig, and the operator's
cluster settings for the app (`<app home>/cluster.yaml`), which the browser never types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from core.config import ConfigBase, ConfigError, check, option
from eval.records import ResultExtras

EXECUTOR_KINDS = ("local", "ray")
SETTINGS_FILE = "cluster.yaml"


@dataclass
class ExecutorConfig(ConfigBase):
    """Whether arms run in this process or as Ray work, and on which Ray cluster."""

    kind: str = option(
        "local",
        "'local': every arm in this process, one after the other. 'ray': each arm as Ray work "
        "(requirements-cluster.txt) on the cluster at `address`.",
        choices=EXECUTOR_KINDS,
    )
    address: str = option(
        "",
        "Ray cluster address (host:6379, or ray://host:10001 through Ray Client). Empty: "
        "RAY_ADDRESS, else a Ray started on this machine for the run. An operator setting: "
        "refused in settings typed in a browser.",
    )
    cpus_per_arm: int = option(
        1,
        "CPUs each Ray worker measuring an arm is given; torch and OpenMP use that many threads.",
    )
    memory_gb: float = option(
        0.0,
        "Memory each arm worker reserves on its node, in GB (0 = none reserved). Set it to a "
        "stored run's peak RSS of the model: the estimate does not measure memory yet.",
    )

    def validate(self) -> None:
        check(float(self.memory_gb) >= 0, "executor.memory_gb must be >= 0")
        check(self.kind in EXECUTOR_KINDS, f"executor.kind must be one of {EXECUTOR_KINDS}")
        check(1 <= int(self.cpus_per_arm) <= 512, "executor.cpus_per_arm must be in 1..512")


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
    when there is no file. A malformed file is a ConfigError naming it."""
    path = settings_path(home)
    if not path.is_file():
        return ClusterSettings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return ClusterSettings.from_dict(data)


def where_ran(meta: dict, extras: list[ResultExtras]) -> str:
    """Where a run ran, in words (History's "Where"): the executor, then each node and device
    its arms were measured on, from the run's `meta` and its results' `extras`."""
    executor = meta.get("executor") or {"kind": "local"}
    places = sorted(
        {f"{e.placement.node or '?'} ({e.placement.device or '?'})" for e in extras if e.placement}
    )
    if places:
        return f"{executor.get('kind', 'ray')}: {', '.join(places)}"
    if executor.get("kind") == "ray":
        return f"ray ({executor.get('nodes', '?')} node(s))"
    node = executor.get("node")
    return f"local ({node})" if node else "local"
