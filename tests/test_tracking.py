"""Experiment tracking: a stored run logged to MLflow and read back with MLflow's own client."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.config import RunConfig
from eval.judge import JudgeCost
from eval.records import CostSummary, PreparedRecord, ResultExtras, Retention
from eval.stats.intervals import Interval
from eval.store.runs import RunStore, StrategyResult
from service.tracking import (
    flatten,
    local_uri,
    log_run,
    resolve_uri,
    run_and_track,
    strategy_metrics,
)


def test_flatten_config():
    flat = flatten(
        {
            "models": {"generator": "tiny", "device": "cpu"},
            "strategies": ["a", "b"],
            "strategy_configs": {},
            "n_test": 3,
            "learning_curve": [0.25, 0.5],
        }
    )
    assert flat == {
        "models.generator": "tiny",
        "models.device": "cpu",
        "strategies": "a,b",
        "strategy_configs": "{}",
        "n_test": "3",
        "learning_curve": "0.25,0.5",
    }
    assert len(flatten({"prompt": "x" * 9000})["prompt"]) == 6000


def test_strategy_metrics_reads_intervals_costs_retention_and_judge_cost():
    r = StrategyResult(
        "rag",
        "done",
        {},
        PreparedRecord(),
        CostSummary(latency_p50_s=0.5, device="cpu", price_per_1k=None),
        {
            "f1": Interval(0.4, 0.3, 0.5, 10),
            "recall_at_k": Interval(None, None, None, 0),
        },
        extras=ResultExtras(
            retention=Retention(score=Interval(0.6), base=Interval(0.7), delta=-0.1),
            judge=JudgeCost("tiny", verdicts=10, prompt_tokens=900, seconds=2.5),
        ),
    )
    assert strategy_metrics(r) == {
        "f1": 0.4,
        "f1_low": 0.3,
        "f1_high": 0.5,
        "f1_n": 10.0,
        "recall_at_k_n": 0.0,
        "cost.latency_p50_s": 0.5,
        "retention": 0.6,
        "retention_delta": -0.1,
        "judge_cost.verdicts": 10.0,
        "judge_cost.unparsed": 0.0,
        "judge_cost.prompt_tokens": 900.0,
        "judge_cost.output_tokens": 0.0,
        "judge_cost.seconds": 2.5,
    }


def test_resolve_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(None, tmp_path) == local_uri(tmp_path / "mlruns")
    assert resolve_uri(None, tmp_path).startswith("sqlite:///")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_uri(None, tmp_path) == "http://127.0.0.1:5000"
    assert resolve_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def _fake_run(mini_corpus, tmp_path) -> tuple[RunStore, str]:
    corpus, qa = mini_corpus
    cfg = RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": ["fake"],
            "strategy_configs": {"fake": {"answer_words": 3}},
            "metrics": ["exact_match", "f1"],
            "split": {"test_fraction": 0.3},
            "store_path": str(tmp_path / "runs.sqlite"),
            "workdir": str(tmp_path / "work"),
            "bootstrap_resamples": 200,
            "retention_questions": 0,
            "name": "tracked",
        }
    )
    store = RunStore(cfg.store_path)
    return store, run_and_track(cfg, store=store)


def test_unknown_tracker_and_bad_uri_warn_never_raise(mini_corpus, tmp_path):
    store, run_id = _fake_run(mini_corpus, tmp_path)
    got = log_run(store, run_id, tracker="wandb", home=tmp_path)
    assert not got.ok and "unknown tracker" in got.warnings[0]
    assert "not logged" in got.message()
    got = log_run(store, "no-such-run", home=tmp_path)
    assert not got.ok and got.warnings


def test_log_run_reads_back_with_mlflow_client(mini_corpus, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="optional: requirements-tracking.txt")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store, run_id = _fake_run(mini_corpus, tmp_path)
    got = log_run(store, run_id, home=tmp_path, experiment="test-exp")
    assert got.ok, got.warnings
    assert got.artifacts == ["report.html", "answers.csv", "decision.json"] and not got.warnings
    assert (tmp_path / "mlruns" / "mlflow.db").exists()

    client = MlflowClient(tracking_uri=got.uri)
    exp = client.get_experiment_by_name("test-exp")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the runs table
    runs = client.search_runs([exp.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"tracked", "fake"}
    parent, child = by_name["tracked"], by_name["fake"]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.tags["adaptlab.run_id"] == run_id
    assert parent.info.status == "FINISHED" and child.info.status == "FINISHED"
    assert parent.data.params["strategies"] == "fake"
    assert parent.data.params["split.test_fraction"] == "0.3"
    assert child.data.params["answer_words"] == "3"

    stored = store.get_run(run_id).results[0]
    assert child.data.metrics["f1"] == pytest.approx(stored.metrics["f1"].mean)
    assert child.data.metrics["f1_low"] <= child.data.metrics["f1"] <= child.data.metrics["f1_high"]
    assert child.data.metrics["cost.latency_p50_s"] == pytest.approx(stored.cost.latency_p50_s)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert names == {"report.html", "answers.csv", "decision.json"}
    assert child.data.metrics["prob_best.f1"] == 1.0  # the only strategy
    assert "right_answers" in child.data.metrics  # the cost per right answer's count
    csv_path = client.download_artifacts(parent.info.run_id, "answers.csv", str(tmp_path))
    assert Path(csv_path).read_bytes() == store.export_csv(run_id).encode("utf-8")


def test_cli_track_and_run_track_flag(mini_corpus, tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow", reason="optional: requirements-tracking.txt")
    from cli.main import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    corpus, qa = mini_corpus
    store = tmp_path / "runs.sqlite"
    args = ["run", "--corpus", str(corpus), "--qa", str(qa), "--strategies", "fake"]
    args += ["--metrics", "f1", "--store", str(store), "--quiet", "--track", "mlflow"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "mlflow: logged run" in err and str(tmp_path / "mlruns") in err
    run_id = RunStore(store).list_runs()[0].id
    tracked = RunStore(store).get_run(run_id).meta.tracking
    assert tracked["ok"] and tracked["strategy_ids"].keys() == {"fake"}
    # Logged again afterwards, to a second experiment; a broken URI is a warning and rc 1.
    assert main(["track", run_id, "--store", str(store), "--experiment", "again"]) == 0
    bad = ["track", run_id, "--store", str(store), "--track-uri", "nosuchscheme://x"]
    assert main(bad) == 1
    assert "warning: mlflow: not logged" in capsys.readouterr().err
    assert RunStore(store).get_run(run_id).status == "done"
