"""Re-running a comparison on re-drawn train/test splits (config `stability`).

After the run's own split, each of the K re-splits (eval.stats.stability.draw_resplits) is answered
by every strategy again through the run's own measurement and scoring, so its figures are
measured the way the main ones are. Per split and strategy only the metric means and prices
are kept, in the run's metadata under "stability", written after each strategy: a resumed
run keeps the finished ones and does not run them again.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

from core.qa import load_qa
from eval.events import ProgressEvent
from eval.run.groups import paraphrase_groups
from eval.run.measurement import Arm
from eval.run.scoring import score
from eval.stats.stability import (
    ResplitRecord,
    SplitResult,
    StabilityRecord,
    draw_resplits,
    planned,
    resplit_label,
)


def run_resplits(cmp: Any) -> None:
    """Run `cmp` (the harness's _Comparison, its workbench open and its own split done) on
    each re-split and store the means under run meta "stability"."""
    config = cmp.config
    cfg = config.stability
    inputs = cmp.bench.inputs
    pairs = load_qa(inputs.qa_file, inputs.task)
    names = planned(config.strategies, cfg.include_trained)
    previous = StabilityRecord.from_dict(cmp.store.get_run(cmp.run_id).meta.stability)
    kept = {s.k: s for s in (previous.splits if previous else []) if s.seed is not None}
    record = StabilityRecord(
        resplits=int(cfg.resplits),
        include_trained=bool(cfg.include_trained),
        seed=int(config.split.seed),
        strategies=names,
        skipped=[n for n in config.strategies if n not in names],
    )
    for split in draw_resplits(pairs, config.split, cfg.resplits, config.n_test):
        entry = kept.get(split.k)
        if entry is None or entry.seed != split.seed:
            entry = ResplitRecord(split.k, split.seed)
        entry.test_ids = [p.id for p in split.test]  # the rest of the pairs trained
        record.splits.append(entry)
        for name in names:
            done = entry.strategies.get(name)
            if done is not None and done.status == "done":
                continue  # finished before an interruption: kept
            split_inputs = replace(inputs, train=split.train, test=split.test)
            entry.strategies[name] = _one(cmp, name, split, split_inputs)
            cmp.store.update_run(cmp.run_id, stability=record.to_dict())
    cmp.store.update_run(cmp.run_id, stability=record.to_dict())


def _one(cmp: Any, name: str, split: Any, inputs: Any) -> SplitResult:
    """Prepare, answer and score strategy `name` on one re-split; its files are thrown away."""
    label = resplit_label(name, split.k)
    folder = cmp.folder / "resplits" / f"{split.k}-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # Measured by the run's executor (here, or as Ray work), with the settings tuning
        # chose on the run's own split (None: the defaults, or tuning off).
        arm = Arm(name, label, split.train, [], folder, cmp.tuner.chosen.get(name), inputs)
        measured = cmp.executor.evaluate(arm)
        if measured.result.status == "done":
            cmp.emit(ProgressEvent("score", strategy=label))
            measured.result.metrics = score(
                measured.answers,
                cmp.config.metrics,
                cmp.embedder,
                cmp.config.bootstrap_resamples,
                split.seed,
                cmp.judge,
                cmp.bench.inputs.groups,  # group ids cover every pair, whichever the split
                task=inputs.task,
                paraphrases=paraphrase_groups(split.test, cmp.config.split.near_duplicate_jaccard),
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # an adapter per split is not kept
    cmp.emit(ProgressEvent("strategy_done", strategy=label, status=measured.result.status))
    return SplitResult.of(measured.result)
