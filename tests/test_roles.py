"""Roles, not names: a throwaway strategy that trains and retrieves, registered only here,
appears in every view (loss curve, throughput, estimate, break-even, retention, slices, recall,
playground) without any view knowing its name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import strategies
from core.config import option
from core.types import TrainingLog, TrainStep
from eval import views
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from eval.views.tables import render_run
from service.estimate.probe import estimate_run
from service.playground import Playground
from strategies.fake import FakeConfig, FakeStrategy
from strategies.lora import TrainingSettings
from tests.test_harness import make_config

NAME = "scratch"


@dataclass
class ScratchConfig(FakeConfig):
    training: TrainingSettings = option(
        help="Its training schedule.",
        default_factory=lambda: TrainingSettings(batch_size=2, epochs=1.0),
    )
    top_k: int = option(2, "Chunks 'retrieved' per question.")


class ScratchStrategy(FakeStrategy):
    """The fake lookup, claiming to train (a hand-made log) and to retrieve (its sentence)."""

    config_class = ScratchConfig
    uses_models = True  # so the run loads models and measures retention against the baseline
    trains = True
    training_section = "training"
    retrieves = True

    def prepare(self, corpus, train):
        report = super().prepare(corpus, train)
        cfg = self.config.training
        steps = cfg.max_steps or max(1, -(-len(train) // cfg.batch_size))
        report.training = TrainingLog(
            mode="qa",
            steps=steps,
            steps_done=steps,
            examples=len(train),
            step_log=[
                TrainStep(i, 2.0 / i, tokens=100, useful_tokens=80, seconds=0.5)
                for i in range(1, steps + 1)
            ],
            eval_curve=[{"step": steps, "loss": 1.5}],
            best_step=steps,
        )
        return report

    @classmethod
    def retrieval_depth(cls, config):
        return config.get("top_k")


@pytest.fixture
def scratch():
    strategies.register_strategy(NAME)(ScratchStrategy)
    ScratchStrategy.hidden = True
    yield NAME
    strategies.registry._REGISTRY.pop(NAME)


@pytest.fixture
def scratch_run(scratch, mini_corpus, tiny_models, tmp_path):
    baseline = strategies.baseline_strategy()
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=[baseline, scratch],
        strategy_configs={},
        retention_questions=3,
        learning_curve=[0.5],
    )
    store = RunStore(cfg.store_path)
    return cfg, store, run_comparison(cfg, store=store)


def test_roles_come_from_class_attributes_and_the_registry():
    assert strategies.baseline_strategy() in strategies.default_strategies()
    assert "fake" not in strategies.default_strategies()  # hidden test double
    trains = strategies.strategies_with("trains")
    assert trains and all(strategies.get_strategy_class(n).trains for n in trains)
    assert "fake" not in strategies.strategies_with("retrieves")


def test_a_throwaway_strategy_shows_in_every_view(scratch_run):
    cfg, store, run_id = scratch_run
    view = views.RunView.load(store, run_id)
    assert view.run.status == "done"
    assert NAME in views.side_by_side(view).table.index
    loss = views.loss_curves(view)
    assert set(loss[loss.kind == "train"].strategy) == {NAME, f"{NAME}@50%"}
    assert list(loss[loss.best & (loss.strategy == NAME)].step) == [4]  # ceil(7 / 2)
    thr = views.throughput(view.run).set_index("strategy")
    assert thr.loc[NAME, "useful_tokens_per_s"] == pytest.approx(160.0)
    assert thr.loc[NAME, "padding_share"] == pytest.approx(0.2)
    pays = views.break_even(view).pays_off
    assert set(pays.trainer) == {NAME} and NAME not in set(pays.other)
    ret = views.retention_vs_gain(view).set_index("strategy")
    assert ret.loc[NAME, "retention_delta"] == ret.loc[NAME, "retention_delta"]  # not NaN
    slices = views.knowledge_slices(view)
    assert slices.table is not None and NAME in set(slices.table.strategy)
    recall = views.retrieval_recall(view).set_index("strategy")
    assert recall.loc[NAME, "top_k"] == 2
    assert list(views.learning_curve(view).strategy.unique()) == [NAME]
    assert NAME in render_run(view.run).split("Training")[1]


def test_the_throwaway_strategy_in_the_estimate_and_the_playground(scratch_run):
    cfg, store, run_id = scratch_run
    est = {e.strategy: e for e in estimate_run(cfg).strategies}
    assert est[NAME].error is None
    assert "the run trains 4 steps" in est[NAME].prepare_note  # from its TrainingLog
    assert est[NAME].variants_s > 0  # learning-curve points are counted for trainers
    pg = Playground.from_run(store, run_id)
    try:
        assert NAME in pg.strategies
        assert NAME in {a.strategy for a in pg.ask("Where do T cells mature?")}
    finally:
        pg.close()


def test_a_prepare_report_keeps_its_training_log_through_the_store(scratch_run):
    _, store, run_id = scratch_run
    stored = next(r for r in store.get_run(run_id).results if r.strategy == NAME)
    log = stored.prepare.training
    assert log.examples == 7 and log.best_step == 4 and len(log.step_log) == 4
