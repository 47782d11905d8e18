"""Typed records at the seams: cost columns from field metadata, training logs (new and old
storage), and choices declared once on config fields."""

from __future__ import annotations

import math

import pytest

from core.config import ConfigError, ModelConfig
from core.types import PrepareReport, TrainingLog, TrainStep
from eval.records import COST_AXES, COST_COLUMNS, CostSummary, PreparedRecord, training_log
from eval.store.rows import RunMeta
from eval.store.runs import Run, StrategyResult
from eval.views.training import throughput, throughput_rows
from strategies import make_config


def test_cost_columns_come_from_the_summary_fields():
    keys = [c.key for c in COST_COLUMNS]
    assert keys[0] == "prepare_s" and "price_per_1k" in keys and "device" not in keys
    assert all(not c.higher_is_better for c in COST_COLUMNS)
    trainable = next(c for c in COST_COLUMNS if c.key == "trainable_params")
    assert trainable.format(12345) == "12,345" and trainable.format(None) == "—"
    assert set(COST_AXES) == {"prepare_s", "latency_p50_s", "cpu_mean_s", "price_per_1k"}
    summary = CostSummary.from_dict({"prepare_s": 1.5, "not_a_cost": 3})
    assert summary.prepare_s == 1.5 and summary.price_per_1k is None
    assert CostSummary.from_dict(summary.to_dict()) == summary


def _log() -> TrainingLog:
    return TrainingLog(
        steps=3,
        steps_done=2,
        examples=6,
        step_log=[
            TrainStep(1, 2.0, tokens=200, useful_tokens=150, seconds=1.0, peak_memory_mb=900.0),
            TrainStep(2, 1.0, tokens=200, useful_tokens=150, seconds=1.0, peak_memory_mb=950.0),
        ],
        eval_curve=[{"step": 2, "loss": 1.2}],
        best_step=2,
        checkpointing=True,
    )


def test_training_log_read_from_the_typed_record_or_old_details():
    log = _log()
    assert training_log(PreparedRecord.from_dict({"training": log.to_dict()})) == log
    assert training_log(PrepareReport(training=log)) is log
    old = {
        "details": {
            "loss_curve": [2.0, 1.5],
            "eval_loss_curve": [{"step": 2, "loss": 1.4}],
            "best_step": 2,
            "examples": 6,
            "eval_s": 0.5,
        }
    }
    rebuilt = training_log(PreparedRecord.from_dict(old))
    assert rebuilt.losses == [2.0, 1.5] and [s.step for s in rebuilt.step_log] == [1, 2]
    assert rebuilt.best_step == 2 and rebuilt.examples == 6 and rebuilt.eval_s == 0.5
    assert training_log(PrepareReport(details=old["details"])).losses == [2.0, 1.5]
    assert training_log(PreparedRecord(details={"pool_size": 4})) is None
    assert training_log(None) is None


def test_throughput_shows_what_each_log_records():
    def result(name, prepare):
        return StrategyResult(name, "done", prepare=PreparedRecord.from_dict(prepare))

    old = {"details": {"loss_curve": [2.0, 1.0]}}
    run = Run(
        "r",
        "",
        "done",
        0.0,
        None,
        {},
        None,
        RunMeta(),
        None,
        [
            result("new", {"training": _log().to_dict()}),
            result("old", old),
            result("none", {"details": {}}),
        ],
    )
    t = throughput(run).set_index("strategy")
    assert list(t.index) == ["new", "old"]
    assert t.loc["new", "useful_tokens_per_s"] == pytest.approx(150.0)
    assert t.loc["new", "padding_share"] == pytest.approx(0.25)
    assert t.loc["new", "peak_memory_mb"] == 950.0 and t.loc["new", "steps"] == "2/3"
    assert math.isnan(t.loc["old", "useful_tokens_per_s"])
    rows = {r["Strategy"]: r for r in throughput_rows(run)}
    assert rows["new"]["Padding"] == "25%" and rows["new"]["Checkpointing"] == "True"
    assert rows["old"]["Useful tok/s"] == "—" and rows["old"]["Final loss"] == "1.000"


def test_choices_are_declared_once_and_checked():
    assert ModelConfig.choices_of("device") == ("auto", "cpu", "cuda")
    assert ModelConfig.choices_of("generator") is None
    with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda"):
        ModelConfig(device="tpu")
    with pytest.raises(ConfigError, match="backend must be one of"):
        make_config("rag", {"backend": "elastic"})
    with pytest.raises(ConfigError, match="selection must be one of similar, random"):
        make_config("few_shot", {"selection": "best"})
    with pytest.raises(ConfigError, match="index must be one of flat, hnsw"):
        make_config("rag", {"index": "ivf"})
