"""The pages' heavy work as worker jobs: the playground (prepare, answer one by one, prepared
run kept for the next question) and the merged-model export (built aside, renamed into the
run's folder, deleted with the run); both only for the run's owner."""

from __future__ import annotations

import json
import sqlite3

import pytest

from core.access import Access
from eval.run.harness import run_comparison
from eval.store.artifacts import merged_dir, run_dir
from eval.store.runs import RunNotFound
from service.jobs import JobNotFound, JobQueue, work
from service.jobs.page_kinds import (
    MergeResult,
    ModelSizes,
    PlaygroundResult,
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
    assert ready == PlaygroundResult(strategies=["fake", "fake2"], warnings=[], answers=[])
    prepared = _Prepared.playground

    ask = submit_playground(queue, run_id, "What do B cells produce?", owner=ALICE)
    work(queue.path, once=True)
    job = queue.get(ask)
    assert job.status == "done" and _Prepared.playground is prepared  # not prepared again
    assert not any("prepare" in line for line in job.log)
    answers = job_result(queue, ask).answers
    assert [a.strategy for a in answers] == ["fake", "fake2"]
    assert "antibodies" in answers[0].answer.text and answers[0].latency_s >= 0
    # The file keeps the JSON form pages read before the record: answers as plain mappings.
    stored = json.loads(queue.result_path(ask, "playground").read_text())
    assert stored["strategies"] == ["fake", "fake2"] and stored["warnings"] == []
    assert [a["strategy"] for a in stored["answers"]] == ["fake", "fake2"]
    assert stored["answers"][0]["answer"]["text"] == answers[0].answer.text
    assert PlaygroundResult.from_dict(stored) == job_result(queue, ask)
    assert queue.store.get_run(run_id).status == "done"  # the run itself is untouched
    # The result file goes with the job when it is pruned (a week after it finished).
    with sqlite3.connect(queue.path) as c:
        c.execute("UPDATE jobs SET finished_at = finished_at - ? WHERE id=?", (7 * 86400, ask))
    assert queue.prune(older_than_s=3 * 86400) == 1
    assert not queue.result_path(ask, "playground").exists() and queue.get(ask) is None
    assert not queue.result_path(ask).exists()  # nor left where results once went


def test_a_result_written_where_versions_before_wrote_it_still_reads(fake_run):
    queue, run_id = fake_run
    job = submit_playground(queue, run_id, owner=ALICE)
    old = queue.result_path(job)  # the qagen folder, where page results went before
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text(json.dumps({"strategies": ["fake"], "warnings": [], "answers": []}))
    assert job_result(queue, job, Access(ALICE)) == PlaygroundResult(strategies=["fake"])


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
    assert isinstance(result, MergeResult)
    assert result.path == str(final) and (final / "config.json").is_file()
    assert result.sizes.merged_bytes > result.sizes.adapter_bytes > 0
    assert json.loads(queue.result_path(job_id, "merge").read_text())["sizes"]["merged_bytes"] > 0
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".")]  # no temp left
    queue.store.delete_run(run_id)
    assert not run_dir(cfg.workdir, run_id).exists()  # adapter and merged model went with it


def test_page_results_read_the_stored_json_form():
    """A result file as the page jobs wrote it before the records (and with a key a newer
    version may add) reads into the records, and writes back the same form."""
    playground = {
        "strategies": ["rag", "adapter: mine"],
        "warnings": ["few_shot could not be restored"],
        "answers": [
            {
                "strategy": "rag",
                "answer": {"question": "q?", "text": "B cells", "truncated": True},
                "latency_s": 0.25,
            }
        ],
        "added_later": 1,
    }
    read = PlaygroundResult.from_dict(playground)
    assert read.strategies == ["rag", "adapter: mine"] and read.warnings[0].startswith("few")
    (a,) = read.answers
    assert a.strategy == "rag" and a.answer.text == "B cells" and a.answer.truncated
    assert a.latency_s == 0.25
    again = read.to_dict()
    assert {k: again[k] for k in ("strategies", "warnings")} == {
        k: playground[k] for k in ("strategies", "warnings")
    }
    assert again["answers"][0]["strategy"] == "rag" and again["answers"][0]["latency_s"] == 0.25
    assert PlaygroundResult.from_dict(again) == read
    assert PlaygroundResult.from_dict(None) == PlaygroundResult()

    merge = {"path": "/w/runs/r1/merged/lora", "sizes": {"base_bytes": None, "adapter_bytes": 7}}
    m = MergeResult.from_dict(merge)
    assert m.sizes == ModelSizes(base_bytes=None, adapter_bytes=7, merged_bytes=None)
    assert m.to_dict() == {
        "path": "/w/runs/r1/merged/lora",
        "sizes": {"base_bytes": None, "adapter_bytes": 7, "merged_bytes": None},
    }
