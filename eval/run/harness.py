"""The comparison run: one corpus, one split, one base model, every strategy, stored as it goes.

`run_comparison(config)` is the library entry point that the CLI, the worker and the tests
call. It opens a `Workbench` (models and inputs), measures each strategy the same way
(`measurement`), scores its answers (`scoring`) and its general-knowledge answers
(`retention`), and stores each strategy's results as soon as it finishes, so one crashing
strategy never loses the others. Arms run as many at once as the executor measures
(`eval.run.arms`: one after the other here, several on a Ray cluster); scoring and the store
stay in this thread, in the config's order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
from collections.abc import Callable
from typing import Any

from core.engines.base import engine_class
from core.engines.in_process import load_embedder
from core.types import QAPair
from eval.attribution import gold_passages
from eval.config import RunConfig
from eval.events import ProgressEvent, ProgressFn
from eval.judge import attach_verdicts
from eval.records import PreparedRecord, ResultExtras, Retention
from eval.run import scoring
from eval.run.arms import ArmJob, in_order
from eval.run.executor import ArmLost, make_executor
from eval.run.measurement import Arm, Measured, StrategyMeasurement, answer_all
from eval.run.oracle import measure_oracle, oracle_planned
from eval.run.provenance import git_hash, package_versions
from eval.run.resplit import run_resplits
from eval.run.retention import load_general_set, retention, retention_scores
from eval.run.scoring import needs_embedder, needs_judge, score
from eval.run.stamp import InputsChanged, InputStamp
from eval.run.workbench import Workbench
from eval.store.artifacts import Staged, clean_leftovers, label_folder, relocate, run_dir
from eval.store.runs import Run, RunStore
from eval.tuning.arm import ArmTuner, TuningFailed, charge
from strategies import baseline_strategy, get_strategy_class
from strategies.base import RunCancelled

CancelFn = threading.Event | Callable[[], bool] | None


def run_comparison(
    config: RunConfig,
    *,
    store: RunStore | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn = None,
    run_id: str | None = None,
    resume: bool = False,
    owner: str = "",
) -> str:
    """Run every configured strategy over the test split and store the results; returns the id.

    `progress` receives ProgressEvents (eval.events: stage, strategy, done, total...).
    `cancel` (an Event-like object with `is_set()`, or a callable returning True to stop) stops
    the run between batches. Errors in one strategy are stored with
    that strategy and the others still run; errors before any strategy (bad corpus, bad Q/A
    file) mark the run failed and are raised. With `resume`, results already stored as done in
    run `run_id` are kept and not run again (an interrupted run continues), provided the run
    reads the same documents, Q/A file and test questions as before: otherwise InputsChanged
    is raised, naming what changed, and the run is left interrupted. A new run belongs to
    `owner` (core.access; "" = the operator) and records this process as the one running it.
    """
    store = store or RunStore(config.store_path)
    emit = progress or (lambda event: None)
    if run_id:  # created earlier (a queued job) or resumed: running again from now on
        store.set_status(run_id, "running")
    else:
        run_id = store.create_run(config.to_dict(), config.name, owner=owner)
    cancelled = getattr(cancel, "is_set", cancel) or (lambda: False)
    previous = store.get_run(run_id) if resume else None
    try:
        _Comparison(config, store, run_id, emit, cancelled, previous).run()
    except RunCancelled:
        store.finish_run(run_id, "cancelled", "cancelled by the user")
        emit(ProgressEvent("cancelled"))
        return run_id
    except (InputsChanged, ArmLost) as e:  # the run keeps what it had, resumable as before
        store.finish_run(run_id, "interrupted", str(e))
        emit(ProgressEvent("failed", error=str(e)))
        raise
    except Exception as e:
        store.finish_run(run_id, "failed", f"{type(e).__name__}: {e}")
        emit(ProgressEvent("failed", error=str(e)))
        raise
    emit(ProgressEvent("done", run_id=run_id))
    return run_id


def variants(
    name: str, train: list[QAPair], fractions: list[float], seed: int
) -> list[tuple[str, list[QAPair], ResultExtras]]:
    """(label, training pairs, extras) for the main result and each learning-curve point.

    Learning-curve subsets are nested prefixes of one seeded shuffle (25% inside 50% inside 100%),
    so a higher point only ever adds data. Strategies that do not train have no points.
    """
    if not get_strategy_class(name).trains:
        return [(name, train, ResultExtras())]
    out = [(name, train, ResultExtras(train_fraction=1.0, train_pairs=len(train)))]
    order = list(train)
    random.Random(seed).shuffle(order)
    for f in sorted({float(x) for x in fractions}):
        n = max(1, round(f * len(train)))
        extras = ResultExtras(variant_of=name, train_fraction=f, train_pairs=n)
        out.append((f"{name}@{f:.0%}", order[:n], extras))
    return out


class _Comparison:
    """One run's state between strategies: the workbench, what is kept, the retention base."""

    def __init__(self, config, store, run_id, emit, cancelled, previous: Run | None):
        self.config, self.store, self.run_id = config, store, run_id
        self._emit, self._user_cancelled = emit, cancelled
        # Arms running at once report from their own threads; the callback sees one at a time.
        self._emit_lock = threading.RLock()
        # Set when one arm fails beyond its own result: the arms running beside it stop too.
        self.halt = threading.Event()
        # Trials run in this process, on its models and cores (or, on Ray, as Tune trials that
        # take the cluster's CPUs beside the arms): one arm's search at a time.
        self._tuning_lock = threading.Lock()
        self._tuned: dict[str, threading.Event] = {}  # strategy -> its choice is known
        # Resuming keeps what an interrupted run already measured: those results are not redone.
        done = previous.results if previous else []
        # label -> its stored tuning record (None when untuned): the arm's choice stands.
        self.kept = {r.strategy: r.extras.tuning for r in done if r.status == "done"}
        self.retention_base = (
            Retention.from_dict(previous.meta.retention_base) if previous else None
        )
        self.previous = previous
        # Every file a strategy writes goes under this run's own folder (eval.store.artifacts).
        self.folder = run_dir(config.workdir, run_id)
        self.oracle_done = bool(previous and previous.meta.oracle)

    def emit(self, event: ProgressEvent) -> None:
        """Hand `event` to the run's progress callback (from any arm's thread)."""
        with self._emit_lock:
            self._emit(event)

    def cancelled(self) -> bool:
        """Whether the run should stop: the user cancelled it, or another arm failed it."""
        return self.halt.is_set() or self._user_cancelled()

    def run(self) -> None:
        config = self.config
        self.bench = Workbench.open(config, emit=self.emit, cancelled=self.cancelled)
        inputs = self.bench.inputs
        stamp = InputStamp.read(
            inputs.corpus.documents, inputs.qa_file, [p.id for p in inputs.test]
        )
        if self.previous is not None:
            self._check_same_inputs(stamp)
        clean_leftovers(self.folder)  # what a killed attempt of this run was building
        self._store_meta(stamp)
        if not self.bench.inputs.test:
            raise ValueError("the test split is empty: add Q/A pairs or raise test_fraction")
        task = config.task
        self.embedder = (
            load_embedder(config.models) if needs_embedder(config.metrics, task) else None
        )
        self.judge = scoring.load_judge(config) if needs_judge(config.metrics, task) else None
        uses_models = self.bench.models is not None
        self.general = load_general_set(config.retention_questions) if uses_models else []
        self.measurement = StrategyMeasurement(
            config.batch_size,
            self.bench.device,
            config.prices,
            self.emit,
            self.cancelled,
            # On a server engine the generation's CPU is the server's, not this process's.
            remote_answers=not engine_class(config.models.engine).in_process,
        )
        self.executor = make_executor(config, self.bench, self.measurement)
        self.tuner = ArmTuner(
            self.bench,
            self.folder,
            self.emit,
            self.cancelled,
            reuse=self.executor.local_files,
            runner=self.executor.trial_runner,  # Ray Tune trials on a cluster
        )
        try:
            self.store.update_run(self.run_id, executor=self.executor.describe())
            jobs = [
                ArmJob(name, label, train, extras)
                for name in config.strategies
                for label, train, extras in variants(
                    name, self.bench.inputs.train, config.learning_curve, config.split.seed
                )
            ]
            self._tuned = {name: threading.Event() for name in config.strategies}
            self._retention_first(jobs)
            in_order(jobs, self.executor.arms_at_once, self._measure, self._finish, self._failed)
            if (
                uses_models
                and not self.oracle_done
                and oracle_planned(config.strategies, config.verdict.oracle)
            ):
                self._oracle()
            if config.stability.resplits:  # the same strategies on re-drawn splits (resumable)
                run_resplits(self)
        finally:
            self.executor.close()
        self.store.finish_run(self.run_id, "done")

    def _check_same_inputs(self, now: InputStamp) -> None:
        """Raise InputsChanged when a resumed run would read other inputs than it did.

        Runs stored before stamps existed are checked on their test question ids only."""
        meta = self.previous.meta
        then = InputStamp.from_dict(meta.inputs)
        if then is None and meta.split.test_ids:
            then = InputStamp(now.corpus, now.qa_sha256, list(meta.split.test_ids))
        if then is not None:
            then.check_resume(now, self.run_id)

    def _store_meta(self, stamp: InputStamp) -> None:
        meta: dict[str, Any] = {
            "device": self.bench.device,
            "versions": package_versions(),
            "git": git_hash(),
            "batch_size": self.config.batch_size,
        }
        if self.bench.models is not None:
            meta["models"] = self.bench.models
        meta.update(self.bench.inputs.summary())
        meta["inputs"] = stamp.to_dict()
        # Each test question's gold passage, for the attribution cells and the oracle reading.
        inputs = self.bench.inputs
        self.gold = gold_passages(inputs.test, inputs.corpus, inputs.task)
        meta["gold_passages"] = {q: g.to_dict() for q, g in self.gold.items()}
        self.store.update_run(self.run_id, fingerprint=stamp.fingerprint, **meta)

    def _retention_first(self, jobs: list[ArmJob]) -> None:
        """The closed-book reference on the general set, before any arm starts (arms running
        at once all compare with it), when an arm to measure asks those questions."""
        if self.retention_base is not None or not self.general:
            return
        # Variants skip the retention set; kept arms were scored against the stored base.
        if all(job.label in self.kept or job.extras.is_variant for job in jobs):
            return
        if self.cancelled():
            raise RunCancelled
        with Staged(self.folder / ".retention-base") as staged:  # nothing of it is kept
            ctx = self.bench.context(
                workdir=staged.path,
                progress=lambda ev: self.emit(ProgressEvent.from_dict(ev)),
                cancelled=self.cancelled,
                held_out=tuple(self.bench.inputs.test),
            )
            self.retention_base = self._retention_base(ctx)
        self.store.update_run(self.run_id, retention_base=self.retention_base.to_dict())

    def _failed(self, error: BaseException) -> None:
        """One arm raised: a lost worker leaves the arms running beside it to finish (they
        are kept for the resume); anything else stops them."""
        if not isinstance(error, ArmLost):
            self.halt.set()

    def _measure(self, job: ArmJob) -> tuple[Measured, list[QAPair]] | None:
        """Tune and measure one arm (in an arm thread when several run at once); None for
        one kept from before an interruption. A learning-curve point waits for its
        strategy's tuned choice."""
        tuned = self._tuned[job.name]
        if job.extras.is_variant:
            tuned.wait()  # set by the strategy's own arm, which started before this one
            return self._measure_arm(job, None)
        try:
            return self._measure_arm(job, tuned)
        finally:
            tuned.set()  # whatever happened: its variants must not wait forever

    def _measure_arm(
        self, job: ArmJob, tuned: threading.Event | None
    ) -> tuple[Measured, list[QAPair]] | None:
        name, label, train, extras = job.name, job.label, job.train, job.extras
        if label in self.kept:
            if tuned is not None:  # the arm itself (not a variant): its tuned choice stands
                self.tuner.restore(name, self.kept[label])
            return None
        if self.cancelled():
            raise RunCancelled
        # Built in a temporary folder, renamed into place once the strategy is done: a reader
        # never sees half an adapter, and a failed or killed attempt leaves nothing in place.
        with Staged(self.folder / label_folder(label)) as staged:
            # Variants (learning-curve points) skip the retention set: it measures the model
            # a user would deploy, the one trained on all the data.
            asked = self.general if not extras.is_variant else []
            # A variant searches nothing (it takes its strategy's choice): it need not queue.
            searching = contextlib.nullcontext() if extras.is_variant else self._tuning_lock
            try:
                with searching:
                    settings, tuning = self.tuner.settings_for(name, label, train, extras)
            except TuningFailed as e:  # the arm's failure, like one in its preparation
                failed, tuning = e.result()
                self.emit(ProgressEvent("strategy_failed", strategy=label, error=failed.error))
                measured = Measured(failed)
            else:
                if tuned is not None:
                    tuned.set()  # its variants may start while it is measured
                # A trained arm answers with the adapter its chosen trial trained (same data,
                # same settings), not a second training.
                ready = settings and self.tuner.prepared(name, label, settings, staged.path)
                measured = self.executor.evaluate(
                    Arm(name, label, train, asked, staged.path, settings=ready)
                )
                self.tuner.adopt(label, measured.result, settings, tuning)
            if measured.result.status == "done":
                final = staged.publish()
                moved = relocate(measured.result.prepare.to_dict(), staged.path, final)
                measured.result.prepare = PreparedRecord.from_dict(moved)
        # The variant's extras, and where the arm ran (a Ray executor's Placement, else None).
        measured.result.extras = dataclasses.replace(
            extras, placement=measured.result.extras.placement
        )
        if tuning is not None:
            charge(measured.result, tuning, self.bench.device, self.config.prices)
        return measured, asked

    def _finish(self, job: ArmJob, out: tuple[Measured, list[QAPair]] | None) -> None:
        """Score and store one measured arm (in this thread, in the config's order)."""
        label = job.label
        if out is None:
            self.emit(ProgressEvent("strategy_done", strategy=label, status="kept"))
            return
        measured, asked = out
        if measured.result.status == "done":
            self._score(label, measured, asked)
        self.store.save_strategy(self.run_id, measured.result, measured.answers)
        self.emit(ProgressEvent("strategy_done", strategy=label, status=measured.result.status))

    def _score(self, label: str, measured: Measured, asked: list[QAPair]) -> None:
        config = self.config
        resamples, seed = config.bootstrap_resamples, config.split.seed
        self.emit(ProgressEvent("score", strategy=label))
        if self.judge is not None:
            self.judge.progress = lambda done, total: self.emit(
                ProgressEvent("judge", strategy=label, done=done, total=total)
            )
        inputs = self.bench.inputs
        measured.result.metrics = score(
            measured.answers,
            config.metrics,
            self.embedder,
            resamples,
            seed,
            self.judge,
            inputs.groups,  # whole source-passage / near-duplicate groups resampled
            task=inputs.task,
            paraphrases=inputs.paraphrases,
        )
        if self.judge is not None:  # the judge's cost, apart from the strategy's own
            measured.result.extras.judge = attach_verdicts(self.judge, measured.answers)
        if measured.general_answers:
            texts = [a.text for a in measured.general_answers]
            measured.result.extras.retention = retention(
                asked, texts, self.retention_base, resamples, seed
            )

    def _oracle(self) -> None:
        """The run-level oracle reading (each test question with its gold passage), answered
        once, stored with the run and charged to no strategy."""
        if self.cancelled():
            raise RunCancelled
        self.emit(ProgressEvent("oracle"))
        inputs = self.bench.inputs
        ctx = self.bench.context(cancelled=self.cancelled)
        record = measure_oracle(
            self.config,
            ctx,
            inputs.corpus,
            inputs.test,
            self.gold,
            self.embedder,
            inputs.groups,
            counted=lambda done, total: self.emit(ProgressEvent("oracle", done=done, total=total)),
        )
        if record is not None:
            self.store.update_run(self.run_id, oracle=record.to_dict())

    def _retention_base(self, ctx) -> Retention:
        """The closed-book reference strategy's score on the general set, with its defaults."""
        self.emit(ProgressEvent("retention_base", done=0, total=len(self.general)))
        name = baseline_strategy()
        if name is None:
            raise ValueError("no strategy is registered as the closed-book baseline")
        base = self.bench.strategy(name, {}, ctx)
        base.prepare(self.bench.inputs.corpus, [])
        questions = [p.question for p in self.general]
        answers = answer_all(
            base,
            questions,
            self.config.batch_size,
            self.cancelled,
            lambda done, total: self.emit(ProgressEvent("retention_base", done=done, total=total)),
        )
        return retention_scores(
            self.general,
            [a.text for a in answers],
            self.config.bootstrap_resamples,
            self.config.split.seed,
        )
