"""Dry-run estimate: what a run would ask and roughly how long it would take, from a short probe.

It runs in the background worker (job kind "estimate"), where the models stay loaded for the
run that follows. Each strategy answers one batch of test questions of the run's batch size, as
the run will, after one untimed warm-up generation (the first call of a process is slow and
would be charged to whichever strategy came first). A strategy that trains runs one training
step, multiplied by the steps the full run takes; the others prepare on a sample of the corpus
and training pairs (at most PREPARE_SAMPLE of each), scaled up to the full size. With a
tuning budget, each strategy's search is counted from the same figures: its trials prepare as
it does and answer the validation pairs, within the budget's trials and seconds. Nothing is
stored; the app stores the estimate with the run it launches, and History compares the two.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from core.config import ConfigBase, ConfigError
from core.engines.in_process import load_generator
from core.types import Corpus
from eval.config import RunConfig
from eval.events import ProgressEvent, ProgressFn
from eval.records import training_log
from eval.run.executor import EXECUTORS
from eval.run.inputs import Inputs, needs_models
from eval.run.oracle import oracle_planned
from eval.run.retention import load_general_set
from eval.run.workbench import Workbench
from eval.tuning.arm import tuning_pairs
from eval.tuning.engine import planned_trials
from eval.tuning.racing import expected_answers
from service.cluster.plan import ClusterShape, placement_plan, plan_line
from service.cluster.ray_executor import connect
from service.cluster.storage import check_reachable
from service.estimate.records import Estimate, StrategyEstimate
from service.estimate.reuse import ProbeCache, ProbeMeasure, models_key, probe_key
from strategies import get_strategy_class, make_config
from strategies.base import StrategyContext
from strategies.lora.loop import planned_steps


def _one_step(name: str, cfg: ConfigBase) -> ConfigBase:
    """A copy of strategy `name`'s `cfg` whose training stops after one step (probe)."""
    cls = get_strategy_class(name)
    section = cls.training_settings(cfg)
    return cfg if section is None else cls.with_training(cfg, section.replace(max_steps=1))


def _planned_steps(name: str, cfg: ConfigBase, examples: int) -> int:

    section = get_strategy_class(name).training_settings(cfg)
    if section is None or examples <= 0:
        return 1
    return planned_steps(examples, section.batch_size, section.epochs, section.max_steps, 1)


PREPARE_SAMPLE = 48  # chunks and training pairs a strategy that does not train prepares on
SAMPLED_NOTE_S = 0.5  # below this a sampled preparation is of no consequence: just "measured"
# One LoRA step (batch 4 x 256 tokens) took 5.6 s on the 2-core CPU this was built on (measured
# once, not recorded in the repository); the rough figure offered before any probe has run.
CPU_STEP_S = 6.0


def training_seconds(config: RunConfig, name: str, n_train: int) -> float | None:
    """A rough training time for strategy `name` before any probe: its planned steps on
    `n_train` pairs times CPU_STEP_S, learning-curve points included. None if it does not
    train."""
    if not get_strategy_class(name).trains:
        return None
    cfg = make_config(name, config.strategy_configs.get(name))
    steps = _planned_steps(name, cfg, n_train)
    return steps * CPU_STEP_S * (1 + sum(config.learning_curve))


def tuning_seconds(
    config: RunConfig, name: str, cfg: ConfigBase, train: list, trial_prepare_s: float, per_q: float
) -> tuple[float, str]:
    """What searching strategy `name`'s settings (`cfg`) under the run's tuning budget adds
    to its preparation, and how that was counted ("" when nothing is searched).

    Every trial prepares as the arm does (`trial_prepare_s`) and answers the validation pairs
    (`per_q` each); the trials after the default one stop at the budget's seconds cap. For an
    arm that does not train, racing's rungs stop a trial not ahead of the leader at 16, 48,
    144... pairs: counted as going on past each rung half the time (eval.tuning.racing), and
    its default, which answers only as far as a rival needs, as answering as much as one of
    them. An arm that validates on pairs of its own answers with its default trial's training
    when that is kept, so that training is not counted twice."""

    kind = get_strategy_class(name)
    tuning = config.tuning
    trials = planned_trials(cfg, tuning, kind.trains)
    if not trials:
        return 0.0, ""
    split = config.split
    pairs = tuning_pairs(
        kind, cfg, train, tuning.val_fraction, split.seed, split.near_duplicate_jaccard
    )
    n_val, own = len(pairs.val), pairs.own
    if n_val < 2:  # the search is skipped: too few pairs to compare settings on
        return 0.0, ""
    trial_s = trial_prepare_s + per_q * n_val
    reused = own and EXECUTORS[config.executor.kind].carries_files(config)
    note = f"tuning: up to {trials} trials on {n_val} validation pairs"
    if not kind.trains and tuning.racing == "rungs":
        answers = expected_answers(n_val)
        trial_s = trial_prepare_s + per_q * answers
        note += f" (about {answers:.0f} answers a trial, the default's included: racing)"
    rest = (trials - 1) * trial_s
    budget = tuning.budget_for(kind.trains)
    cap = budget.seconds_after_default(trial_s)
    if cap is not None:
        rest = min(rest, cap)
    if kind.trains and budget.too_short(trial_s) is not None:
        rest = 0.0  # one more training would not fit: the search stops at the default
        note += "; its training is longer than the budget's cap, so only the default runs"
    first = per_q * n_val if reused else trial_s
    return first + rest, note


def estimate_run(
    config: RunConfig,
    probe_questions: int | None = None,
    progress: ProgressFn | None = None,
    reuse: bool = True,
) -> Estimate:
    """Questions, prompt tokens and expected seconds per strategy, from a short measured probe.

    `probe_questions` defaults to the run's batch size (what one batch of the run holds);
    `progress` receives ProgressEvent("probe", strategy, done, total) events. With `reuse`, a
    strategy probed before on this machine with the same models, settings and input files
    (service.estimate.reuse) is not probed again: its measurement is taken from the cache
    beside the store, and the models are loaded only when something is probed.
    Raises ValueError (with the reason) when the inputs cannot be read.
    """
    emit = progress or (lambda event: None)
    cache = ProbeCache(config.store_path) if reuse else None
    settings = {
        n: make_config(n, config.strategy_configs.get(n)).to_dict() for n in config.strategies
    }
    keys = {n: probe_key(config, n, settings[n]) for n in config.strategies}
    known = {}
    if cache is not None:
        known = {n: m for n in config.strategies if (m := cache.get(keys[n])) is not None}
    to_probe = [n for n in config.strategies if n not in known]
    bench = Workbench.open(config, strategies=to_probe, emit=emit)
    inputs = bench.inputs
    if not inputs.test:
        raise ValueError("the test split is empty: add Q/A pairs or raise test_fraction")
    size = probe_questions or config.batch_size
    probe = [p.question for p in inputs.test[: max(1, min(size, config.batch_size))]]
    uses_models = needs_models(config.strategies)
    n_general = len(load_general_set(config.retention_questions)) if uses_models else 0
    load_key = models_key(config)
    load_s = bench.load_s
    if bench.models is not None:
        _warm_up(bench)
    elif uses_models and cache is not None:  # nothing probed: loading as measured before
        load_s = cache.load_s(load_key) or 0.0
    out, fresh = [], {}
    with tempfile.TemporaryDirectory(prefix="adaptlab-probe-") as tmp:
        ctx = bench.context(workdir=Path(tmp))
        for i, name in enumerate(config.strategies):
            emit(ProgressEvent("probe", strategy=name, done=i, total=len(config.strategies)))
            measure = known.get(name)
            if measure is None:
                measure = _measure(bench, name, ctx, probe)
                if isinstance(measure, str):  # the strategy's problem, reported as the run would
                    out.append(StrategyEstimate(name, error=measure))
                    continue
                fresh[keys[name]] = measure
            out.append(_derive(config, inputs, name, measure, n_general, name in known))
    if cache is not None and (fresh or bench.models is not None):
        cache.put(fresh, (load_key, load_s) if bench.models is not None else None)
    oracle_s = oracle_seconds(config, out, len(inputs.test)) if uses_models else 0.0
    return Estimate(
        device=bench.device,
        questions=len(inputs.test),
        train=len(inputs.train),
        retention_questions=n_general,
        load_s=load_s,
        strategies=out,
        total_s=load_s + sum(e.total_s for e in out) + oracle_s,
        cluster=cluster_line(config),
        oracle_s=oracle_s,
        reused=[n for n in config.strategies if n in known],
    )


def cluster_line(config: RunConfig) -> str:
    """Where a Ray run's arms would go, in one line ("" for a local run): each arm's CPUs and
    GPUs, the cluster's, the storage; or why the cluster cannot take the run."""
    if config.executor.kind != "ray":
        return ""
    try:
        ray = connect(config.executor.address, config.executor)
        shape = ClusterShape.of(ray)
        check_reachable(config.executor.storage, len(shape.nodes))
    except (ImportError, ConfigError, ConnectionError) as e:
        return f"Ray: {e}"
    return plan_line(placement_plan(config.executor, config.strategies, shape))


def _warm_up(bench: Workbench) -> None:
    """One tiny untimed generation: the first of a process pays one-off set-up costs."""

    load_generator(bench.config.models).generate(
        [[{"role": "user", "content": "Hello"}]], max_new_tokens=2
    )


def _sample(corpus: Corpus, train: list, n: int) -> tuple[Corpus, list, float]:
    """The first `n` chunks and pairs, and by how much to scale a time measured on them."""
    chunks, pairs = corpus.chunks[:n], train[:n]
    scale = max(len(corpus.chunks) / max(1, len(chunks)), len(train) / max(1, len(pairs)), 1.0)
    small = dataclasses.replace(corpus, chunks=chunks, fingerprint=f"{corpus.fingerprint}-probe")
    return small, pairs, scale


def _measure(
    bench: Workbench, name: str, ctx: StrategyContext, probe: list[str]
) -> ProbeMeasure | str:
    """One strategy prepared (one training step if it trains, a sample of the corpus and pairs
    if not) and timed on one batch of the probe questions; the error as text if it fails."""
    config, inputs = bench.config, bench.inputs
    trains = get_strategy_class(name).trains
    cfg = make_config(name, config.strategy_configs.get(name))
    strategy = bench.strategy(name, _one_step(name, cfg) if trains else cfg, ctx)
    corpus, train, scale = inputs.corpus, inputs.train, 1.0
    if not trains:
        corpus, train, scale = _sample(inputs.corpus, inputs.train, PREPARE_SAMPLE)
    try:
        t = time.perf_counter()
        report = strategy.prepare(corpus, train)
        prep = (time.perf_counter() - t) * scale
        t = time.perf_counter()
        answers = strategy.answer(probe)
        per_q = (time.perf_counter() - t) / len(probe)
    except Exception as e:  # the estimate reports a strategy's problem, the run would too
        return f"{type(e).__name__}: {e}"
    finally:
        strategy.close()
    measure = ProbeMeasure(
        per_q=per_q,
        prompt_tokens_mean=sum(a.cost.prompt_tokens for a in answers) / len(answers),
        scale=scale,
        measured_at=time.time(),
    )
    if not trains:
        measure.prepare_s = prep
        return measure
    log = training_log(report)
    # The probe also ran one validation pass; counted once, not once per step.
    measure.eval_s = log.eval_s if log else 0.0
    measure.step_s = max(prep - measure.eval_s, 0.0)
    measure.examples = log.examples if log else 0
    return measure


def _derive(
    config: RunConfig, inputs: Inputs, name: str, m: ProbeMeasure, n_general: int, reused: bool
) -> StrategyEstimate:
    """What strategy `name` would take in the run of `config`, from its probe measurement."""
    trains = get_strategy_class(name).trains
    cfg = make_config(name, config.strategy_configs.get(name))
    per_q, variants_s = m.per_q, 0.0
    if trains:
        steps = _planned_steps(name, cfg, m.examples)
        note = f"1 training step took {m.step_s:.1f} s; the run trains {steps} steps"
        prep = m.step_s * steps + m.eval_s
        curve = config.learning_curve
        variants_s = sum(prep * f for f in curve) + per_q * len(inputs.test) * len(curve)
    else:
        prep = m.prepare_s
        sampled = m.scale > 1 and prep > SAMPLED_NOTE_S
        note = f"measured on a sample, scaled {m.scale:.1f}x" if sampled else "measured"
    if reused:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.measured_at))
        note = f"{note} (reused: probed {when} on this machine, same models and settings)"
    answer_s = per_q * (len(inputs.test) + n_general)
    rerun = config.stability.include_trained or not trains
    # Re-splits and learning-curve points reuse the tuned settings: no search of their own.
    resplits_s = config.stability.resplits * (prep + per_q * len(inputs.test)) if rerun else 0.0
    tune_s, tune_note = tuning_seconds(config, name, cfg, inputs.train, prep, per_q)
    if tune_s:
        prep += tune_s  # a run counts its tuning in the arm's preparation too
        note = f"{note}; {tune_note}"
    return StrategyEstimate(
        strategy=name,
        prompt_tokens_mean=m.prompt_tokens_mean,
        seconds_per_question=per_q,
        prepare_s=prep,
        prepare_note=note,
        tuning_s=tune_s,
        answer_s=answer_s,
        variants_s=variants_s,
        total_s=prep + answer_s + variants_s + resplits_s,
        resplits_s=resplits_s,
    )


def oracle_seconds(config: RunConfig, measured: list[StrategyEstimate], n_test: int) -> float:
    """The oracle reading's time: every test question read with one gold passage, priced at
    the slowest measured retrieving strategy's seconds per question (its prompts are laid out
    the same way, with more passages); 0 when the run reads no oracle."""
    if not oracle_planned(config.strategies, config.verdict.oracle):
        return 0.0
    per_q = [
        e.seconds_per_question
        for e in measured
        if not e.error and get_strategy_class(e.strategy).retrieves
    ]
    return max(per_q, default=0.0) * n_test
