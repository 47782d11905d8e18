"""The run's side of tuning: carve the validation pairs, tune each arm, charge the time to it.

The harness asks `ArmTuner.settings_for` before it measures an arm: with `tuning.budget` off it
changes nothing; otherwise it searches the arm's spaces on training pairs (all of them for an arm
that learns nothing from them, see `tuning_pairs`), never the test split, and returns the chosen
settings with a `TuningRecord`. An arm that holds out validation pairs of its own (LoRA) is tuned on
exactly those, its trials preparing on all its training pairs; `prepared` then hands the arm
its chosen trial's adapter, so it is not trained a second time. `charge` adds the tuning time
to the arm's preparation cost, so the break-even volumes and money include it.
"""

from __future__ import annotations

import random
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import ConfigBase, ConfigError
from core.qa import DEFAULT_JACCARD, leave_out_groups, split_validation
from core.tuning_space import with_values
from core.types import PrepareReport, QAPair
from eval.events import ProgressEvent, ProgressFn
from eval.records import ResultExtras, TuningRecord
from eval.run.costs import price
from eval.store.artifacts import label_folder
from eval.store.runs import StrategyResult
from eval.tuning.config import TuningConfig
from eval.tuning.engine import TuningJob, tune
from strategies import get_strategy_class
from strategies.base import RunCancelled

# How an arm's validation pairs were found, as the Tuning tab words it.
ALL_PAIRS = "all training pairs"
ALL_LEFT_OUT = "all training pairs, each without its near-duplicate group in the pool"
OWN_PAIRS = "the pairs it holds out itself, drawn by group"
HELD_OUT = "a held-out share of the training pairs, drawn by group"


@dataclass
class TuningPairs:
    """Which pairs an arm's trials prepare on (`fit`) and are scored on (`val`)."""

    fit: list[QAPair]
    val: list[QAPair]
    own: bool  # `val` is what the arm holds out itself (LoRA): its chosen trial serves it
    scheme: str  # how `val` was found, in words
    # Question -> the pair ids its answer must not read (StrategyContext.leave_out).
    leave_out: dict[str, frozenset[str]] = field(default_factory=dict)


def tuning_pairs(
    kind: type,
    config: ConfigBase,
    train: list[QAPair],
    val_fraction: float,
    seed: int,
    jaccard: float = DEFAULT_JACCARD,
) -> TuningPairs:
    """The pairs arm `kind` (configured as `config`) is tuned on; never the test split.

    An arm that learns nothing from the training pairs (`validates_on_training`: it does not
    train and reads them not at all, or only through a pool that leaves a question's own
    near-duplicate group out) is scored on every one of them, in a seeded order (racing
    reads a prefix). An arm that validates on held-out pairs of its own (LoRA) is tuned on
    exactly those, each trial preparing on all the training pairs as the arm will, so the
    winner's adapter is the arm's. Any other arm is scored on a `val_fraction` share drawn by
    near-duplicate group with the run's split seed. The estimate counts the same pairs."""
    if kind.validates_on_training():
        order = list(train)
        random.Random(seed).shuffle(order)
        if not kind.reads_pairs:
            return TuningPairs(list(train), order, False, ALL_PAIRS)
        groups = leave_out_groups(train, jaccard)
        return TuningPairs(list(train), order, False, ALL_LEFT_OUT, groups)
    own = kind.held_out_pairs(config, train)
    if own:
        return TuningPairs(list(train), list(own), True, OWN_PAIRS)
    fit, val = split_validation(train, val_fraction, seed, jaccard)
    return TuningPairs(fit, val, False, HELD_OUT)


class TuningFailed(Exception):
    """An arm's search raised (beyond its trials, which fail on their own): the arm is stored
    as failed with the error, as a failure to prepare it would be, and the run goes on."""

    def __init__(self, label: str, config: ConfigBase, budget: str, error: Exception):
        super().__init__(f"tuning failed: {type(error).__name__}: {error}")
        self.label, self.config, self.budget = label, config, budget
        self.trace = traceback.format_exc(limit=8)

    def result(self) -> tuple[StrategyResult, TuningRecord]:
        """The arm's failed result, and the tuning record it keeps."""
        result = StrategyResult(self.label, "failed", self.config.to_dict(), error=str(self))
        result.prepare.traceback = self.trace
        record = TuningRecord(status="failed", budget=self.budget, note=str(self))
        return result, record


class ArmTuner:
    """Tunes a run's arms on its workbench; remembers each arm's choice for its variants."""

    def __init__(
        self,
        bench: Any,
        folder: Path,
        emit: ProgressFn,
        cancelled: Callable[[], bool],
        reuse: bool = True,
        runner: Callable[[str, str, list[QAPair], bool], Any] | None = None,
    ):
        self.bench, self.folder = bench, Path(folder)
        self.emit, self.cancelled = emit, cancelled
        # Whether an arm may answer with a trial's artifacts: they are files on this machine,
        # so not when the arm is measured elsewhere (a Ray worker on another node).
        self.reuse = reuse
        # (strategy, label, training pairs, keep) -> what runs the arm's trials (the
        # executor's: Ray Tune trials on a cluster); None: in this process.
        self.runner = runner
        self.chosen: dict[str, ConfigBase] = {}
        self.kept: dict[str, tuple[int, Path, PrepareReport]] = {}  # label -> chosen trial's

    def restore(self, name: str, record: TuningRecord | None) -> None:
        """An arm kept from before an interruption: its choice, read back from its stored
        record, so its learning-curve points and re-splits use the settings it was measured
        with."""
        if record is None or not record.changed or name in self.chosen:
            return
        base = self.bench.strategy(name, None, self.bench.context()).config
        self.chosen[name] = with_values(base, record.changed)

    @property
    def tuning(self) -> TuningConfig:
        return self.bench.config.tuning

    def settings_for(
        self, name: str, label: str, train: list[QAPair], extras: ResultExtras
    ) -> tuple[ConfigBase | None, TuningRecord | None]:
        """(settings to measure `label` with, its tuning record); (None, None) when off.

        Learning-curve variants reuse their arm's chosen settings without a search of their
        own: the curve shows the same strategy on less data."""
        if not self.tuning.on:
            return None, None
        if extras.is_variant:
            return self.chosen.get(name), None
        job = self.job(name, label, train)
        runner = self.runner(name, label, train, job.keep) if self.runner else None
        self.emit(ProgressEvent("tune", strategy=label, figures={"budget": self.tuning.budget}))
        try:
            # In process unless the executor runs trials elsewhere (Ray Tune on a cluster).
            chosen, record = tune(job, self.tuning, **({"runner": runner} if runner else {}))
        except RunCancelled:
            raise
        except Exception as e:  # noqa: BLE001 - the arm fails with the error, the run goes on
            raise TuningFailed(label, job.base, self.tuning.budget, e) from e
        self.chosen[name] = chosen
        if job.kept is not None:
            self.kept[label] = job.kept
        return chosen, record

    def job(self, name: str, label: str, train: list[QAPair]) -> TuningJob:
        """Arm `label`'s search (strategy `name` on `train`): its pairs, where its trials work,
        how each trial builds the strategy. A Ray Tune trial rebuilds the same job on its
        worker from the same inputs."""
        config = self.bench.strategy(name, None, self.bench.context()).config
        kind = get_strategy_class(name)
        split = self.bench.config.split
        pairs = tuning_pairs(
            kind, config, train, self.tuning.val_fraction, split.seed, split.near_duplicate_jaccard
        )
        own, val = pairs.own, pairs.val
        held = {p.id for p in val} if own else set()
        test = tuple(self.bench.inputs.test)
        folder = self.folder / "tuning"

        def build(cfg, workdir, progress, cancelled):
            if own and {p.id for p in kind.held_out_pairs(cfg, train)} != held:
                raise ConfigError("these settings would train on the validation pairs")
            # Generated training data must leave out the validation pairs as well as the test;
            # an arm scored on its own training pairs leaves each one's group out of its pool.
            ctx = self.bench.context(
                workdir=workdir,
                progress=progress,
                cancelled=cancelled,
                held_out=(*test, *val),
                leave_out=pairs.leave_out,
            )
            return self.bench.strategy(name, cfg, ctx)

        return TuningJob(
            label=label,
            base=config,
            trains=bool(get_strategy_class(name).trains),
            fit=pairs.fit,
            val=val,
            scheme=pairs.scheme,
            jaccard=split.near_duplicate_jaccard,
            task=self.bench.inputs.task,
            corpus=self.bench.inputs.corpus,
            build=build,
            workdir=folder / label_folder(label),
            journal=folder / "trials.journal",
            batch_size=self.bench.config.batch_size,
            seed=self.bench.config.split.seed,
            cancelled=self.cancelled,
            emit=lambda ev: self.emit(ProgressEvent.from_dict(ev, strategy=label)),
            keep=own and self.reuse,
        )

    def prepared(self, name: str, label: str, settings: ConfigBase, into: Path) -> ConfigBase:
        """`settings` pointing at the chosen trial's artifacts, moved under `into` (the arm's
        folder), so the arm loads what tuning trained instead of training it again; `settings`
        unchanged when no trial's artifacts are kept for `label`."""
        if label not in self.kept:
            return settings
        number, folder, report = self.kept.pop(label)
        usable = bool(report.artifact_path) and Path(report.artifact_path).is_dir()
        if usable:
            target = Path(into) / f"tuning-trial-{number}"
            shutil.move(report.artifact_path, target)
            self.kept[label] = (number, target, report)  # for `adopt`: the arm reuses it
        shutil.rmtree(folder, ignore_errors=True)  # what else the trial built (indexes)
        if not usable:  # nothing to load: the arm prepares (trains) itself
            return settings
        return get_strategy_class(name).reuse_config(settings, {"artifact_path": str(target)})

    def adopt(
        self, label: str, result: StrategyResult, settings: ConfigBase, record: TuningRecord
    ) -> None:
        """The arm's result as the trial prepared it: the settings chosen (not the path to
        the adapter it loaded), the trial's training log and figures. Nothing to do unless
        `prepared` handed the arm the trial's artifacts."""
        if label not in self.kept:
            return
        number, _, report = self.kept.pop(label)
        if result.status != "done":
            return
        result.config = settings.to_dict()
        prepare = result.prepare
        prepare.training = report.training
        # The training's own figures (mode, examples) over "loaded"; parts' sections stay.
        prepare.details.update({k: v for k, v in report.details.items() if not isinstance(v, dict)})
        prepare.details["tuning_trial"] = number
        record.reused_trial = number


def charge(result: StrategyResult, record: TuningRecord, device: str, prices: Any) -> None:
    """Store `record` with the arm's result and add its seconds (and money) to preparation.

    Call it once the result's extras are final: the record is one of them."""
    result.extras.tuning = record
    if result.status != "done":
        return
    cost = result.cost
    if cost.prepare_s is not None:
        cost.prepare_s = float(cost.prepare_s) + record.seconds
    if cost.price_prepare is not None:
        cost.price_prepare = float(cost.price_prepare) + price(record.seconds, device, prices)
