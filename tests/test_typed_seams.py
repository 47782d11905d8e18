"""Typed records at the seams: runs stored before the records still open, the records keep the
stored JSON shapes, and no `dict[str, Any]` crosses from eval/ into the views or the UI."""

from __future__ import annotations

import json
import math

import pytest

from eval.judge import JudgeCost
from eval.records import (
    CostSummary,
    Placement,
    PreparedRecord,
    ResultExtras,
    Retention,
    TrialRow,
    TuningRecord,
)
from eval.stats.intervals import Interval
from eval.store.db import connect
from eval.store.runs import RunStore
from eval.views import RunView, learning_curve, quality_vs_cost, retention_vs_gain, throughput
from eval.views.display import cost_table
from eval.views.judge import judge_costs
from eval.views.tables import run_summary

# Rows as stores wrote them before the records existed: costs without the CPU figures, a
# training curve in `details` (no `training` key), extras with only the kinds present.
OLD_ROWS = [
    (
        "lora",
        {"trainable_params": 1000, "artifact_bytes": 2048, "artifact_path": "/x/lora",
         "details": {"loss_curve": [2.0, 1.5, 1.0]}, "seconds": 12.0, "peak_rss_mb": 900.0,
         "added_rss_mb": 10.0, "peak_gpu_mb": None},
        {"device": "cpu", "prepare_s": 12.0, "latency_p50_s": 0.2, "latency_mean_s": 0.25,
         "price_prepare": 0.5, "price_per_1k": 0.02, "currency": "EUR", "gone_column": 7},
        {"train_fraction": 1.0, "train_pairs": 8,
         "retention": {"metric": "contains", "n": 4, "score": {"mean": 0.5, "low": 0.2,
                       "high": 0.8, "n": 4}, "base": {"mean": 0.75}, "delta": -0.25},
         "judge": {"model": "j", "verdicts": 3, "prompt_tokens": 30}},
    ),
    (
        "lora@50%",
        {"details": {}, "seconds": 6.0},
        {"prepare_s": 6.0, "price_prepare": 0.25, "price_per_1k": 0.02},
        {"variant_of": "lora", "train_fraction": 0.5, "train_pairs": 4},
    ),
    ("system_prompt", {}, {"prepare_s": 0.0, "price_prepare": 0.0, "price_per_1k": 0.05}, {}),
]  # fmt: skip


@pytest.fixture
def old_store(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"strategies": ["lora", "system_prompt"]}, "old")
    metrics = {"f1": {"mean": 0.4, "low": 0.3, "high": 0.5, "n": 4}}
    with connect(store.path) as c:
        for pos, (name, prepare, cost, extras) in enumerate(OLD_ROWS):
            c.execute(
                "INSERT INTO strategy_results (run_id, strategy, position, status, config_json, "
                "prepare_json, cost_json, metrics_json, error, extras_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, name, pos, "done", "{}", json.dumps(prepare), json.dumps(cost),
                 json.dumps(metrics), None, json.dumps(extras)),
            )  # fmt: skip
    store.finish_run(run_id, "done")
    return store, run_id


def test_a_run_stored_before_the_records_opens_in_the_store_and_the_views(old_store):
    store, run_id = old_store
    lora, variant, plain = store.get_run(run_id).results
    assert lora.cost.prepare_s == 12.0 and lora.cost.cpu_mean_s is None
    assert lora.prepare.trained and lora.prepare.training is None
    assert lora.extras.judge == JudgeCost("j", verdicts=3, prompt_tokens=30)
    assert lora.extras.retention.delta == -0.25 and lora.extras.retention.forgotten == []
    assert variant.extras.is_variant and not plain.prepare.trained
    assert plain.extras == ResultExtras() and plain.prepare.seconds is None

    view = RunView.load(store, run_id)
    assert [r.strategy for r in view.main] == ["lora", "system_prompt"]
    assert view.currency() == "EUR"
    assert list(throughput(view.run).strategy) == ["lora"]  # the curve read from `details`
    curve = learning_curve(view, "f1")
    assert list(curve.train_pairs) == [4, 8]
    ret = retention_vs_gain(view, "f1").set_index("strategy")
    assert ret.loc["lora", "retention_base"] == 0.75
    assert math.isnan(ret.loc["system_prompt", "retention_delta"])
    assert set(quality_vs_cost(view, "f1", "prepare_s").strategy) == {"lora", "system_prompt"}
    assert list(cost_table(view, 1000, 12).frame.price_per_1k) == [0.02, 0.05]
    assert judge_costs(view.run) == {"lora": JudgeCost("j", verdicts=3, prompt_tokens=30)}
    summary = run_summary(view.run)["strategies"]
    assert summary["lora"]["judge_cost"]["verdicts"] == 3
    assert summary["lora"]["cost"]["latency_p50_s"] == 0.2  # `--json` keeps the cost dict


def test_the_export_keeps_the_stored_json_shapes(old_store):
    store, run_id = old_store
    exported = {r["strategy"]: r for r in json.loads(store.export_json(run_id))["results"]}
    assert exported["lora@50%"]["extras"] == OLD_ROWS[1][3]  # only the kinds present
    assert exported["system_prompt"]["extras"] == {}
    lora = exported["lora"]
    assert lora["prepare"]["details"] == {"loss_curve": [2.0, 1.5, 1.0]}
    assert lora["prepare"]["seconds"] == 12.0 and "traceback" not in lora["prepare"]
    assert lora["cost"]["prepare_s"] == 12.0 and "gone_column" not in lora["cost"]
    assert set(lora["cost"]) == set(CostSummary().to_dict())
    assert lora["extras"]["retention"]["delta"] == -0.25


def test_records_round_trip_through_the_store(tmp_path):
    from eval.store.runs import StrategyResult

    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({}, "new")
    result = StrategyResult(
        "rag",
        "done",
        {"top_k": 3},
        PreparedRecord(artifact_bytes=10, seconds=1.0, cpu={"wall_s": 1.0, "contended": False}),
        CostSummary(prepare_s=1.0, contended=False),
        {"f1": Interval(0.5, 0.4, 0.6, 2)},
        extras=ResultExtras(
            judge=JudgeCost("j", 2),
            retention=Retention(
                n=2, score=Interval(1.0, 1.0, 1.0, 2), base=Interval(0.5), delta=0.5
            ),
            tuning=TuningRecord(
                "tuned",
                "quick",
                space={"top_k": "integer 1..8"},
                default={"top_k": 3},
                chosen={"top_k": 5},
                gain=Interval(0.1, -0.05, 0.2, 4),
                trials=[
                    TrialRow(0, "complete", 0.4, {"top_k": 3}, 1.5, default=True),
                    # A Ray Tune trial: where it ran comes back typed.
                    TrialRow(1, "pruned", 0.2, {"top_k": 5}, 0.7, placement=Placement(cpus=2)),
                ],
            ),
            placement=Placement(node="n1", pid=7, device="cuda", gpus=["0"], overhead_s=0.2),
        ),
    )
    store.save_strategy(run_id, result)
    assert store.get_run(run_id).results == [result]
    store.update_extras(run_id, "rag", judge=JudgeCost("k", 5))
    again = store.get_run(run_id).results[0].extras
    assert again.judge == JudgeCost("k", 5) and again.retention == result.extras.retention
    assert again.tuning == result.extras.tuning and again.tuning.changed == {"top_k": 5}
    with pytest.raises(TypeError):
        store.update_extras(run_id, "rag", slices=3)  # extras are the record's fields


def test_a_trial_stored_before_placements_reads_without_one():
    old = {"number": 0, "state": "complete", "value": 0.4, "values": {"k": 3}, "seconds": 1.5}
    rec = TuningRecord.from_dict({"status": "tuned", "budget": "quick", "trials": [old]})
    assert rec.trials == [TrialRow(0, "complete", 0.4, {"k": 3}, 1.5)]
    assert rec.trials[0].placement is None
    placed = {**old, "placement": {"node_id": "n2", "cpus": 1, "worker_s": 2.5}}
    (row,) = TuningRecord.from_dict(
        {"status": "tuned", "budget": "quick", "trials": [placed]}
    ).trials
    assert row.placement == Placement(node_id="n2", cpus=1, worker_s=2.5)


# metrics_json exactly as RunStore wrote it before the intervals were typed (json.dumps of
# Interval.to_dict per metric): a scored metric and one that does not apply (closed book).
STORED_METRICS = (
    '{"f1": {"mean": 0.4125, "low": 0.3511, "high": 0.47, "n": 12}, '
    '"recall_at_k": {"mean": null, "low": null, "high": null, "n": 0}}'
)


def test_metric_intervals_stored_as_json_read_typed_and_write_back_the_same_bytes(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"strategies": ["system_prompt"]}, "stored")
    with connect(store.path) as c:
        c.execute(
            "INSERT INTO strategy_results (run_id, strategy, position, status, config_json, "
            "metrics_json) VALUES (?,?,?,?,?,?)",
            (run_id, "system_prompt", 0, "done", "{}", STORED_METRICS),
        )
    (result,) = store.get_run(run_id).results
    assert result.metrics == {"f1": Interval(0.4125, 0.3511, 0.47, 12), "recall_at_k": Interval()}
    assert result.interval("f1").low == 0.3511 and result.mean("recall_at_k") is None
    assert result.interval("rouge_l") == Interval() and result.mean("rouge_l") is None
    # `--json` and the export write the stored shape, key for key.
    stored = json.loads(STORED_METRICS)
    assert run_summary(store.get_run(run_id))["strategies"]["system_prompt"]["metrics"] == stored
    assert json.loads(store.export_json(run_id))["results"][0]["metrics"] == stored

    again = store.create_run({}, "again")
    store.save_strategy(again, result)
    store.save_scores(again, "system_prompt", {}, {"rouge_l": Interval(0.2, 0.1, 0.3, 12)})
    with connect(store.path) as c:
        (written,) = c.execute(
            "SELECT metrics_json FROM strategy_results WHERE run_id=?", (again,)
        ).fetchone()
    added = ', "rouge_l": {"mean": 0.2, "low": 0.1, "high": 0.3, "n": 12}}'
    assert written == STORED_METRICS[:-1] + added  # byte for byte, the rescored one appended


def test_retention_tuning_and_oracle_intervals_read_typed_and_write_the_stored_json():
    from eval.run.oracle import OracleReading

    iv = {"mean": 0.5, "low": 0.25, "high": 0.75, "n": 8}
    none = {"mean": None, "low": None, "high": None, "n": 0}
    retention = {
        "metric": "contains", "n": 8, "score": iv, "f1": none, "per_question": {"g1": 1.0},
        "answers": {"g1": "Paris"}, "base": iv, "delta": 0.0, "forgotten": [],
    }  # fmt: skip
    ret = Retention.from_dict(retention)
    assert ret.score == Interval(0.5, 0.25, 0.75, 8) and ret.mean == 0.5 and ret.f1 == Interval()
    assert ret.to_dict() == retention
    base_only = {k: v for k, v in retention.items() if k not in ("base", "delta", "forgotten")}
    assert Retention.from_dict(base_only).base is None
    assert Retention.from_dict(base_only).to_dict() == base_only

    tuning = TuningRecord("tuned", "quick", default_score=Interval(0.5, 0.25, 0.75, 8)).to_dict()
    assert tuning["default_score"] == iv and tuning["gain"] is None
    rec = TuningRecord.from_dict({**tuning, "gain": iv, "crossfit_gain": none})
    assert rec.gain == Interval(0.5, 0.25, 0.75, 8) and rec.tuned_score is None
    assert rec.within_noise is None  # the cross-fitted gain was not measured: no bound to read
    assert json.dumps(rec.to_dict()) == json.dumps({**tuning, "gain": iv, "crossfit_gain": none})

    oracle = OracleReading.from_dict({"n": 8, "summary": {"f1": iv}})
    assert oracle.summary == {"f1": Interval(0.5, 0.25, 0.75, 8)} and oracle.mean("f1") == 0.5
    assert oracle.to_dict()["summary"] == {"f1": iv} and oracle.mean("rouge_l") is None


# --- no dict[str, Any] at the seams ---------------------------------------------------------------

# Fields that stay JSON-shaped dicts, each for a reason: what they hold is open-ended by design.
OPEN_FIELDS = {
    ("StrategyResult", "config"): "the strategy config's JSON form (each strategy its own)",
    ("PreparedRecord", "details"): "strategy-specific figures each strategy reports",
    ("StoredAnswer", "details"): "per-metric detail records (the judge's verdict)",
    ("Run", "config"): "the RunConfig's JSON form, as stored",
    ("Run", "meta"): "run metadata (corpus stats, split, versions...), open by design",
    ("Run", "process"): "core.procs.ProcessRef.to_dict()",
    ("Job", "config"): "the payload of the job's kind, read by that kind's body in eval/jobs",
}
# Parameters of the views that take a result, a job or an estimate.
SEAM_PARAMS = {"job", "jobs", "estimate", "estimate_row", "result", "results", "cost", "run"}


def _has_dict_any(tp) -> bool:
    import typing

    if isinstance(tp, list):  # a Callable's parameter list
        return any(_has_dict_any(a) for a in tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict and args == (str, typing.Any):
        return True
    return any(_has_dict_any(a) for a in args)


def _record_classes():
    from eval.events import ProgressEvent
    from eval.records import TrialRow, TuningRecord
    from eval.stats.stability import (
        ResplitRecord,
        SplitMeans,
        SplitResult,
        Stability,
        StabilityRecord,
    )
    from eval.store.rows import Run, StoredAnswer, StrategyResult
    from service.estimate.records import Estimate, StrategyEstimate
    from service.jobs import Job
    from service.jobs.progress_view import ProgressLine

    return [
        StrategyResult, PreparedRecord, CostSummary, ResultExtras, Retention, JudgeCost,
        StoredAnswer, Run, Job, Estimate, StrategyEstimate, ProgressLine, ProgressEvent, Placement,
        TuningRecord, TrialRow, StabilityRecord, ResplitRecord, SplitResult, Stability, SplitMeans,
    ]  # fmt: skip


def test_records_at_the_seams_hold_no_untyped_dicts():
    import dataclasses
    import typing

    found = []
    for cls in _record_classes():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _has_dict_any(hints[f.name]) and (cls.__name__, f.name) not in OPEN_FIELDS:
                found.append(f"{cls.__name__}.{f.name}: {hints[f.name]}")
    assert not found, found
    # The result's parts are the records, not dicts.
    from eval.store.rows import StrategyResult

    hints = typing.get_type_hints(StrategyResult)
    assert (hints["prepare"], hints["cost"], hints["extras"], hints["metrics"]) == (
        PreparedRecord,
        CostSummary,
        ResultExtras,
        dict[str, Interval],
    )


def test_the_store_queue_and_estimate_return_records_and_the_views_take_them():
    import importlib
    import inspect
    import pkgutil
    import typing

    import eval.views
    from eval.run.harness import run_comparison
    from service.estimate.probe import estimate_run
    from service.jobs import JobQueue
    from service.jobs.progress import JobProgress

    for fn in (run_comparison, estimate_run, JobProgress.__call__):  # progress is an event
        hints = typing.get_type_hints(fn)
        tp = hints.get("progress", hints.get("ev"))
        assert tp is not None and not _has_dict_any(tp), f"{fn.__qualname__}: {tp}"
    api = [RunStore.get_run, RunStore.get_answers, estimate_run]
    api += [getattr(JobQueue, n) for n in ("get", "list_jobs", "wait", "claim", "estimate_result")]
    for fn in api:
        ret = typing.get_type_hints(fn)["return"]
        assert not _has_dict_any(ret), f"{fn.__qualname__} returns {ret}"
    checked, found = 0, []
    for mod in pkgutil.iter_modules(eval.views.__path__):
        module = importlib.import_module(f"eval.views.{mod.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") and name not in ("_within", "_weights"):
                continue
            if fn.__module__ != module.__name__:
                continue
            hints = typing.get_type_hints(fn)
            for param, tp in hints.items():
                if param in SEAM_PARAMS:
                    checked += 1
                    if _has_dict_any(tp):
                        found.append(f"{module.__name__}.{name}({param}: {tp})")
    assert checked > 20 and not found, found
