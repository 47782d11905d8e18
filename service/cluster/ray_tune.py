"""An arm's tuning trials as Ray Tune trials (`--executor ray`): `RayTrials` runs the trials
that eval.tuning.engine's `tune` asks for, with Optuna as Tune's search algorithm over the same
study (the run's journal file, the same sampler and seed, the default trial enqueued first), so
everything around the trials (the budget, the default-first order, the record, the choice and
its evidence rule, resume) is the in-process search's own code.

Each trial runs `run_trial` on a Ray worker: it rebuilds the arm's job there from the run's
config and inputs (the generator loads in that worker, kept per process), scores the settings
with the same `Objective.score` as a local trial, and reports its running validation score
with its per-pair scores (untrained arms, step = pairs answered) or negated validation loss
(trained arms, step = training step) to Tune. The scheduler (`PrunerScheduler`) stops a trial
when the study's own pruner says so on the same values, as in a local search: racing
(clearly behind the leader, or not ahead at a rung of 16, 48, 144 pairs) for untrained arms,
successive halving on the loss for trained ones; so both searches run the same trials to the
same depth. The searcher writes each finished trial into the study with its settings, scores,
seconds and where it ran (`placement`).

Failures: a trial whose worker dies is retried once (`FailureConfig(max_failures=1)`); one
that raises is failed with its error and the search goes on; trials running when the time
budget ends are stopped and told as pruned; a cancelled run stops every trial (a Stopper
polling the run's cancel) and leaves them unfinished (failed without an error of their own, as
a local search leaves a trial its cancel stopped: a resumed run does not count them), while
finished trials stay in the journal and are not run again.

Kept free of `import ray` at module level (imported inside functions, as the executor does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.engines.in_process import resolve_device
from core.tuning_space import spaces_of, with_values
from core.types import PrepareReport, QAPair
from eval.config import RunConfig
from eval.records import Placement
from eval.run.inputs import Inputs
from eval.run.workbench import Workbench
from eval.tuning.arm import ArmTuner
from eval.tuning.engine import (
    Objective,
    Plan,
    TuningJob,
    journal_storage,
    repeat_outcome,
    same_as,
)
from eval.tuning.racing import DEFAULT_ATTR, RACE_ATTR, default_scores
from service.cluster.plan import ArmRequest
from service.cluster.ray_worker import limit_threads, warm_models, where_here
from service.cluster.storage import Storage, clear, from_placeholder, to_placeholder
from strategies.base import RunCancelled

# What a trial reports: its running validation score (the task's tuning metric), or minus its
# validation loss.
METRIC = "score"
STEP = "step"  # pairs answered (untrained arms) or training steps (trained arms)


@dataclass
class TrialSpec:
    """What a trial's worker rebuilds the arm's search from (the same as the driver's)."""

    run: RunConfig
    inputs: Inputs
    name: str
    label: str
    train: list[QAPair]
    cpus: int
    keep: bool  # the chosen trial's folder serves the arm (through storage)
    storage: str = ""  # executor.storage; empty: one node, trials work in the driver's folder
    folder: str = ""  # the run's folder (only without storage)
    key: str = ""  # the arm's trial folders in storage: <storage>/<key>/trial-<n>


class TuneReporter:
    """A trial's watch on a Ray worker (the interface of engine._Watch): running scores and
    validation losses go to Ray Tune, whose scheduler stops the trial by ending it."""

    def __init__(self, where: dict[str, Any], t0: float):
        self.where, self.t0 = where, t0
        self.pruned, self.steps, self.answered, self.step = False, 0, 0, 0
        self.default: list[float] | None = None  # the default's scores answered here for it

    def figures(self) -> dict[str, Any]:
        """Seconds, steps, answered pairs and where it runs: in every report, so the last
        one describes a trial the scheduler stopped."""
        seconds = round(time.perf_counter() - self.t0, 3)
        return {"seconds": seconds, "steps": self.steps, "answered": self.answered, **self.where}

    def report(self, score: float, step: int, **extra: Any) -> None:
        from ray import tune  # only inside a Ray Tune trial

        self.step = step
        tune.report({METRIC: score, STEP: step, "final": False, **self.figures(), **extra})

    def lead(self, scores: list[float]) -> None:
        self.default = list(scores)  # sent with the next report, and with the last one

    def race(self, scores: list[float]) -> None:
        # The per-pair scores travel too: racing compares them pair by pair with the leader's
        # (the default's, as far as this trial answered them for it, among them).
        extra: dict[str, Any] = {"race": list(scores)}
        if self.default is not None:
            extra[DEFAULT_ATTR] = self.default
        self.report(sum(scores) / len(scores), len(scores), **extra)

    def progress(self, event: dict[str, Any]) -> None:
        if isinstance(event.get("step"), int):
            self.steps = max(self.steps, event["step"])
        if event.get("eval_loss") is not None:  # the search maximises: a loss goes negated
            self.report(-float(event["eval_loss"]), int(event["step"]))

    def cancelled(self) -> bool:
        return False  # Tune stops a trial (pruned, out of time, cancelled) by ending it


def run_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """One trial on a Ray worker: `config` is what the searcher suggested (its number, the
    settings, whether it is the default trial, whether it repeats a finished one)."""
    from ray import tune  # only inside a Ray Tune trial

    device = resolve_device(spec.run.models.device)
    if config["repeat"]:  # settled by the searcher from the trial it repeats
        tune.report({METRIC: 0.0, STEP: 0, "final": True})
        return
    limit_threads(spec.cpus)
    # The models load apart from the trial's time, as a local search has them loaded before
    # its trials (once per worker: the in-process cache keeps them for its later trials).
    load_s = warm_models(spec.run.models, [spec.name])
    where = {**where_here(device, spec.cpus), "load_s": round(load_s, 3), "nice": os.nice(0)}
    watch = TuneReporter(where, time.perf_counter())
    bench = Workbench(spec.run, spec.inputs, device)
    # With storage no path of the driver's is used: the trial works in a folder of this node.
    scratch = Path(tempfile.mkdtemp(prefix="adaptlab-trial-")) if spec.storage else None
    tuner = ArmTuner(bench, scratch or Path(spec.folder), _ignore, _never, reuse=spec.keep)
    job = tuner.job(spec.name, spec.label, spec.train)
    objective = Objective(job, spaces_of(type(job.base)), spec.run.tuning.extra_choices)
    number = int(config["number"])
    outcome: dict[str, Any] = {METRIC: 0.0}
    try:
        settings = job.base if config["default"] else with_values(job.base, config["values"])
        lead = config.get("lead")
        scores = objective.score(settings, watch, number, default=config["default"], lead=lead)
        outcome = {METRIC: sum(scores) / len(scores), "scores": scores}
        if number in objective.prepared:  # kept: in storage, or where it is (one node)
            report = objective.prepared[number]
            outcome["prepared"] = _put(spec, job, number, report) if scratch else report
    except Exception as e:  # noqa: BLE001 - any trial's own error fails that trial only
        outcome["error"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        objective.close()
        if scratch is not None:
            clear(scratch)
    if watch.default is not None:
        outcome[DEFAULT_ATTR] = watch.default
    # The last step reported, so the final score never lands on a rung of its own.
    tune.report({**outcome, STEP: watch.step, "final": True, **watch.figures()})


def _put(spec: TrialSpec, job: TuningJob, number: int, report: PrepareReport) -> PrepareReport:
    """The kept trial's folder copied to storage; its report with paths against the folder
    written as the placeholder (the driver puts its own copy's path there)."""
    folder = job.workdir / f"trial-{number}"
    Storage(spec.storage).put(folder, f"{spec.key}/trial-{number}")
    return dataclasses.replace(
        report,
        artifact_path=to_placeholder(report.artifact_path, folder),
        details=to_placeholder(report.details, folder),
    )


def _ignore(event: Any) -> None:
    """A trial's progress stays on its worker; the driver hears its reports."""


def _never() -> bool:
    return False  # a trial is stopped by Tune ending it, never by a cancel of its own


class RayTrials:
    """Runs one arm's trials as Ray Tune trials (eval.tuning.engine's runner interface)."""

    def __init__(
        self,
        spec: TrialSpec,
        request: ArmRequest,
        at_once: int,
        cancelled: Any,
        workdir: Path,
        make_room: Any = None,
    ):
        self.spec, self.request, self.at_once = spec, request, max(1, at_once)
        self.cancelled, self.workdir = cancelled, Path(workdir)
        # Called while trials run: frees what idle arm workers of the run hold (an arm that
        # finishes meanwhile leaves its worker idle, holding CPUs the trials wait for).
        self.make_room = make_room or (lambda: None)
        self.prepared: dict[int, PrepareReport] = {}  # kept trials' reports (placeholders)

    def _key(self, job: TuningJob) -> str:
        """The arm's tuning folder relative to the run's workdir: its key in storage."""
        try:
            return job.workdir.resolve().relative_to(self.workdir.resolve()).as_posix()
        except ValueError:
            return f"tuning/{job.workdir.name}"

    def search(self, study: Any, objective: Objective, plan: Plan) -> None:
        """Run `plan`'s trials of `study` as the Tune trials of one experiment, as many at
        once as the cluster holds: the default alone, then the rest under the time `plan`
        gives them (one experiment, so its trial actors load the generator once, not once
        for the default and again for the rest); RunCancelled when the run is cancelled."""
        from ray import tune  # only with a cluster

        # Tune's result files (CSV, JSON, TensorBoard) would land in the experiment folder
        # removed below: the journal keeps the trials. Read by Tune at each fit, this process's.
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        job = objective.job
        search_class, stopper_class, scheduler_class = _tune_classes()
        key = self._key(job)
        spec = dataclasses.replace(self.spec, folder=str(job.workdir.parents[1]), key=key)
        trainable = _registered(
            tune.with_resources(
                tune.with_parameters(run_trial, spec=spec),
                {"cpu": self.request.cpus, "gpu": self.request.gpus},
            )
        )
        experiments, remove = self._experiments(key)
        searcher = search_class(objective, study, self, plan)
        try:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=scheduler_class(searcher),
                    num_samples=plan.most,
                    max_concurrent_trials=self.at_once,
                    reuse_actors=True,  # a worker keeps its loaded generator for the next trial
                ),
                run_config=tune.RunConfig(
                    name=f"trials-{uuid.uuid4().hex[:8]}",
                    storage_path=experiments,
                    failure_config=tune.FailureConfig(max_failures=1),  # a dead worker: retried
                    stop=stopper_class(self.cancelled, self.make_room, searcher.out_of_time),
                    verbose=0,
                ),
            )
            tuner.fit()
        finally:
            remove()
        searcher.finish_stopped()
        if self.cancelled():
            raise RunCancelled

    def _experiments(self, key: str) -> tuple[str, Any]:
        """Where Tune keeps its experiment state (in storage, else a temp folder here), and
        how to remove it afterwards: the trials' outcomes live in the journal."""
        if self.spec.storage:
            storage = Storage(self.spec.storage)
            where = f"{key}/ray-tune"
            path = storage.location(where)
            if "://" not in path:
                path = os.path.abspath(path)
            return path, lambda: storage.delete(where)
        temp = tempfile.mkdtemp(prefix="adaptlab-tune-")
        return temp, lambda: shutil.rmtree(temp, ignore_errors=True)

    def fetch(self, job: TuningJob, number: int, prepared: dict[int, PrepareReport]) -> None:
        """The chosen trial's report in `prepared`, so the arm answers with its adapter (no
        second training): on one node without storage as the trial left it, in the driver's
        folder; with storage its folder copied to `job.workdir/trial-<number>`, the report
        pointed there, and every trial folder of the arm then removed from storage."""
        report = self.prepared.get(number)
        if report is None:
            return
        if not self.spec.storage:  # one node: the trial's folder is the driver's already
            prepared[number] = report
            return
        storage, key = Storage(self.spec.storage), self._key(job)
        folder = job.workdir / f"trial-{number}"
        storage.get(f"{key}/trial-{number}", folder)
        prepared[number] = dataclasses.replace(
            report,
            artifact_path=from_placeholder(report.artifact_path, folder),
            details=from_placeholder(report.details, folder),
        )
        storage.delete(key)


# Ray Tune registers a trainable under its function's name in one process-wide registry, and
# two arms tuned at once from threads (parallel arms, the app's runs) broke it: "dictionary
# changed size during iteration", and one name for two arms' trainables.
_REGISTRY_LOCK = threading.Lock()


def _registered(trainable: Any) -> str:
    """`trainable` registered with Ray Tune under a name of its own (what the Tuner is given,
    so it registers nothing itself)."""
    from ray.tune import register_trainable  # only with a cluster

    name = f"adaptlab-trial-{uuid.uuid4().hex}"
    with _REGISTRY_LOCK:
        register_trainable(name, trainable)
    return name


def placement_of(result: dict[str, Any]) -> dict[str, Any]:
    """The Placement (as stored on the trial) a trial's last report describes."""
    return Placement(
        node=str(result.get("node", "")),
        node_id=str(result.get("node_id", "")),
        pid=int(result.get("pid", 0)),
        device=str(result.get("device", "")),
        cpus=int(result.get("cpus", 0)),
        gpus=list(result.get("gpus", [])),
        worker_s=float(result.get("seconds", 0.0)),
        load_s=float(result.get("load_s", 0.0)),
        nice=result.get("nice"),
    ).to_dict()


@functools.cache
def _tune_classes() -> tuple[type, type, type]:
    """(the arm's searcher, the cancel stopper, the pruning scheduler): subclasses of Ray
    Tune's, defined on first use so that importing this module needs no Ray."""
    from optuna.trial import TrialState
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.stopper import Stopper

    class ArmSearch(OptunaSearch):
        """OptunaSearch over the arm's own study: trials draw their settings as a local
        trial does (`Objective.draw`), repeats are settled from the trial they repeat, and
        each finished trial is told with its settings, scores, time and placement. It keeps
        to the engine's plan: the default trial alone first (no other is suggested while it
        runs), then as many as `plan.rest()` allows, until its deadline."""

        def __init__(self, objective: Objective, study: Any, runner: RayTrials, plan: Plan):
            self.objective, self.runner, self.plan = objective, runner, plan
            self.pruner = study.pruner  # the local search's own (racing, successive halving)
            self._last: dict[str, dict[str, Any]] = {}  # each trial's last report
            self._default_id: str | None = None  # the default trial's, until it finishes
            self._left: int | None = None  # trials the rest may still start (None: not asked)
            self._deadline: float | None = None  # perf_counter time the rest's budget ends
            super().__init__(
                space=objective.draw,  # define-by-run: the same draw as in process
                metric=METRIC,
                mode="max",
                sampler=study.sampler,  # seeded (and shifted on resume) by the engine
                study_name=study.study_name,
                storage=journal_storage(objective.job),
            )

        # The run's journal is the search's state: Tune's own snapshots of the searcher (of
        # the tuner, for a restore this search never does) keep nothing, and need not pickle
        # the job's models and locks.
        def save(self, checkpoint_path: str) -> None:
            pass

        def __getstate__(self) -> dict[str, Any]:
            return {}

        def out_of_time(self) -> bool:
            return self._deadline is not None and time.perf_counter() > self._deadline

        def _rest_started(self) -> None:
            """The rest's trials and deadline, asked of the plan once the default is done."""
            after = self.plan.rest()
            self._left, timeout = after if after is not None else (0, None)
            if timeout is not None:
                self._deadline = time.perf_counter() + timeout

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            if self.plan.default_first and self._default_id is None and self._left is None:
                self._default_id = trial_id  # the study's queued default comes first
            elif self._default_id is not None:
                return None  # asked again once the default is done
            else:
                if self._left is None:
                    self._rest_started()
                if self._left <= 0 or self.out_of_time():
                    return Searcher.FINISHED
                self._left -= 1
            if super().suggest(trial_id) is None:  # not drawn: the next ask starts it again
                if self._default_id == trial_id:
                    self._default_id = None
                elif self._left is not None:
                    self._left += 1
                return None
            trial = self._ot_trials[trial_id]
            attrs = trial.user_attrs
            default = bool(attrs.get("default"))
            earlier = None if default else same_as(self._ot_study, attrs["values"])
            if earlier is not None:
                state, value = repeat_outcome(trial, earlier)
                self._tell(trial_id, value, state)
            job = self.objective.job
            return {
                "number": trial.number,
                "values": attrs["values"],
                "default": default,
                "repeat": earlier is not None,
                # The default's scores so far: a rival answers the default on pairs past them.
                "lead": None if default or job.trains else default_scores(self._ot_study),
            }

        def should_prune(self, trial_id: str, result: dict[str, Any]) -> bool:
            """Record a running result as a local trial does (its intermediate value and
            racing's per-pair scores), then ask the study's pruner whether to stop it."""
            trial = self._ot_trials.get(trial_id)
            if trial is None or trial_id in self._completed_trials or result.get("final"):
                return False
            self._last[trial_id] = result
            if result.get("race") is not None:
                trial.set_user_attr(RACE_ATTR, list(result["race"]))
            if result.get(DEFAULT_ATTR) is not None:
                trial.set_user_attr(DEFAULT_ATTR, list(result[DEFAULT_ATTR]))
            trial.report(float(result[METRIC]), int(result[STEP]))
            frozen = self._ot_study._storage.get_trial(trial._trial_id)
            return bool(self.pruner.prune(self._ot_study, frozen))

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            trial = self._ot_trials.get(trial_id)
            if trial is None or trial_id in self._completed_trials:
                return
            self._last[trial_id] = result
            phase = "train" if self.objective.job.trains else "answer"
            self.objective.job.emit(
                {
                    "stage": "tune",
                    "phase": phase,
                    "trial": trial.number,
                    "done": result.get("answered"),
                    "step": result.get("steps"),
                    "pid": result.get("pid"),
                    "node_id": result.get("node_id"),
                }
            )

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            if trial_id in self._ot_trials and trial_id not in self._completed_trials:
                self._finish(trial_id, result or self._last.get(trial_id, {}), error)

        def finish_stopped(self) -> None:
            """Tell the trials Tune stopped as its experiment ended (the run's cancel, the
            time budget), of which it tells the searcher nothing, with their last reports."""
            for trial_id in list(self._ot_trials):
                if trial_id not in self._completed_trials:
                    self._finish(trial_id, self._last.get(trial_id, {}), False)

        def _finish(self, trial_id: str, result: dict[str, Any], error: bool) -> None:
            trial = self._ot_trials[trial_id]
            if self.runner.cancelled() and not result.get("final"):
                # Stopped by the run's cancel: no outcome, so a resumed run runs it anew.
                self._tell(trial_id, None, TrialState.FAIL)
                return
            for name in ("seconds", "steps", "answered", DEFAULT_ATTR):
                if name in result:
                    trial.set_user_attr(name, result[name])
            if result.get("node_id"):
                trial.set_user_attr("placement", placement_of(result))
            if result.get("error") or error:
                why = result.get("error") or "its Ray worker stopped twice (retried once)"
                trial.set_user_attr("error", str(why)[:500])
                self._tell(trial_id, None, TrialState.FAIL)
            elif result.get("final"):
                trial.set_user_attr("scores", list(result["scores"]))
                if result.get("prepared") is not None:
                    self.runner.prepared[trial.number] = result["prepared"]
                self._tell(trial_id, float(result[METRIC]), TrialState.COMPLETE)
            else:  # stopped by the study's pruner, or the time budget ran out
                self._tell(trial_id, None, TrialState.PRUNED)
            if trial_id == self._default_id:
                self._default_id = None
                self._rest_started()

        def _tell(self, trial_id: str, value: float | None, state: Any) -> None:
            self._completed_trials.add(trial_id)
            # The brute-force sampler stops a study once every setting is tried; outside
            # Optuna's own loop that raises RuntimeError, after the trial's state is stored.
            with contextlib.suppress(RuntimeError):
                self._ot_study.tell(self._ot_trials[trial_id], value, state=state)

    class CancelStopper(Stopper):
        """Stops every trial once the run is cancelled or the search's time is up; asked at
        every step of Tune's loop, it also makes room for waiting trials (`make_room`)."""

        def __init__(self, cancelled: Any, make_room: Any, out_of_time: Any):
            self.cancelled, self.make_room, self.out_of_time = cancelled, make_room, out_of_time

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def __getstate__(self) -> dict[str, Any]:
            return {}  # Tune's snapshot of the tuner: the run's cancel does not pickle

        def stop_all(self) -> bool:
            self.make_room()
            return bool(self.cancelled() or self.out_of_time())

    class PrunerScheduler(FIFOScheduler):
        """Trials in the order they come; a running one stops when the searcher's pruner
        (the local search's) says so on its latest result."""

        def __init__(self, searcher: ArmSearch):
            super().__init__()
            self.searcher = searcher

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if self.searcher.should_prune(trial.trial_id, result):
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

        def __getstate__(self) -> dict[str, Any]:
            return {}  # Tune's snapshot of the tuner: the searcher lives in this process

    return ArmSearch, CancelStopper, PrunerScheduler
