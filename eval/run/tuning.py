"""The run's side of tuning: carve the validation pairs, tune each arm, charge the time to it.

The harness asks `ArmTuner.settings_for` before it measures an arm: with `tuning.budget` off it
changes nothing; otherwise it searches the arm's spaces on pairs carved from the training split
(the share and seed LoRA validates on), never the test split, and returns the chosen settings
with a `TuningRecord`. `charge` adds the tuning time to the arm's preparation cost, so the
break-even volumes and money include it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import ConfigBase
from core.tuning_space import with_values
from core.types import QAPair
from eval.artifacts import label_folder
from eval.events import ProgressEvent, ProgressFn
from eval.records import ResultExtras, TuningRecord
from eval.run.costs import price
from eval.store import StrategyResult
from eval.tuning.config import TuningConfig
from eval.tuning.engine import TuningJob, tune
from strategies import get_strategy_class
from strategies.lora.data import split_validation


class ArmTuner:
    """Tunes a run's arms on its workbench; remembers each arm's choice for its variants."""

    def __init__(self, bench: Any, folder: Path, emit: ProgressFn, cancelled: Callable[[], bool]):
        self.bench, self.folder = bench, Path(folder)
        self.emit, self.cancelled = emit, cancelled
        self.chosen: dict[str, ConfigBase] = {}

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
        config = self.bench.strategy(name, None, self.bench.context()).config
        fit, val = split_validation(train, self.tuning.val_fraction, self.bench.config.split.seed)
        test = tuple(self.bench.inputs.test)
        folder = self.folder / "tuning"

        def build(cfg, workdir, progress, cancelled):
            # Generated training data must leave out the validation pairs as well as the test.
            ctx = self.bench.context(
                workdir=workdir, progress=progress, cancelled=cancelled, held_out=(*test, *val)
            )
            return self.bench.strategy(name, cfg, ctx)

        job = TuningJob(
            label=label,
            base=config,
            trains=bool(get_strategy_class(name).trains),
            fit=fit,
            val=val,
            corpus=self.bench.inputs.corpus,
            build=build,
            workdir=folder / label_folder(label),
            journal=folder / "trials.journal",
            batch_size=self.bench.config.batch_size,
            seed=self.bench.config.split.seed,
            cancelled=self.cancelled,
            emit=lambda ev: self.emit(ProgressEvent.from_dict(ev, strategy=label)),
        )
        self.emit(ProgressEvent("tune", strategy=label, figures={"budget": self.tuning.budget}))
        chosen, record = tune(job, self.tuning)
        self.chosen[name] = chosen
        return chosen, record


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
