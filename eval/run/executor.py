"""Where each arm of a run is measured: the executor contract, its registry and the local one.

The harness hands an executor one `Arm` at a time and gets a `Measured` back; it alone writes
the store. Executors register by name (`@register_executor("ray")`), as strategies do; the Ray
executor lives on the service floor (`service.cluster.ray_executor`) and registers when that
package is imported (the CLI and the app's worker do).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, ClassVar

from core.config import ConfigError
from core.registry import Registry
from core.types import QAPair
from eval.config import RunConfig
from eval.run.measurement import Arm, Measured, StrategyMeasurement, measure_arm
from eval.run.workbench import Workbench


class ArmLost(RuntimeError):
    """The process or node measuring an arm died: the run is left interrupted, resumable."""


class Executor:
    """Measures arms for one run; `close()` releases what it started."""

    kind: ClassVar[str] = ""
    # Arms are measured where this process's files are (a tuning trial's adapter can be
    # loaded from its folder); not so for workers that may run on other nodes.
    local_files: ClassVar[bool] = True
    # How many of a run's arms it measures at once (the harness drives that many threads);
    # an executor whose workers are placed on a cluster sets it from its placement plan.
    arms_at_once: int = 1

    def __init__(self, config: RunConfig, bench: Workbench, measurement: StrategyMeasurement):
        self.config, self.bench, self.measurement = config, bench, measurement

    @classmethod
    def carries_files(cls, config: RunConfig) -> bool:
        """Whether an arm run with `config` can load files this process made (a tuning trial's
        adapter): `local_files`, or an executor that ships them (Ray with `storage`)."""
        return cls.local_files

    def evaluate(self, arm: Arm) -> Measured:
        """The arm measured; raises RunCancelled when the run is cancelled meanwhile. Called
        from up to `arms_at_once` threads at a time."""
        raise NotImplementedError

    def trial_runner(self, name: str, label: str, train: list[QAPair], keep: bool) -> Any:
        """What runs the tuning trials of arm `label` (strategy `name` on `train`; `keep`: its
        chosen trial's folder is kept for the arm): None for Optuna's loop in this process
        (eval.tuning.engine.InProcess), else an object with its `search` and `fetch`."""
        return None

    def describe(self) -> dict[str, Any]:
        """Where this run's arms run, as stored with the run (History's "Where" column)."""
        return {"kind": self.kind, "node": socket.gethostname()}

    def close(self) -> None:
        """Release workers this executor started (nothing for the local one)."""


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    """Class decorator: executor `name` (a value of `executor.kind`)."""

    def deco(cls: type[Executor]) -> type[Executor]:
        cls.kind = name
        return EXECUTORS.add(name, cls)

    return deco


def make_executor(
    config: RunConfig, bench: Workbench, measurement: StrategyMeasurement
) -> Executor:
    """The executor `config.executor.kind` names, for this run."""
    kind = config.executor.kind
    if kind not in EXECUTORS:
        raise ConfigError(
            f"executor {kind!r} is not registered in this process; known: "
            f"{', '.join(EXECUTORS)} (the 'ray' executor registers with `import service.cluster`)"
        )
    return EXECUTORS[kind](config, bench, measurement)


@register_executor("local")
class LocalExecutor(Executor):
    """Every arm in this process, one after the other (the default, and what a laptop wants)."""

    def evaluate(self, arm: Arm) -> Measured:
        return measure_arm(self.bench, self.measurement, arm, arm.inputs or self.bench.inputs)
