"""Progress a person follows: stage words, 'strategy k of n', a bar that moves in every stage,
time left; and the owner's remembered choices."""

from __future__ import annotations

import pandas as pd

from eval.records import CostSummary
from service.estimate.records import Estimate
from service.jobs import Job
from service.jobs.progress_view import describe_job, duration, run_plan, stage_words
from service.owner_state import OwnerState, OwnerStates

CONFIG = {"strategies": ["system_prompt", "fake", "rag"], "learning_curve": [0.5]}


def job(stage, strategy=None, done=0, total=0, started=1000.0, **more):
    return Job(
        "j", "run", "running", stage=stage, strategy=strategy, done=done, total=total,
        started_at=started, **more,
    )  # fmt: skip


def test_stage_names_read_as_words():
    assert stage_words("retention_base") == "asking the base model the general-knowledge questions"
    assert stage_words("answer") == "answering the test questions"
    assert stage_words("some_new_stage") == "some new stage"


def test_plan_adds_learning_curve_points_after_training_strategies_only():
    assert run_plan(CONFIG) == ["system_prompt", "fake", "rag"]
    assert run_plan({"strategies": ["lora", "rag"], "learning_curve": [0.5, 0.25]}) == [
        "lora",
        "lora@25%",
        "lora@50%",
        "rag",
    ]


def test_strategy_k_of_n_with_counts_and_a_bar_that_moves_in_every_stage():
    plan = run_plan(CONFIG)
    line = describe_job(job("answer", "rag", 12, 20), plan, now=1100.0)
    assert line.text.startswith(
        "Strategy 3 of 3: RAG (retrieved passages), answering the test questions 12/20"
    )
    stages = [
        job("load_models"),
        job("retention_base", done=10, total=40),
        job("retention_base", done=30, total=40),
        job("prepare", "system_prompt"),
        job("answer", "system_prompt", 5, 20),
        job("answer", "system_prompt", 20, 20),
        job("retention", "system_prompt", 20, 40),
        job("answer", "fake", 10, 20),
        job("retention", "rag", 39, 40),
    ]
    fractions = [describe_job(j, plan, now=1100.0).fraction for j in stages]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions), fractions
    assert 0 <= fractions[0] < 0.1 and 0.9 < fractions[-1] <= 1


def test_time_left_from_elapsed_time_and_from_the_stored_estimate_before():
    plan = ["system_prompt", "rag"]
    half = describe_job(job("retention", "system_prompt", 40, 40, started=1000.0), plan, 1100.0)
    assert 0.4 < half.fraction < 0.6
    assert abs(half.eta_s - 100 * (1 - half.fraction) / half.fraction) < 1e-6
    assert "left" in half.text
    early = job("load_models", started=1000.0)
    assert describe_job(early, plan, 1001.0).eta_s is None  # nothing to go on
    estimate = {
        "load_s": 10.0,
        "total_s": 310.0,
        "strategies": [
            {"strategy": "system_prompt", "prepare_s": 0.0, "answer_s": 100.0, "total_s": 100.0},
            {"strategy": "rag", "prepare_s": 20.0, "answer_s": 180.0, "total_s": 200.0},
        ],
    }
    estimate = Estimate.from_dict(estimate)  # the JSON kept with the run
    line = describe_job(early, plan, 1001.0, estimate)
    assert line.eta_s == 309.0 and "about 5 min left" in line.text  # 1 s of 310 spent
    # weights from the estimate: the end of system_prompt is a third of the way
    mid = describe_job(job("score", "system_prompt"), plan, 1001.0, estimate)
    assert abs(mid.fraction - 110 / 310) < 1e-6


def test_durations_read_plainly():
    assert [duration(x) for x in (None, 4.4, 150, 3600, 4800)] == [
        "—",
        "4 s",
        "2 min",
        "1 h",
        "1 h 20 min",
    ]


def test_owner_state_is_kept_per_owner_and_written_only_on_change(tmp_path):
    states = OwnerStates(tmp_path / "runs.sqlite")
    assert states.get("alice") == OwnerState()
    states.update("alice", corpus_id="c1", widgets={"run:n_test": 5})
    states.update("alice", widgets={"run:strategies": ["rag"]})
    again = OwnerStates(tmp_path / "runs.sqlite").get("alice")
    assert again.corpus_id == "c1"
    assert again.widgets == {"run:n_test": 5, "run:strategies": ["rag"]}
    assert states.get("bob") == OwnerState()
    states.put("bob", OwnerState(run_id="r9"))
    assert states.get("bob").run_id == "r9" and states.get("alice").run_id is None


def test_a_damaged_owner_record_gives_the_defaults(tmp_path):
    import sqlite3

    states = OwnerStates(tmp_path / "s.sqlite")
    with sqlite3.connect(tmp_path / "s.sqlite") as c:
        c.execute("INSERT INTO owner_state VALUES ('x', '{not json', 0)")
    assert states.get("x") == OwnerState()
    assert OwnerState.from_dict({"widgets": [1, 2], "unknown": 1}) == OwnerState()


def test_estimate_accuracy_is_actual_over_predicted_per_strategy():
    from eval.store.rows import RunMeta
    from eval.store.runs import Run, StrategyResult
    from service.estimate.check import estimate_accuracy

    est = {
        "total_s": 100.0,
        "strategies": [
            {"strategy": "rag", "seconds_per_question": 2.0, "prepare_s": 10.0},
            {"strategy": "lora", "seconds_per_question": 1.0, "prepare_s": 0.0},
            {"strategy": "broken", "seconds_per_question": 0, "prepare_s": 0, "error": "x"},
        ],
    }
    results = [
        StrategyResult("rag", "done", cost=CostSummary(latency_mean_s=3.0, prepare_s=5.0)),
        StrategyResult("lora", "done", cost=CostSummary(latency_mean_s=1.0, prepare_s=7.0)),
        StrategyResult("few_shot", "done", cost=CostSummary(latency_mean_s=1.0)),
    ]
    run = Run("r1", "", "done", 1000.0, 1150.0, {}, None, RunMeta(estimate=est), None, results)
    df = estimate_accuracy(run).set_index("strategy")
    assert list(df.index) == ["rag", "lora"]
    assert df.loc["rag", "answer_ratio"] == 1.5 and df.loc["rag", "prepare_ratio"] == 0.5
    assert pd.isna(df.loc["lora", "prepare_ratio"])  # nothing predicted: no ratio
    assert df.attrs["total"] == (100.0, 150.0)
    run.meta = RunMeta()
    assert estimate_accuracy(run).empty


def test_time_left_counts_down_through_a_slow_set_up():
    estimate = Estimate.from_dict(
        {
            "load_s": 10.0,
            "total_s": 600.0,
            "strategies": [{"strategy": "rag", "answer_s": 590.0, "total_s": 590.0}],
        }
    )
    loading = job("load_models", started=1000.0)
    lefts = [describe_job(loading, ["rag"], now, estimate).eta_s for now in (1001, 1100, 1300)]
    assert lefts[0] > lefts[1] > lefts[2] > 0, lefts  # the same stage, less time left


def test_the_oracle_stage_is_counted_after_the_strategies_with_its_share():
    plan = ["system_prompt", "rag"]
    estimate = Estimate.from_dict(
        {
            "total_s": 400.0,
            "oracle_s": 100.0,
            "strategies": [
                {"strategy": "system_prompt", "answer_s": 100.0, "total_s": 100.0},
                {"strategy": "rag", "answer_s": 200.0, "total_s": 200.0},
            ],
        }
    )
    last = describe_job(job("score", "rag"), plan, 1001.0, estimate, oracle=True)
    reading = describe_job(job("oracle", done=3, total=20), plan, 1001.0, estimate, oracle=True)
    assert reading.text.startswith("After the strategies: reading each test question with its")
    assert "3/20" in reading.text and "Setting up" not in reading.text
    assert last.fraction < reading.fraction < 1.0
    assert abs(last.fraction - 300 / 400) < 0.01  # the oracle's 100 s are still to come
    # Without an oracle reading the strategies fill the bar.
    assert describe_job(job("score", "rag"), plan, 1001.0, estimate).fraction > 0.99


def test_the_oracle_is_read_only_when_a_strategy_retrieves():
    from service.jobs.progress_view import reads_oracle

    assert not reads_oracle({"strategies": ["system_prompt", "few_shot", "lora"]})
    assert reads_oracle({"strategies": ["system_prompt", "rag"]})
    assert not reads_oracle({"strategies": ["rag"], "verdict": {"oracle": False}})
    assert not reads_oracle({"strategies": ["no_longer_registered"]})
