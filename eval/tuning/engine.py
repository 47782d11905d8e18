"""The Optuna search of one arm: seeded TPE over the config's spaces, scored on validation pairs.

Trials live in a journal file under the run's folder, so a killed run resumes its search: the
finished trials are read back, not run again. The first trial is always the arm's default
settings exactly as configured (an off-grid value such as epochs 1.5 included), which gives the
default-vs-tuned comparison on the same validation pairs. A trained arm reports its validation
loss at each validation point; the pruner (successive halving) stops a bad trial through the
strategy's own cancel hook (`cancelled()` is polled between steps), and the `RunCancelled` it
raises becomes `optuna.TrialPruned`. An untrained arm reports its running validation score after
each batch and is raced against the best finished trial (eval.tuning.racing); its default
answers only as far as a rival needs (a rival answers the default's settings on the pairs it
goes past). A trial that
raises (an out-of-memory at a large rank) is marked failed with its error, and the search goes
on. Settings drawn a second time keep the first trial's outcome instead of another pass, and a
finite space stops its search once every setting has been tried: the system prompt's four
instructions cost four passes, not twelve. The default is replaced only as `tuning.adopt` says
(eval.tuning.evidence). With `keep`, the chosen trial's folder (its adapter) is kept for the arm.
The trials themselves run through a runner: `InProcess` (Optuna's loop here) by default, or
the executor's (service.cluster.ray_tune: Ray Tune trials over the same study); everything
around them (the default first, the budget, the record and the choice) is this module's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import ConfigBase, ConfigError
from core.qa import DEFAULT_JACCARD
from core.tuning_space import Categorical, spaces_of, value_at, with_values
from core.types import Corpus, PrepareReport, QAPair
from eval.metrics import ScoringItem, score_items
from eval.records import Placement, TrialRow, TuningRecord
from eval.stats.intervals import bootstrap_ci
from eval.task_metrics import tuning_metric
from eval.tuning.config import TuningConfig
from eval.tuning.evidence import group_labels, halves, weigh
from eval.tuning.racing import (
    DEFAULT_ATTR,
    MIN_RACE_PAIRS,
    RACE_ATTR,
    RacePruner,
    best_of,
    contenders,
    default_scores,
)
from strategies.base import RunCancelled, Strategy

ProgressFn = Callable[[dict[str, Any]], None]
# (config, work folder, progress sink, cancel poll) -> a strategy ready to prepare.
BuildFn = Callable[[ConfigBase, Path, ProgressFn, Callable[[], bool]], Strategy]


@dataclass
class TuningJob:
    """One arm's search: what it starts from, the pairs it fits and scores on, where it works."""

    label: str
    base: ConfigBase
    trains: bool
    fit: list[QAPair]
    val: list[QAPair]
    corpus: Corpus
    build: BuildFn
    workdir: Path  # trials build here, each in its own folder, removed after the trial
    journal: Path  # Optuna's journal file: the trials so far
    batch_size: int = 8
    seed: int = 0
    cancelled: Callable[[], bool] = lambda: False  # noqa: E731 - never cancelled by default
    emit: ProgressFn = lambda event: None  # noqa: E731 - a no-op sink
    # The trials prepare exactly as the arm will (on all its training pairs, `val` being what
    # the arm holds out itself): the chosen trial's folder is kept for the arm to reuse.
    keep: bool = False
    scheme: str = ""  # which pairs `val` is, in words (eval.tuning.arm.tuning_pairs)
    jaccard: float = DEFAULT_JACCARD  # near-duplicate threshold: the cross-fit halves' groups
    task: Any = None  # the run's core.tasks.TaskSpec: what a validation answer is scored on
    # Filled by `tune` when `keep`: the chosen trial's number, folder and PrepareReport, when
    # this process ran it (a trial of a killed attempt left no report to reuse).
    kept: tuple[int, Path, PrepareReport] | None = None


@dataclass
class Plan:
    """The trials a runner runs of an arm's search: the default trial first, alone, when it
    has not run yet (`default_first`); then `rest()` (asked once the default is done) gives
    how many more trials and the seconds they may take (None: no cap), or None for none.
    `most` bounds the trials of both parts together."""

    default_first: bool
    most: int
    rest: Callable[[], tuple[int, float | None] | None]


class InProcess:
    """Runs an arm's trials in this process, one after the other (Optuna's own loop): the
    default. Another runner (service.cluster.ray_tune's, Ray Tune trials on a cluster) runs
    them elsewhere, writing the same trials into the same study."""

    def search(self, study: Any, objective: Objective, plan: Plan) -> None:
        """Run `plan`'s trials of `study`: the default alone first, then the rest."""
        if plan.default_first:
            study.optimize(objective, n_trials=1, catch=_FAILED)
        after = plan.rest()
        if after is not None:
            n_trials, timeout = after
            study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=_FAILED)

    def fetch(self, job: TuningJob, number: int, prepared: dict[int, PrepareReport]) -> None:
        """Bring kept trial `number`'s folder to `job.workdir` (here: it is there already)."""


def tune(
    job: TuningJob, tuning: TuningConfig, pruner: Any = None, runner: Any = None
) -> tuple[ConfigBase, TuningRecord]:
    """Search `job`'s spaces under `tuning`'s budget; (chosen config, record).

    The chosen config is the default unless the best trial replaces it under `tuning.adopt`
    (by default: only on evidence, eval.tuning.evidence). `pruner` replaces the default one
    (racing for untrained trials, successive halving for trained ones; tests). `runner` runs
    the trials (InProcess by default). A trial's own error fails that trial only; RunCancelled
    from the run propagates; the trials done so far stay in the journal.
    """
    runner = runner or InProcess()
    spaces = spaces_of(type(job.base))
    record = TuningRecord(
        status="tuned",
        budget=tuning.budget,
        metric=tuning_metric(job.task),
        val_pairs=len(job.val),
        validation=job.scheme,
        adopt=tuning.adopt,
    )
    record.space = {path: s.describe() for path, s in spaces.items()}
    record.default = {path: value_at(job.base, path) for path in spaces}
    record.chosen = dict(record.default)
    if not spaces:
        record.status, record.note = "no_space", "no setting of this strategy has a search space"
        return job.base, record
    if len(job.val) < 2:
        record.status = "skipped"
        record.note = f"{len(job.val)} validation pair(s): too few to compare settings on"
        return job.base, record
    t0 = time.perf_counter()
    objective = Objective(job, spaces, tuning.extra_choices)
    budget = tuning.budget_for(job.trains)
    size = objective.size()
    exhaustive = size is not None and size <= budget.n_trials and not objective.off_grid()
    study = _study(job, pruner, exhaustive=exhaustive, rungs=tuning.racing == "rungs")
    # Trials of an earlier, killed attempt were paid for too: their time counts.
    before = sum(t.user_attrs.get("seconds", 0.0) for t in _finished(study))
    import optuna

    default_first = not any(is_default(t) for t in _finished(study))
    if default_first:
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if not waiting:  # a killed run may have left the default queued already
            study.enqueue_trial(objective.default_params(), user_attrs={"default": True})

    short: list[str] = []  # why a trained arm searched nothing after its default

    def rest() -> tuple[int, float | None] | None:
        """The trials after the default, under the budget (its time counted from now)."""
        finished = _finished(study)
        default_s = sum(t.user_attrs.get("seconds", 0.0) for t in finished if is_default(t))
        spent = sum(t.user_attrs.get("seconds", 0.0) for t in finished if not is_default(t))
        left = budget.n_trials - len(finished)
        cap = budget.seconds_after_default(default_s)
        if job.trains and left > 0 and (too := budget.too_short(default_s)) is not None:
            short.append(
                f"no other setting was trained: one training took {_secs(default_s)}, more "
                f"than the {_secs(too)} the '{tuning.budget}' budget gives the search"
            )
            return None
        if left <= 0 or (cap is not None and cap - spent <= 0) or objective.exhausted(finished):
            return None
        timeout = None if cap is None else cap - spent
        # Optuna's timeout only stops new trials; the deadline also stops the running one.
        objective.deadline = None if timeout is None else time.perf_counter() + timeout
        return left, timeout

    most = max(1, budget.n_trials - len(_finished(study)))
    try:
        runner.search(study, objective, Plan(default_first, most, rest))
    finally:
        objective.close()
    reach = len(default_scores(study) or ())
    record.trials = [
        _row(t, reach) for t in study.trials if t.state != optuna.trial.TrialState.RUNNING
    ]
    record.seconds = round(before + time.perf_counter() - t0, 4)
    chosen = _choose(job, study, record, tuning.adopt)
    if short:  # said instead of "no other setting scored higher": none other was tried
        kept = record.note.startswith("default kept")
        record.note = f"default kept: {short[0]}" if kept else f"{record.note}; {short[0]}"
    _keep_chosen(job, objective.prepared, record.chosen_trial, runner)
    return chosen


def _keep_chosen(
    job: TuningJob, prepared: dict[int, PrepareReport], number: int | None, runner: Any
) -> None:
    """Remove every trial folder but the chosen one's, which `job.kept` then names."""
    if not job.keep:
        return
    if number is not None:
        runner.fetch(job, number, prepared)
    folder = job.workdir / f"trial-{number}"
    if number in prepared and folder.is_dir():
        job.kept = (number, folder, prepared[number])
    for other in job.workdir.glob("trial-*") if job.workdir.is_dir() else ():
        if job.kept is None or other != folder:
            shutil.rmtree(other, ignore_errors=True)


def study_name(job: TuningJob) -> str:
    """The arm's study in the journal: its label and which validation pairs, in their order.
    A run resumed by another version that validates on other pairs (or in another order)
    searches afresh instead of mixing trials scored on different pairs."""
    ids = "\n".join(p.id for p in job.val)
    return f"{job.label}@{hashlib.sha256(ids.encode('utf-8')).hexdigest()[:12]}"


def _study(job: TuningJob, pruner: Any, exhaustive: bool = False, rungs: bool = True):
    """The arm's study in the journal: created, or loaded with its trials (a resumed run).

    `exhaustive`: every setting of the space fits the budget, so each is tried once. `rungs`:
    untrained trials also stop at a rung where they are not ahead of the leader (racing).
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = journal_storage(job)
    study = optuna.create_study(
        study_name=study_name(job),
        storage=storage,
        direction="maximize",
        # min_resource "auto" waits for a finished trial to size the rungs, so the default trial
        # set none and the first trial after it could not be pruned: on the sample it trained a
        # whole RAFT run with a validation loss 0.3 above the default's at the first check.
        # Rungs from step 1 make the default's validation points the bar from the start.
        # Untrained trials are raced on their running validation scores; trained ones reported
        # their loss to successive halving.
        pruner=pruner
        or RacePruner(
            optuna.pruners.SuccessiveHalvingPruner(min_resource=1),
            seed=job.seed,
            groups=group_labels(job.val, job.jaccard),  # near-duplicates resampled together
            rungs=rungs,
        ),
        load_if_exists=True,
    )
    # A trial still marked running was killed with the process: it failed and is run anew.
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    # Seeded, and shifted by the trials already done so a resumed search does not redraw them.
    seed = job.seed + len(study.trials)
    if exhaustive:
        # TPE draws a small space with replacement: twelve draws of four system prompts left
        # one untried on the sample. Enumerating them (in a seeded order) tries each once.
        with warnings.catch_warnings():  # experimental in name since 3.1, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = optuna.samplers.BruteForceSampler(seed=seed)
    else:
        study.sampler = optuna.samplers.TPESampler(seed=seed)
    return study


def _finished(study) -> list:
    """Trials done with, those that failed on their own error included (their time was spent,
    their settings tried); not one killed with the process, which is run anew."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False, states=states)
    return [t for t in trials if t.state != TrialState.FAIL or "error" in t.user_attrs]


def is_default(trial) -> bool:
    """Whether `trial` is the one that runs the arm's own settings."""
    return bool(trial.user_attrs.get("default"))


def _row(t, reach: int = 0) -> TrialRow:
    """`t` as the record's row; the default's `answered` counts the pairs rivals answered for
    it too (`reach`)."""
    answered = t.user_attrs.get("answered")
    if is_default(t) and answered is not None:
        answered = max(int(answered), reach)
    return TrialRow(
        number=t.number,
        state=t.state.name.lower(),
        value=None if t.value is None else round(float(t.value), 5),
        values=dict(t.user_attrs.get("values") or {}),
        seconds=round(float(t.user_attrs.get("seconds", 0.0)), 3),
        steps=t.user_attrs.get("steps"),
        default=is_default(t),
        answered=answered,
        error=str(t.user_attrs.get("error", "")),
        placement=Placement.from_dict(t.user_attrs.get("placement")),  # a Ray Tune trial's
    )


def _choose(
    job: TuningJob, study, record: TuningRecord, adopt: str = "evidence"
) -> tuple[ConfigBase, TuningRecord]:
    """The best complete trial's settings when they replace the default under `adopt`
    (eval.tuning.evidence); else the default. Intervals for both, the gains and why."""
    # Every setting once (a redraw repeats one), with its per-pair scores: the default's as
    # far as rivals needed them, which is every pair once a rival answered every pair.
    done = contenders(study)
    default = next((t for t, _ in done if is_default(t)), None)
    if default is None:
        record.status, record.note = "skipped", "the default settings could not be scored"
        return job.base, record
    d_scores = next(s for t, s in done if t is default)
    n = len(d_scores)
    done = [(t, s) for t, s in done if len(s) == n]  # a rival from an older run's journal
    best, b_scores = best_of(done)
    record.best_trial = best.number
    record.chosen_trial = default.number
    val = job.val[:n]
    groups = group_labels(val, job.jaccard)
    record.default_score = bootstrap_ci(d_scores, groups=groups, seed=job.seed)
    record.tuned_score = bootstrap_ci(b_scores, groups=groups, seed=job.seed)
    record.best = {**record.default, **best.user_attrs["values"]}
    candidates = [d_scores] + [s for t, s in done if t is not default]  # the cross-fit's
    split = halves(val, job.jaccard, job.seed)
    evidence = weigh(d_scores, b_scores, candidates, split, seed=job.seed, groups=groups)
    record.gain = evidence.gain
    record.crossfit_gain = evidence.crossfit
    if best is default:
        record.note = "default kept: no other setting scored higher on the validation pairs"
        if n < len(job.val):
            record.note = (
                f"default kept: no other setting stayed ahead of it; it answered {n} of the "
                f"{len(job.val)} validation pairs, as far as the other settings went"
            )
        return job.base, record
    changes = _changes(record.default, record.best)
    gains = (
        f"gain {_shown(evidence.gain)}; on pairs that did not choose it {_shown(evidence.crossfit)}"
    )
    if adopt == "evidence" and not evidence.convincing:
        why = "too few groups to measure it on pairs that did not choose it"
        if evidence.crossfit is not None:
            why = "a 95% lower bound not above 0"
        record.note = f"default kept: the best other setting ({changes}) had {gains}: {why}"
        return job.base, record
    if adopt == "evidence":
        record.note = f"replaced on evidence ({changes}): {gains}, both above 0"
    else:
        record.note = f"replaced by the highest validation score ({changes}): {gains}"
    record.chosen_trial = record.best_trial
    record.chosen = dict(record.best)
    return with_values(job.base, best.user_attrs["values"]), record


def _secs(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds >= 10 else f"{seconds:.2g} s"


def _changes(default: dict[str, Any], chosen: dict[str, Any]) -> str:
    changed = [f"{k}: {_brief(default.get(k))} -> {_brief(v)}" for k, v in chosen.items()]
    return "; ".join(c for c, k in zip(changed, chosen, strict=True) if default.get(k) != chosen[k])


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _shown(interval: Any) -> str:
    if interval is None or interval.mean is None:
        return "not measured"
    return f"{interval.mean:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"


def _extras(
    base: ConfigBase, spaces: dict, extra_choices: dict[str, list[Any]]
) -> dict[str, tuple[Any, ...]]:
    """Each categorical space's values beyond its declared ones: the arm's default and the
    user's extra values (by field name). They must be the same in every trial."""
    extra: dict[str, tuple[Any, ...]] = {}
    for path, space in spaces.items():
        if isinstance(space, Categorical):
            added = list(extra_choices.get(path.rsplit(".", 1)[-1], []))
            extra[path] = (value_at(base, path), *added)
    return extra


def _size(spaces: dict, extra: dict[str, tuple[Any, ...]]) -> int | None:
    """Distinct settings in the whole space; None when a range is continuous."""
    total = 1
    for path, space in spaces.items():
        n = space.count(extra.get(path, ()))
        if n is None:
            return None
        total *= n
    return total


def planned_trials(base: ConfigBase, tuning: TuningConfig, trains: bool) -> int:
    """The most trials `tune` runs for an arm configured as `base`, the default one included:
    the budget's count, or the space's size when smaller; 0 with no space or no budget."""
    spaces = spaces_of(type(base))
    if not tuning.on or not spaces:
        return 0
    size = _size(spaces, _extras(base, spaces, tuning.extra_choices))
    n = tuning.budget_for(trains).n_trials
    return n if size is None else min(n, size)


def repeat_outcome(trial: Any, earlier: Any) -> tuple[Any, float | None]:
    """`repeat` as the Optuna state and value to tell the study (for a runner that tells it
    itself, as Ray Tune's searcher does)."""
    import optuna

    state = optuna.trial.TrialState
    try:
        return state.COMPLETE, repeat(trial, earlier)
    except optuna.TrialPruned:
        return state.PRUNED, None
    except _TrialFailed:
        return state.FAIL, None


def journal_storage(job: TuningJob) -> Any:
    """The Optuna storage of `job`'s journal file (created with its folder)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    job.journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(job.journal)))


class _TrialFailed(Exception):
    """A trial's own error (an out-of-memory, a refused setting), already recorded on it: Optuna
    marks the trial failed and the search goes on."""


_FAILED = (ConfigError, _TrialFailed)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two trials' settings are the same (the default's are its real values)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def same_as(study: Any, values: dict[str, Any]) -> Any:
    """The finished trial of `study` that tried `values` already, or None."""
    finished = _finished(study)
    return next((t for t in finished if _same(t.user_attrs.get("values", {}), values)), None)


def repeat(trial: Any, earlier: Any) -> float:
    """Trial `trial` redrew `earlier`'s settings: TPE redraws small spaces, and a second pass
    over the validation pairs would cost a whole trial and say the same, so the earlier
    outcome stands (its value; _TrialFailed or TrialPruned when it failed or was pruned)."""
    import optuna

    trial.set_user_attr("seconds", 0.0)
    trial.set_user_attr("steps", 0)
    trial.set_user_attr("answered", earlier.user_attrs.get("answered"))
    trial.set_user_attr("repeat_of", earlier.number)
    if earlier.state == optuna.trial.TrialState.FAIL:
        trial.set_user_attr("error", earlier.user_attrs.get("error", ""))
        raise _TrialFailed(f"the settings of failed trial {earlier.number}")
    # Optuna stores a pruned trial's last running score as its value: a repeat of it is
    # pruned too, never a complete trial scored on the few pairs it answered.
    if earlier.state == optuna.trial.TrialState.PRUNED or earlier.value is None:
        raise optuna.TrialPruned(f"the settings of pruned trial {earlier.number}")
    trial.set_user_attr("scores", earlier.user_attrs.get("scores", []))
    return float(earlier.value)


class Objective:
    """One trial: build the arm with the suggested settings, prepare it on the fit pairs,
    answer the validation pairs, return their mean score on the task's tuning metric."""

    def __init__(self, job: TuningJob, spaces: dict, extra_choices: dict[str, list[Any]]):
        self.job, self.spaces = job, spaces
        self.prepared: dict[int, PrepareReport] = {}  # kept trials' reports (job.keep)
        self.deadline: float | None = None  # perf_counter time the budget runs out at
        self.extra = _extras(job.base, spaces, extra_choices)
        self.defaults = {p: value_at(job.base, p) for p in spaces}
        self._default: Strategy | None = None  # the default, prepared to answer for rivals
        self._default_dir: Path | None = None  # its folder (named after the trial needing it)

    def close(self) -> None:
        """Release the default prepared for rivals (its model state and its folder)."""
        if self._default is not None:
            self._default.close()
            self._default = None
        if self._default_dir is not None:
            shutil.rmtree(self._default_dir, ignore_errors=True)

    def draw(self, trial: Any) -> dict[str, Any]:
        """The settings `trial` tries, drawn from the spaces (the default trial: the arm's
        settings as configured, not the grid point standing for them); stored on the trial."""
        values = {
            path: space.suggest(trial, path, self.extra.get(path, ()))
            for path, space in self.spaces.items()
        }
        if is_default(trial):
            values = dict(self.defaults)
        trial.set_user_attr("values", values)
        return values

    def default_params(self) -> dict[str, Any]:
        """The trial parameters that stand for the arm's own settings: the nearest point of
        each space (the default trial itself runs the settings as they are)."""
        return {p: s.param(s.nearest(self.defaults[p])) for p, s in self.spaces.items()}

    def off_grid(self) -> bool:
        """Whether a default lies off its space's grid (epochs 1.5 in 1..3): the trial standing
        for it is not the grid point a brute-force search would count as tried."""
        return any(s.nearest(self.defaults[p]) != self.defaults[p] for p, s in self.spaces.items())

    def size(self) -> int | None:
        """Distinct settings in the whole space; None when a range is continuous."""
        return _size(self.spaces, self.extra)

    def __call__(self, trial) -> float:
        import optuna

        values = self.draw(trial)
        default = is_default(trial)
        earlier = same_as(trial.study, values)
        if earlier is not None and not default:
            return repeat(trial, earlier)
        try:
            config = self.job.base if default else with_values(self.job.base, values)
        except ConfigError as e:  # a combination of values the config refuses
            trial.set_user_attr("error", f"ConfigError: {e}"[:500])
            raise
        watch = _Watch(trial, self.job, self.deadline)
        lead = None if default or self.job.trains else default_scores(trial.study)
        t0 = time.perf_counter()
        try:
            scores = self.score(config, watch, trial.number, default=default, lead=lead)
        except RunCancelled:
            self._spent(trial, watch, t0)
            if self.job.cancelled():  # the run's cancel wins over a prune or the deadline
                raise
            if watch.pruned:
                raise optuna.TrialPruned(f"pruned at step {watch.steps}") from None
            if watch.out_of_time:
                raise optuna.TrialPruned(f"the budget ran out at step {watch.steps}") from None
            raise
        except Exception as e:  # noqa: BLE001 - any trial's own error fails that trial only
            self._spent(trial, watch, t0)
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
            raise _TrialFailed(str(e)) from e
        self._spent(trial, watch, t0)
        trial.set_user_attr("scores", scores)
        return sum(scores) / len(scores)

    @staticmethod
    def _spent(trial, watch: _Watch, t0: float) -> None:
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        trial.set_user_attr("steps", watch.steps)
        trial.set_user_attr("answered", watch.answered)

    def exhausted(self, finished: list) -> bool:
        """Whether the `finished` trials tried every setting of a finite space (a space of one
        setting, or a resumed search): the brute-force sampler stops a search it finishes."""
        size = self.size()
        if size is None:
            return False
        seen = {json.dumps(t.user_attrs.get("values", {}), sort_keys=True) for t in finished}
        return len(seen) >= size + self.off_grid()

    def score(
        self,
        config: ConfigBase,
        watch: Any,
        number: int,
        default: bool = False,
        lead: list[float] | None = None,
    ) -> list[float]:
        """Per-pair validation scores of `config` (the task's tuning metric), prepared in
        `job.workdir/trial-<number>`. `watch` (a _Watch here, a Ray Tune reporter on a cluster)
        hears the running scores and training progress and may stop the trial; RunCancelled when it
        does.

        An untrained arm's `default` trial answers the first rung's pairs only; a rival given
        the default's scores so far (`lead`) answers the default on each pair it reaches
        beyond them before it is raced, and `watch.lead` hears the longer list."""
        job = self.job
        upto = len(job.val)
        if default and not job.trains:
            upto = min(upto, MIN_RACE_PAIRS)
        folder = job.workdir / f"trial-{number}"
        strategy = job.build(config, folder, watch.progress, watch.cancelled)
        try:
            report = strategy.prepare(job.corpus, list(job.fit))
            scores: list[float] = []
            while len(scores) < upto:
                # A trained trial past its training is answered to the end: that was the cost.
                if job.cancelled() or (not job.trains and watch.cancelled()):
                    raise RunCancelled
                batch = job.val[len(scores) : len(scores) + job.batch_size]
                scores += self._answer(strategy, batch)
                watch.answered = len(scores)
                if lead is not None and len(lead) < len(scores):
                    lead = lead + self._as_default(len(lead), len(scores), watch, number)
                    watch.lead(lead)
                if not job.trains and len(scores) < len(job.val):
                    watch.race(scores)  # sets `pruned` when clearly behind the leader
            if job.keep:
                self.prepared[number] = report
            return scores
        finally:
            strategy.close()
            if number not in self.prepared:
                shutil.rmtree(folder, ignore_errors=True)  # adapters and indexes of a trial

    def _answer(self, strategy: Strategy, batch: list[QAPair]) -> list[float]:
        """Each answer's score on the task's tuning metric (F1 for Q/A)."""
        task, metric = self.job.task, tuning_metric(self.job.task)
        answers = strategy.answer([p.question for p in batch])
        items = [
            ScoringItem(a.text, tuple(p.answers), a.contexts, p.question, task=task)
            for a, p in zip(answers, batch, strict=True)
        ]
        return [s or 0.0 for s in score_items(items, [metric])[metric]]

    def _as_default(self, start: int, end: int, watch: Any, number: int) -> list[float]:
        """The default's scores on validation pairs start..end, for rival trial `number` that
        reached them (in the rival's batches: the default's own trial stopped at a batch
        boundary). Prepared once per search here, once per trial on a Ray worker; a folder of
        the rival's own, as Ray trials on one node may share the run's folder."""
        job = self.job
        if self._default is None:
            self._default_dir = job.workdir / f"default-for-trial-{number}"
            self._default = job.build(job.base, self._default_dir, _quiet, job.cancelled)
            self._default.prepare(job.corpus, list(job.fit))
        out: list[float] = []
        while start + len(out) < end:
            if job.cancelled() or watch.cancelled():
                raise RunCancelled
            at = start + len(out)
            out += self._answer(self._default, job.val[at : min(end, at + job.batch_size)])
        return out


def _quiet(event: dict[str, Any]) -> None:
    """The progress sink of the default answering for a rival: its trial's progress shows."""


class _Watch:
    """A trial's progress sink and cancel poll: validation losses go to the pruner, and past
    the budget's deadline the trial is stopped."""

    def __init__(self, trial, job: TuningJob, deadline: float | None = None):
        self.trial, self.job, self.deadline = trial, job, deadline
        self.pruned, self.out_of_time, self.steps = False, False, 0
        self.answered = 0  # validation pairs answered so far

    def lead(self, scores: list[float]) -> None:
        """The default's scores as far as this trial answered them for it (racing reads them)."""
        self.trial.set_user_attr(DEFAULT_ATTR, list(scores))

    def race(self, scores: list[float]) -> None:
        """Report the running validation score (step = pairs answered) with the per-pair
        scores the race pruner compares, and ask whether to stop."""
        self.trial.set_user_attr(RACE_ATTR, list(scores))
        self.trial.report(sum(scores) / len(scores), len(scores))
        self.pruned = self.pruned or self.trial.should_prune()

    def progress(self, event: dict[str, Any]) -> None:
        if isinstance(event.get("step"), int):
            self.steps = max(self.steps, event["step"])
        if event.get("eval_loss") is not None:
            # The study maximises F1, so a loss is reported negated (higher is better).
            self.trial.report(-float(event["eval_loss"]), int(event["step"]))
            self.pruned = self.pruned or self.trial.should_prune()
        self.job.emit(
            {**event, "stage": "tune", "phase": event.get("stage"), "trial": self.trial.number}
        )

    def cancelled(self) -> bool:
        # A trial started just inside the budget would otherwise run a whole training past it.
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.out_of_time = True
        return self.pruned or self.out_of_time or self.job.cancelled()
