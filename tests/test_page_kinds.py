"""The pages' heavy work as worker jobs: the playground (prepare, answer one by one, prepared
run kept for the next question) and the merged-model export (built aside, renamed into the
run's folder, deleted with the run); both only for the run's owner."""

from __future__ import annotations

import pytest

from core.access import Access
from eval.run.harness import run_comparison
from eval.store.artifacts import merged_dir, run_dir
from eval.store.runs import RunNotFound
from service.jobs import JobNotFound, JobQueue, work
from service.jobs.page_kinds import (
    _Prepared,
    job_result,
    release_playground,
    submit_merge,
    submit_playground,
)
from tests.test_jobs import make_config

ALICE, BOB = "alice-token-000000001", "bob-token-00000000002"


@pytest.fixture
def fake_run(mini_corpus, tmp_path):
    path = tmp_path / "runs.sqlite"
    queue = JobQueue(path)
    config = make_config(mini_corpus, path, strategies=["fake", "fake2"])
    yield queue, run_comparison(config, store=queue.store, owner=ALICE)
    release_playground()


def test_playground_job_answers_each_strategy_and_keeps_the_run_prepared(fake_run):
    queue, run_id = fake_run
    prepare = submit_playground(queue, run_id, owner=ALICE, access=Access(ALICE))
    assert queue.get(prepare).run_id is None  # a job on the run, not one that changes it
    work(queue.path, once=True)  # the worker's loop, in this process
    assert queue.get(prepare).status == "done"
    ready = job_result(queue, prepare, Access(ALICE))
    assert ready == {"strategies": ["fake", "fake2"], "warnings": [], "answers": []}
    prepared = _Prepared.playground

    ask = submit_playground(queue, run_id, "What do B cells produce?", owner=ALICE)
    work(queue.path, once=True)
    job = queue.get(ask)
    assert job.status == "done" and _Prepared.playground is prepared  # not prepared again
    assert not any("prepare" in line for line in job.log)
    answers = job_result(queue, ask)["answers"]
    assert [a["strategy"] for a in answers] == ["fake", "fake2"]
    assert "antibodies" in answers[0]["answer"]["text"] and answers[0]["latency_s"] >= 0
    assert queue.store.get_run(run_id).status == "done"  # the run itself is untouched


def test_playground_and_merge_are_the_owners_only(fake_run):
    queue, run_id = fake_run
    with pytest.raises(RunNotFound):
        submit_playground(queue, run_id, "q?", owner=BOB, access=Access(BOB))
    with pytest.raises(RunNotFound):
        submit_merge(queue, run_id, "fake", owner=BOB, access=Access(BOB))
    with pytest.raises(ValueError, match="no trained adapter"):
        submit_merge(queue, run_id, "fake", owner=ALICE, access=Access(ALICE))
    job = submit_playground(queue, run_id, owner=ALICE)
    with pytest.raises(JobNotFound):
        job_result(queue, job, Access(BOB))
    assert job_result(queue, job, Access(ALICE)) is None  # nothing written before it runs


def test_merge_job_builds_the_model_in_the_runs_folder(mini_corpus, tiny_models, tmp_path):
    from tests.test_harness import make_config as model_config

    cfg = model_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["lora"],
        strategy_configs={"lora": {"epochs": 1, "batch_size": 4}},
        retention_questions=0,
    )
    queue = JobQueue(cfg.store_path)
    run_id = run_comparison(cfg, store=queue.store, owner=ALICE)
    adapter = queue.store.get_run(run_id).results[0].prepare.artifact_path
    assert adapter.startswith(str(run_dir(cfg.workdir, run_id)))  # the run's own adapter

    job_id = submit_merge(queue, run_id, "lora", owner=ALICE, access=Access(ALICE))
    work(queue.path, once=True)
    job = queue.get(job_id)
    assert job.status == "done", job.error
    final = merged_dir(cfg.workdir, run_id, "lora")
    result = job_result(queue, job_id)
    assert result["path"] == str(final) and (final / "config.json").is_file()
    assert result["sizes"]["merged_bytes"] > result["sizes"]["adapter_bytes"] > 0
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".")]  # no temp left
    queue.store.delete_run(run_id)
    assert not run_dir(cfg.workdir, run_id).exists()  # adapter and merged model went with it
