"""Dry-run estimate: what a run would ask and roughly how long it would take, from a short probe.

Each strategy is prepared for real where that is cheap (an index, a shots pool) and answers a
few test questions; a strategy that trains runs one training step, and its preparation is that
step's time multiplied by the steps the full run would take. Nothing is stored.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.config import ConfigBase
from eval.config import RunConfig
from eval.records import training_log
from eval.run.retention import load_general_set
from eval.run.workbench import Workbench
from strategies import get_strategy_class, make_config
from strategies.base import StrategyContext


@dataclass
class StrategyEstimate:
    """One strategy's probe and what it predicts for the full run."""

    strategy: str
    prompt_tokens_mean: float  # measured on the probe questions
    seconds_per_question: float  # measured on the probe questions (one batch)
    prepare_s: float
    prepare_note: str  # how prepare_s was obtained
    answer_s: float  # test questions plus the retention set
    variants_s: float  # learning-curve points (training strategies only)
    total_s: float
    error: str | None = None


def _training_section(cfg: ConfigBase) -> ConfigBase | None:
    """The config (itself or a nested part) that holds the training schedule."""
    if hasattr(cfg, "max_steps"):
        return cfg
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, ConfigBase) and hasattr(value, "max_steps"):
            return value
    return None


def _one_step(cfg: ConfigBase) -> ConfigBase:
    """A copy of `cfg` whose training stops after one step (probe)."""
    section = _training_section(cfg)
    if section is None:
        return cfg
    if section is cfg:
        return cfg.replace(max_steps=1)
    field = next(f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is section)
    return cfg.replace(**{field: section.replace(max_steps=1)})


def _planned_steps(cfg: ConfigBase, examples: int) -> int:
    from strategies.training import planned_steps

    section = _training_section(cfg)
    if section is None or examples <= 0:
        return 1
    return planned_steps(examples, section.batch_size, section.epochs, section.max_steps, 1)


def estimate_run(config: RunConfig, probe_questions: int = 4) -> dict[str, Any]:
    """Questions, prompt tokens and expected seconds per strategy, from a short measured probe.

    Returns {"questions", "train", "load_s", "strategies": [StrategyEstimate as dict], "total_s"}.
    Raises ValueError (with the reason) when the inputs cannot be read.
    """
    bench = Workbench.open(config)
    inputs = bench.inputs
    if not inputs.test:
        raise ValueError("the test split is empty: add Q/A pairs or raise test_fraction")
    probe = [p.question for p in inputs.test[: max(1, min(probe_questions, config.batch_size))]]
    uses_models = bench.models is not None
    n_general = len(load_general_set(config.retention_questions)) if uses_models else 0
    with tempfile.TemporaryDirectory(prefix="adaptlab-probe-") as tmp:
        ctx = bench.context(workdir=Path(tmp))
        out = [_probe(bench, name, ctx, probe, n_general) for name in config.strategies]
    return {
        "device": bench.device,
        "questions": len(inputs.test),
        "train": len(inputs.train),
        "retention_questions": n_general,
        "load_s": bench.load_s,
        "strategies": [asdict(e) for e in out],
        "total_s": bench.load_s + sum(e.total_s for e in out),
    }


def _probe(
    bench: Workbench, name: str, ctx: StrategyContext, probe: list[str], n_general: int
) -> StrategyEstimate:
    """One strategy prepared (one training step if it trains) and timed on the probe."""
    config, inputs = bench.config, bench.inputs
    trains = get_strategy_class(name).trains
    cfg = make_config(name, config.strategy_configs.get(name))
    strategy = bench.strategy(name, _one_step(cfg) if trains else cfg, ctx)
    try:
        t = time.perf_counter()
        report = strategy.prepare(inputs.corpus, inputs.train)
        prep = time.perf_counter() - t
        t = time.perf_counter()
        answers = strategy.answer(probe)
        per_q = (time.perf_counter() - t) / len(probe)
    except Exception as e:  # the estimate reports a strategy's problem, the run would too
        return StrategyEstimate(name, 0, 0, 0, "", 0, 0, 0, f"{type(e).__name__}: {e}")
    finally:
        strategy.close()
    note, variants_s = "measured", 0.0
    log = training_log(report)
    if trains:
        steps = _planned_steps(cfg, log.examples if log else 0)
        # The probe also ran one validation pass; count it once, not once per step.
        eval_s = log.eval_s if log else 0.0
        step_s = max(prep - eval_s, 0.0)
        note = f"1 training step took {step_s:.1f} s; the run trains {steps} steps"
        prep = step_s * steps + eval_s
        curve = config.learning_curve
        variants_s = sum(prep * f for f in curve) + per_q * len(inputs.test) * len(curve)
    answer_s = per_q * (len(inputs.test) + n_general)
    return StrategyEstimate(
        strategy=name,
        prompt_tokens_mean=sum(a.cost.prompt_tokens for a in answers) / len(answers),
        seconds_per_question=per_q,
        prepare_s=prep,
        prepare_note=note,
        answer_s=answer_s,
        variants_s=variants_s,
        total_s=prep + answer_s + variants_s,
    )
