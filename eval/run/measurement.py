"""Measuring one strategy the same way as every other: prepare and answer, timed and sampled
for memory, latency charged per question; a failure becomes a failed result, not a crash."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigBase, PriceTable
from core.types import Answer, PrepareReport, QAPair
from eval.events import ProgressEvent, ProgressFn
from eval.records import PreparedRecord
from eval.run.contention import CpuSample, cpu_clock
from eval.run.costs import Measurement, measure, summarize_costs
from eval.run.inputs import Inputs
from eval.run.workbench import Workbench
from eval.store.runs import StoredAnswer, StrategyResult
from strategies import Strategy
from strategies.base import RunCancelled


def answer_all(
    strategy: Strategy,
    questions: list[str],
    batch_size: int,
    cancelled: Callable[[], bool],
    counted: Callable[[int, int], None] | None = None,
) -> list[Answer]:
    """Every question answered in batches of `batch_size`, checking `cancelled` between them;
    `counted(done, total)` is told after each batch (progress)."""
    out: list[Answer] = []
    for start in range(0, len(questions), batch_size):
        if cancelled():
            raise RunCancelled
        out.extend(strategy.answer(questions[start : start + batch_size]))
        if counted is not None:
            counted(len(out), len(questions))
    return out


def prepare_record(
    report: PrepareReport, m: Measurement, cpu: CpuSample | None = None
) -> PreparedRecord:
    """The stored preparation: what the strategy reported, its typed training log, and the
    time, memory and CPU the harness measured around it."""
    return PreparedRecord(
        trainable_params=report.trainable_params,
        artifact_bytes=report.artifact_bytes,
        artifact_path=report.artifact_path,
        details=report.details,
        training=report.training,
        seconds=m.seconds,
        cpu=cpu.to_dict() if cpu is not None else None,
        peak_rss_mb=m.peak_rss_mb,
        added_rss_mb=m.added_rss_mb,
        peak_gpu_mb=m.peak_gpu_mb,
    )


@dataclass
class Measured:
    """One strategy's outcome: its stored result, its stored answers, and its answers to the
    general-knowledge questions (scored for retention by the caller)."""

    result: StrategyResult
    answers: list[StoredAnswer] = field(default_factory=list)
    general_answers: list[Answer] = field(default_factory=list)


@dataclass
class StrategyMeasurement:
    """How every strategy of a run is measured: batch size, device, prices, progress, cancel."""

    batch_size: int
    device: str
    prices: PriceTable
    emit: ProgressFn
    cancelled: Callable[[], bool]
    remote_answers: bool = False  # a model server generates: answering contention is unknown

    def evaluate(
        self,
        strategy: Strategy,
        label: str,
        inputs: Inputs,
        train: list[QAPair],
        general: list[QAPair] = (),
    ) -> Measured:
        """Prepare `strategy` on `train`, answer the test split (then `general`, not charged to
        its latency), and return it all under `label`. The strategy is closed afterwards."""
        result = StrategyResult(label, "failed", strategy.config.to_dict())
        answers: list[Answer] = []
        general_answers: list[Answer] = []
        try:
            self.emit(ProgressEvent("prepare", strategy=label))
            with measure(self.device) as prep, cpu_clock() as prep_cpu:
                report = strategy.prepare(inputs.corpus, train)
            result.prepare = prepare_record(report, prep, prep_cpu)
            answers, answering, answer_cpu = self._answer_test(strategy, label, inputs.test)
            result.cost = summarize_costs(
                answers, result.prepare, answering, self.device, self.prices, answer_cpu
            )
            if general:
                questions = [p.question for p in general]
                self.emit(ProgressEvent("retention", strategy=label, done=0, total=len(general)))

                def counted(done: int, total: int) -> None:
                    self.emit(ProgressEvent("retention", strategy=label, done=done, total=total))

                general_answers = answer_all(
                    strategy, questions, self.batch_size, self.cancelled, counted
                )
            result.status = "done"
        except RunCancelled:
            raise
        except Exception as e:
            result.error = f"{type(e).__name__}: {e}"
            if result.prepare.traceback is None:
                result.prepare.traceback = traceback.format_exc(limit=8)
            self.emit(ProgressEvent("strategy_failed", strategy=label, error=result.error))
            answers, general_answers = [], []
        finally:
            with contextlib.suppress(Exception):  # closing must never hide the outcome
                strategy.close()
        stored = [
            StoredAnswer(label, p.id, p.question, list(p.answers), a)
            for p, a in zip(inputs.test, answers, strict=False)
        ]
        return Measured(result, stored, general_answers)

    def _answer_test(
        self, strategy: Strategy, label: str, test: list[QAPair]
    ) -> tuple[list[Answer], Measurement, CpuSample]:
        questions = [p.question for p in test]
        total, answers = len(questions), []
        self.emit(ProgressEvent("answer", strategy=label, done=0, total=total))
        with measure(self.device) as answering, cpu_clock(self.remote_answers) as answer_cpu:
            for start in range(0, total, self.batch_size):
                if self.cancelled():
                    raise RunCancelled
                batch = questions[start : start + self.batch_size]
                t0, c0 = time.perf_counter(), time.process_time()
                got = strategy.answer(batch)
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                if len(got) != len(batch):
                    raise RuntimeError(f"{label} returned {len(got)} answers for {len(batch)}")
                # Batched generation: each question is charged an equal share of the batch.
                for a in got:
                    a.cost.latency_s = elapsed / len(batch)
                    a.cost.cpu_s = cpu / len(batch)
                answers.extend(got)
                self.emit(ProgressEvent("answer", strategy=label, done=len(answers), total=total))
        return answers, answering, answer_cpu


@dataclass
class Arm:
    """One strategy (or learning-curve point) to measure: what to build, on which training
    pairs, which general questions it also answers, and the folder its files go to."""

    name: str
    label: str
    train: list[QAPair]
    general: list[QAPair] = field(default_factory=list)
    workdir: Path = Path(".")
    settings: ConfigBase | None = None  # tuned settings (eval.tuning.arm); None: the defaults
    inputs: Inputs | None = None  # a re-split's own train/test (eval.run.resplit); None: the run's


def measure_arm(
    bench: Workbench, measurement: StrategyMeasurement, arm: Arm, inputs: Inputs
) -> Measured:
    """`arm` built and measured in this process on `inputs` (whichever process runs it)."""
    ctx = bench.context(
        workdir=arm.workdir,
        progress=lambda ev: measurement.emit(ProgressEvent.from_dict(ev, strategy=arm.label)),
        cancelled=measurement.cancelled,
        held_out=tuple(inputs.test),
    )
    strategy = bench.strategy(arm.name, arm.settings, ctx)
    return measurement.evaluate(strategy, arm.label, inputs, arm.train, arm.general)
