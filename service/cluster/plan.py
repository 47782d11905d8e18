"""A run's placement plan on a Ray cluster: what each arm's worker asks for (CPUs, GPUs) and how
many such workers the cluster holds at once, shown before the run starts (the estimate's
cluster line) and stored with the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eval.config import ExecutorConfig
from eval.run.contention import cores
from strategies import get_strategy_class


@dataclass(frozen=True)
class ArmRequest:
    """What one arm's worker declares to Ray."""

    cpus: int
    gpus: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored with the run."""
        return asdict(self)


@dataclass
class ClusterShape:
    """The live nodes' resources: how many nodes, and each one's CPUs and GPUs."""

    nodes: list[dict[str, float]]

    @classmethod
    def of(cls, ray: Any) -> ClusterShape:
        """The shape of the cluster `ray` is connected to."""
        return cls(
            [
                {k: float(v) for k, v in n.get("Resources", {}).items() if k in ("CPU", "GPU")}
                for n in ray.nodes()
                if n.get("Alive")
            ]
        )

    @property
    def gpus(self) -> float:
        return sum(n.get("GPU", 0.0) for n in self.nodes)

    @property
    def cpus(self) -> float:
        return sum(n.get("CPU", 0.0) for n in self.nodes)

    def fits(self, request: ArmRequest) -> int:
        """How many workers asking `request` the cluster holds at once (0: none can be placed)."""
        total = 0
        for n in self.nodes:
            by_cpu = int(n.get("CPU", 0.0) // request.cpus) if request.cpus else 0
            by_gpu = int(n.get("GPU", 0.0) // request.gpus) if request.gpus else by_cpu
            total += min(by_cpu, by_gpu)
        return total


def arm_cpus(executor: ExecutorConfig, shape: ClusterShape) -> int:
    """CPUs per arm: the configured number, or (0) what a local run uses, this machine's cores,
    capped at the largest live node's CPUs so the arm can be placed at all."""
    if int(executor.cpus_per_arm):
        return int(executor.cpus_per_arm)
    largest = max((int(n.get("CPU", 0)) for n in shape.nodes), default=1)
    return max(1, min(cores(), largest))


def arm_request(executor: ExecutorConfig, strategy: str, shape: ClusterShape) -> ArmRequest:
    """What the worker measuring `strategy` asks for: its CPUs, and where the cluster has
    GPUs, `num_gpus` for a strategy that trains, `untrained_gpus` for one that does not."""
    gpus = 0.0
    if shape.gpus > 0:
        trains = get_strategy_class(strategy).trains
        gpus = float(executor.num_gpus if trains else executor.untrained_gpus)
    return ArmRequest(arm_cpus(executor, shape), gpus)


def placement_plan(
    executor: ExecutorConfig, strategies: list[str], shape: ClusterShape
) -> dict[str, Any]:
    """Per strategy its request and how many such workers fit at once, the cluster's totals,
    and how many of the run's arms are measured at once (`at_once`: as many as the most
    plentiful request fits, at least one), stored with the run as meta `executor.plan`."""
    arms = {}
    for name in strategies:
        request = arm_request(executor, name, shape)
        arms[name] = {**request.to_dict(), "fit_at_once": shape.fits(request)}
    return {
        "nodes": len(shape.nodes),
        "cpus": shape.cpus,
        "gpus": shape.gpus,
        "storage": executor.storage,
        "arms": arms,
        "at_once": max([1, *(a["fit_at_once"] for a in arms.values())]),
    }


def plan_line(plan: dict[str, Any]) -> str:
    """The plan in one line, e.g. "Ray: 2 nodes, 4 CPUs, 0 GPUs; storage /mnt/x; rag 2 CPUs;
    lora 2 CPUs + 1 GPU (cannot be placed); up to 2 arms at once"."""
    parts = []
    for name, a in plan["arms"].items():
        gpu = f" + {a['gpus']:g} GPU" if a["gpus"] else ""
        warn = " (cannot be placed: no node has that much)" if not a["fit_at_once"] else ""
        parts.append(f"{name} {a['cpus']} CPU{'s' if a['cpus'] != 1 else ''}{gpu}{warn}")
    storage = plan["storage"] or "this machine's folders (one node only)"
    return (
        f"Ray: {plan['nodes']} node(s), {plan['cpus']:g} CPUs, {plan['gpus']:g} GPUs; "
        f"storage {storage}; per arm: {', '.join(parts)}"
        # Plans stored before arms ran in parallel have no `at_once`: one at a time.
        f"; up to {plan.get('at_once', 1)} arm(s) at once"
    )
