"""The Ray actor that measures a run's arms where Ray placed it, one at a time: it loads the
shared generator once (core.engines.in_process keeps it, keyed by its settings) for every arm
the run lends it (service.cluster.worker_pool), and measures each with the same code as a local
run (`StrategyMeasurement.evaluate`).

Kept free of `import ray` at module level: the class is wrapped by `ray.remote` in
`service.cluster.ray_executor`, so importing this module costs nothing without a cluster.
"""

from __future__ import annotations

import functools
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core.config import ConfigBase, ModelConfig
from core.engines.base import engine_class
from core.engines.in_process import load_embedder, load_generator, resolve_device
from core.types import QAPair
from eval.config import RunConfig
from eval.events import ProgressEvent
from eval.records import Placement, PreparedRecord
from eval.run.inputs import Inputs, needs_models
from eval.run.measurement import Arm, Measured, StrategyMeasurement, measure_arm
from eval.run.workbench import Workbench
from service.cluster.process_figures import ProcessFigures
from service.cluster.storage import Storage, clear, from_placeholder, to_placeholder
from strategies.base import RunCancelled


def limit_threads(cpus: int) -> None:
    """Use `cpus` threads in torch and OpenMP: more threads than granted CPUs would make
    oversubscription, not the strategy, decide every figure."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(cpus)
    import torch

    torch.set_num_threads(cpus)


def where_here(device: str, cpus: int) -> dict[str, Any]:
    """This Ray worker's node, node id, process, device, CPUs and GPUs (an arm's or a trial's
    Placement fields)."""
    import ray  # only inside a Ray worker

    ctx = ray.get_runtime_context()
    return {
        "node": socket.gethostname(),
        "node_id": ctx.get_node_id(),
        "pid": os.getpid(),
        "device": device,
        "cpus": cpus,
        "gpus": [str(g) for g in ctx.get_accelerator_ids().get("GPU", [])],
    }


def warm_models(models: ModelConfig, names: list[str]) -> float:
    """Load the shared models strategies `names` need (once per process: core.engines.in_process
    keeps them); the seconds it took, 0 when they were loaded already or not needed."""
    t0 = time.perf_counter()
    if needs_models(names):
        load_generator(models)
        load_embedder(models)
    return time.perf_counter() - t0


def _on_model_thread(method):
    """Run an ArmWorker method on the worker's one model thread, whichever actor thread Ray
    called it on (the class says why)."""

    @functools.wraps(method)
    def on_model_thread(self, *args, **kwargs):
        return self._model_thread.submit(method, self, *args, **kwargs).result()

    return on_model_thread


class ArmWorker:
    """Measures the arms of one run; progress events wait in a list the driver drains.

    Run as a threaded actor (max_concurrency > 1), so `drain` and `stop` are answered while
    `evaluate` works. The model work itself (`warm`, `evaluate`) runs on one thread of its own:
    Ray hands each call to whichever actor thread is free, and every thread that starts torch
    work keeps an OpenMP team of its own, so a second arm on another thread left two teams on
    the arm's CPUs (most likely then waiting by sleeping, not spinning, between parallel
    regions): the bundled model's LoRA arm after a RAG arm trained 30% slower than in a plain
    process, its two threads using 1.5 of the 2 CPUs (bench/bench_executor.py --strategies
    rag,lora)."""

    def __init__(self, config: RunConfig, cpus: int):
        limit_threads(cpus)
        self.config, self.cpus = config, cpus
        self.device = resolve_device(config.models.device)
        self.cancel = threading.Event()
        self._events: list[ProgressEvent] = []
        self._lock = threading.Lock()
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arm-models")

    def placement(
        self,
        worker_s: float,
        load_s: float,
        before: ProcessFigures | None = None,
        started_at: float | None = None,
    ) -> Placement:
        """Which node, process and device this worker measured on, for how long, from
        `started_at` until now (wall clock), and at what nice value, threads and involuntary
        switches since `before` (stored with each arm)."""
        now = ProcessFigures.read()
        return Placement(
            **where_here(self.device, self.cpus),
            worker_s=worker_s,
            load_s=load_s,
            nice=now.nice,
            threads=now.threads,
            involuntary_switches=now.since(before) if before is not None else None,
            started_at=started_at,
            ended_at=time.time(),
        )

    @_on_model_thread
    def warm(self, names: list[str]) -> float:
        """Load the shared models `names` need (once per worker: core.engines.in_process keeps
        them); returns the seconds it took, 0 when they were loaded already or not needed."""
        return warm_models(self.config.models, names)

    @_on_model_thread
    def evaluate(
        self,
        inputs: Inputs,
        name: str,
        label: str,
        train: list[QAPair],
        general: list[QAPair],
        workdir: str,
        settings: ConfigBase | None = None,
        storage: str = "",
        key: str = "",
    ) -> Measured | None:
        """One arm measured here; None when the driver stopped it (cancelled).

        Without `storage` its files are written under `workdir` (the driver's folder: one
        machine). With it, `workdir` is ignored: the arm is built in a scratch folder of this
        node, seeded from `<storage>/<key>` (a tuning trial's adapter the arm reuses), copied
        back there afterwards, and every path in the settings and the result is written
        against storage.ARM_FOLDER."""
        started_at = time.time()  # wall clock: compared with other workers' arms
        before = ProcessFigures.read()
        load_s = warm_models(self.config.models, [name])  # not self.warm: on this thread
        scratch = None
        if storage:
            scratch = Path(tempfile.mkdtemp(prefix="adaptlab-arm-"))
            Storage(storage).get(key, scratch)
            workdir = str(scratch)
            if settings is not None:
                settings = type(settings).from_dict(from_placeholder(settings.to_dict(), scratch))
        try:
            measured = self._measure(inputs, name, label, train, general, workdir, settings)
            if measured is not None and scratch is not None:
                result = measured.result
                result.prepare = PreparedRecord.from_dict(
                    to_placeholder(result.prepare.to_dict(), scratch)
                )
                result.config = to_placeholder(result.config, scratch)
                Storage(storage).put(scratch, key)
        finally:
            if scratch is not None:
                clear(scratch)
        if measured is not None:
            worker_s = measured.result.extras.placement.worker_s
            measured.result.extras.placement = self.placement(
                worker_s, round(load_s, 3), before, started_at
            )
        return measured

    def _measure(
        self,
        inputs: Inputs,
        name: str,
        label: str,
        train: list[QAPair],
        general: list[QAPair],
        workdir: str,
        settings: ConfigBase | None,
    ) -> Measured | None:
        bench = Workbench(self.config, inputs, self.device)
        measurement = StrategyMeasurement(
            self.config.batch_size,
            self.device,
            self.config.prices,
            self._push,
            self.cancel.is_set,
            remote_answers=not engine_class(self.config.models.engine).in_process,
        )
        arm = Arm(name, label, train, general, Path(workdir), settings)
        t0 = time.perf_counter()
        try:
            measured = measure_arm(bench, measurement, arm, inputs)
        except RunCancelled:
            return None
        # The worker's own time apart from the driver's wait (the placement is filled above).
        measured.result.extras.placement = Placement(worker_s=round(time.perf_counter() - t0, 3))
        return measured

    def _push(self, event: ProgressEvent) -> None:
        with self._lock:
            self._events.append(event)

    def drain(self) -> list[ProgressEvent]:
        """The progress events since the last call."""
        with self._lock:
            out, self._events = self._events, []
        return out

    def stop(self) -> None:
        """Cancel the arm being measured at its next batch."""
        self.cancel.set()

    def pid(self) -> int:
        """This worker's process id (tests kill it to simulate a lost node)."""
        return os.getpid()
