"""The `ray` executor: each arm measured by a Ray actor wherever Ray places it.

Registered under "ray" when `service.cluster` is imported; the contract is eval.run.executor's.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any

from core.config import ConfigError
from core.types import QAPair
from eval.config import ExecutorConfig, RunConfig
from eval.records import Placement, PreparedRecord
from eval.run.executor import ArmLost, Executor, register_executor
from eval.run.measurement import Arm, Measured, StrategyMeasurement
from eval.run.workbench import Workbench
from eval.store.artifacts import label_folder
from service.cluster.plan import ArmRequest, ClusterShape, arm_request, placement_plan
from service.cluster.ray_tune import RayTrials, TrialSpec
from service.cluster.ray_worker import ArmWorker
from service.cluster.storage import Storage, check_reachable, from_placeholder, to_placeholder
from service.cluster.worker_pool import WorkerPool
from strategies.base import RunCancelled

ROOT = Path(__file__).resolve().parents[2]  # the project folder, importable by Ray workers
POLL_S = 0.2  # how often the driver relays an arm's progress and checks for a cancel
STOP_GRACE_S = 15.0  # how long a cancelled arm may take to stop before its worker is killed
INSTALL_HINT = "pip install -r requirements-cluster.txt"


_INIT_LOCK = threading.Lock()  # the app's worker drives several runs from threads


def connect(address: str, executor: ExecutorConfig | None = None) -> Any:
    """The `ray` module, connected to the cluster at `address` (once per process); an empty
    address means RAY_ADDRESS, else a Ray started here. ImportError says what to install.

    The job's runtime environment is `worker_env(executor)`: Ray Tune starts its trial actors
    with the job's, so they run at the operator's nice value as the arm workers do (Ray's
    default, 15, otherwise)."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"executor 'ray' needs Ray: {INSTALL_HINT}") from e
    with _INIT_LOCK:
        if not ray.is_initialized():
            ray.init(
                address=address or None,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env=worker_env(executor or ExecutorConfig()),
            )
    return ray


def worker_env(executor: ExecutorConfig) -> dict[str, Any]:
    """The runtime environment of a worker measuring arms or trials: the project on its path
    (the same folder on every node), and the operator's nice value. Ray nices its workers to 15
    by default; beside Ray's own services (nice 0, in the same scheduling group) a niced torch
    thread loses its CPU at each of their wake-ups and its sibling OpenMP threads then wait at
    the next barrier (bench/bench_ray_stages.py measures it). RAY_worker_niceness is read by
    each worker as it starts, as Ray's job supervisor sets it for its own actor."""
    return {
        "env_vars": {
            "PYTHONPATH": str(ROOT),
            "RAY_worker_niceness": str(int(executor.worker_niceness)),
        }
    }


@register_executor("ray")
class RayExecutor(Executor):
    """Each arm measured by an `ArmWorker` actor of the run, placed by Ray, which loads the
    shared models once and keeps them for the run's later arms. As many arms run at once as
    the placement plan fits (`arms_at_once`), each on a worker of its own (`WorkerPool`).

    The run's inputs are put in the object store once; progress is relayed from the actor every
    POLL_S; a cancel stops the arm at its next batch (or kills its worker after STOP_GRACE_S);
    a worker or node that dies raises ArmLost."""

    local_files = False

    @classmethod
    def carries_files(cls, config: RunConfig) -> bool:
        return bool(config.executor.storage)  # a trial's adapter travels through storage

    def __init__(self, config: RunConfig, bench: Workbench, measurement: StrategyMeasurement):
        super().__init__(config, bench, measurement)
        self.ray = connect(config.executor.address, config.executor)
        self.shape = ClusterShape.of(self.ray)
        check_reachable(config.executor.storage, len(self.shape.nodes))
        self.storage = Storage(config.executor.storage) if config.executor.storage else None
        # With storage a tuning trial's adapter travels to the arm's worker through it; on a
        # one-node cluster of this machine the worker reads it where the trial left it.
        self.local_files = self.carries_files(config) or self._one_node_here()
        self._actor_class = self.ray.remote(ArmWorker)
        self.inputs_ref = self.ray.put(bench.inputs)
        self.plan = placement_plan(config.executor, config.strategies, self.shape)
        self.arms_at_once = int(self.plan["at_once"])
        # The run's ArmWorkers, per request (a trained arm's asks for a GPU where there is
        # one, an untrained arm's for `untrained_gpus`), one per arm running; each loads the
        # models once.
        self.workers = WorkerPool(self.shape, self._start, self._kill)

    def _one_node_here(self) -> bool:
        """Whether the cluster is one node on this machine (its workers see this process's
        files; not through Ray Client, whose driver runs on the head)."""
        if self.config.executor.address.startswith("ray://"):
            return False
        alive = [n for n in self.ray.nodes() if n.get("Alive")]  # the shape's nodes, with ids
        here = self.ray.get_runtime_context().get_node_id()
        return len(alive) == 1 and alive[0].get("NodeID") == here

    def trial_runner(self, name: str, label: str, train: list[QAPair], keep: bool) -> RayTrials:
        """The arm's tuning trials as Ray Tune trials, each asking what the arm would (CPUs, a
        GPU for a trained arm where the cluster has one), as many at once as fit."""
        self.workers.drop_idle()  # the trials need the CPUs an idle arm worker holds
        request = arm_request(self.config.executor, name, self.shape)
        at_once = self.shape.fits(request)
        if not at_once:  # Tune would wait for such a node for ever
            raise ConfigError(
                f"no node of the Ray cluster has {request.cpus} CPU(s) and {request.gpus:g} "
                f"GPU(s) free for a trial of {label}; lower executor.cpus_per_arm or num_gpus"
            )
        spec = TrialSpec(
            self.config,
            self.bench.inputs,
            name,
            label,
            list(train),
            request.cpus,
            keep,
            storage=self.config.executor.storage,
        )
        return RayTrials(
            spec,
            request,
            at_once,
            self.measurement.cancelled,
            self.config.workdir,
            make_room=self.workers.drop_idle,  # an arm done meanwhile leaves its worker idle
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ray",
            "node": socket.gethostname(),
            "nodes": len(self.shape.nodes),
            "cluster": {
                k: float(v)
                for k, v in self.ray.cluster_resources().items()
                if k in ("CPU", "GPU", "memory")
            },
            "plan": self.plan,
        }

    def _options(self, request: ArmRequest) -> dict[str, Any]:
        """What an arm worker declares: `request`'s CPUs and GPUs and the memory the operator
        set. Ray places it (spread, so the runs of a busy app land on different nodes)."""
        memory = int(float(self.config.executor.memory_gb) * 2**30)
        return {
            **({"memory": memory} if memory else {}),
            "num_cpus": request.cpus,
            "num_gpus": request.gpus,
            "max_concurrency": 4,  # drain/stop are answered while evaluate runs
            "max_restarts": 0,  # a dead worker's arm is interrupted, not silently redone
            "scheduling_strategy": "SPREAD",
            "runtime_env": worker_env(self.config.executor),
        }

    def _start(self, request: ArmRequest) -> Any:
        """A new worker asking `request` (Ray starts it where there is room)."""
        return self._actor_class.options(**self._options(request)).remote(self.config, request.cpus)

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):  # already dead
            self.ray.kill(actor)

    def evaluate(self, arm: Arm) -> Measured:
        t0 = time.perf_counter()
        request = arm_request(self.config.executor, arm.name, self.shape)
        actor = self.workers.lease(request, self.measurement.cancelled)
        done = False
        try:
            measured = self._evaluate(actor, arm)
            done = True
        finally:
            if done:  # loaded and free: the run's next arm of its request takes it
                self.workers.release(actor)
            else:  # lost, stopped mid-arm (its cancel flag stays set) or failing: not reused
                self.workers.drop(actor)
        self._account(measured, time.perf_counter() - t0)
        return measured

    def _evaluate(self, actor: Any, arm: Arm) -> Measured:
        ray = self.ray
        inputs = self.inputs_ref if arm.inputs is None else self.ray.put(arm.inputs)
        settings, key = arm.settings, self._key(arm)
        if self.storage is not None:
            # What the arm starts from (a chosen trial's adapter) goes to storage, and its
            # settings name it against the placeholder: the worker never sees our folders.
            if any(arm.workdir.iterdir()):  # else storage is written by the workers alone
                self.storage.put(arm.workdir, key)
            if settings is not None:
                settings = type(settings).from_dict(to_placeholder(settings.to_dict(), arm.workdir))
        ref = actor.evaluate.remote(
            inputs,
            arm.name,
            arm.label,
            arm.train,
            arm.general,
            "" if self.storage is not None else str(arm.workdir.resolve()),
            settings,
            self.config.executor.storage,
            key,
        )
        try:
            self._follow(actor, ref)
            measured = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
            raise ArmLost(
                f"interrupted: the Ray worker measuring {arm.label} stopped "
                f"({type(e).__name__}); resume the run to continue"
            ) from None
        if measured is None:
            raise RunCancelled
        if self.storage is not None:
            self._fetch(measured, arm, key)
        return measured

    def _key(self, arm: Arm) -> str:
        """Where the arm's files go in storage: the run's folder under the workdir, then the
        arm's label (not the temporary name it is built under here)."""
        try:
            rel = arm.workdir.resolve().parent.relative_to(Path(self.config.workdir).resolve())
        except ValueError:
            rel = Path(arm.workdir.parent.name)
        return (rel / label_folder(arm.label)).as_posix()

    def _fetch(self, measured: Measured, arm: Arm, key: str) -> None:
        """The arm's files copied from storage into its folder here, and the result's paths
        pointed at that copy (the harness then publishes the folder as for a local arm)."""
        self.storage.get(key, arm.workdir)
        result = measured.result
        result.prepare = PreparedRecord.from_dict(
            from_placeholder(result.prepare.to_dict(), arm.workdir)
        )
        result.config = from_placeholder(result.config, arm.workdir)
        if result.extras.placement is not None:
            result.extras.placement.storage = self.storage.location(key)

    def _follow(self, actor: Any, ref: Any) -> None:
        """Relay the arm's progress until it ends; stop it when the run is cancelled. Never
        blocks on the actor: one waiting for the cluster to free a CPU answers nothing yet."""
        ray, emit = self.ray, self.measurement.emit
        drain = None
        while True:
            ready, _ = ray.wait([ref], timeout=POLL_S)
            drain = drain or actor.drain.remote()
            if ready or ray.wait([drain], timeout=0)[0]:
                for event in ray.get(drain):
                    emit(event)
                drain = None
            if ready:
                for event in ray.get(actor.drain.remote()):  # the arm's last events
                    emit(event)
                return
            if self.measurement.cancelled():
                self._stop(actor, ref)
                raise RunCancelled

    def _account(self, measured: Measured, wall_s: float) -> None:
        """Record the driver's wall time for the arm and its scheduling overhead: the part
        the worker spent neither measuring the arm nor loading the models."""
        placed = measured.result.extras.placement
        if placed is None:  # an arm that failed before the worker measured it
            placed = measured.result.extras.placement = Placement()
        placed.driver_wall_s = round(wall_s, 3)
        placed.overhead_s = round(max(0.0, wall_s - placed.worker_s - placed.load_s), 3)

    def _stop(self, actor: Any, ref: Any) -> None:
        """Stop the running arm: ask it, then kill its worker if it does not stop in time."""
        ray = self.ray
        actor.stop.remote()
        ray.cancel(ref)  # sets Ray's own flag too; the arm checks ours between batches
        ready, _ = ray.wait([ref], timeout=STOP_GRACE_S)
        if not ready:
            self.workers.drop(actor)

    def close(self) -> None:
        self.workers.close()
