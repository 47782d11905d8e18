"""The durable job queue and its worker process, driven with the model-free fake strategies."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time

import pytest

from cli.main import main as cli_main
from core.config import ModelConfig
from core.qagen import QAGenConfig, records_to_pairs
from eval.config import RunConfig
from eval.events import ProgressEvent
from eval.store.runs import RunNotFound
from service.jobs import (
    RUN_KINDS,
    STALE_S,
    JobNotFound,
    JobQueue,
    ensure_worker,
    work,
    worker_pid,
)
from service.jobs.progress import JobProgress


@pytest.fixture
def store_path(tmp_path):
    """A fresh store file; every worker started on it is killed (and reaped) afterwards."""
    path = tmp_path / "runs.sqlite"
    yield path
    pids = {worker_pid(path)}
    if path.exists():
        pids |= {j.worker_pid for j in JobQueue(path).list_jobs(limit=1000)}
    for pid in pids - {None, os.getpid()}:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def make_config(mini_corpus, store_path, **changes) -> RunConfig:
    corpus, qa = mini_corpus
    data = {
        "corpus": str(corpus),
        "qa": str(qa),
        "strategies": ["fake"],
        "metrics": ["f1", "exact_match"],  # no embedder to load: the tests stay model-free
        "retention_questions": 0,
        "batch_size": 1,
        "split": {"test_fraction": 0.5},
        "store_path": str(store_path),
        "workdir": str(store_path.parent / "work"),
    }
    return RunConfig.from_dict({**data, **changes})


def poll_until(queue: JobQueue, job_id: str, predicate, timeout: float = 60.0) -> list[dict]:
    """Snapshots of the job, polled like a page would, until `predicate(snapshot)` holds."""
    seen, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        snap = queue.get(job_id)
        seen.append(snap)
        if predicate(snap):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"condition never met; last snapshot: {seen[-1]}")


def test_worker_process_runs_a_submitted_job_with_progress(mini_corpus, store_path):
    queue = JobQueue(store_path)
    config = make_config(mini_corpus, store_path, strategy_configs={"fake": {"delay_s": 0.2}})
    job_id = queue.submit(config, owner="alice")
    job = queue.get(job_id)
    assert job.status == "queued" and job.owner == "alice"
    assert queue.store.get_run(job.run_id).status == "queued"  # the run exists at once

    assert ensure_worker(store_path, idle_exit_s=30)
    snaps = poll_until(queue, job_id, lambda s: s.status in ("done", "failed"))
    job = snaps[-1]
    assert job.status == "done", job.error
    assert job.worker_pid not in (None, os.getpid())  # ran in another process
    answering = [s for s in snaps if s.stage == "answer" and s.strategy == "fake"]
    assert answering and all(s.total > 0 for s in answering)
    assert any(0 < s.done < s.total for s in answering)  # seen midway, by polling
    assert any(s.eta_s is not None for s in answering)
    assert any("fake: answer" in line for line in job.log) and "run: done" in job.log[-1]

    run = queue.store.get_run(job.run_id)
    assert run.status == "done" and [r.status for r in run.results] == ["done"]
    assert len(queue.store.get_answers(run.id)) == answering[-1].total


def test_jobs_outlive_the_page_and_each_owner_lists_their_own(mini_corpus, store_path):
    page = JobQueue(store_path)
    mine = page.submit(make_config(mini_corpus, store_path), owner="alice")
    theirs = JobQueue(store_path).submit(make_config(mini_corpus, store_path), owner="bob")
    del page  # the tab is closed; the job lives in the DB and the worker
    ensure_worker(store_path, idle_exit_s=30)

    reopened = JobQueue(store_path)  # a reload, or a second browser
    done = reopened.wait(mine, timeout=60)
    assert done.status == "done"
    assert reopened.store.get_run(done.run_id).results[0].status == "done"
    assert [j.id for j in reopened.list_jobs(owner="alice")] == [mine]
    assert [j.id for j in reopened.list_jobs(owner="bob")] == [theirs]
    assert {j.id for j in reopened.list_jobs()} == {mine, theirs}


def test_two_jobs_run_one_after_the_other(mini_corpus, store_path):
    queue = JobQueue(store_path)
    slow = {"fake": {"delay_s": 0.1}}
    first = queue.submit(make_config(mini_corpus, store_path, strategy_configs=slow))
    second = queue.submit(make_config(mini_corpus, store_path, strategy_configs=slow))
    ensure_worker(store_path, idle_exit_s=30)
    a, b = queue.wait(first, 60), queue.wait(second, 60)
    assert a.status == b.status == "done"
    assert a.worker_pid == b.worker_pid  # one worker took both
    assert b.started_at >= a.finished_at  # queued, not concurrent


def test_ensure_worker_twice_starts_one_worker(store_path):
    assert ensure_worker(store_path, idle_exit_s=20) is True
    assert ensure_worker(store_path, idle_exit_s=20) is False
    end = time.monotonic() + 20
    while worker_pid(store_path) is None and time.monotonic() < end:
        time.sleep(0.05)
    pid = worker_pid(store_path)
    assert pid not in (None, os.getpid())
    assert ensure_worker(store_path, idle_exit_s=20) is False
    assert worker_pid(store_path) == pid


def test_worker_exits_when_idle(store_path):
    t0 = time.monotonic()
    work(store_path, idle_exit_s=0.3, poll_s=0.05)  # returns by itself, no job came
    assert time.monotonic() - t0 < 5
    assert worker_pid(store_path) is None  # the lock was released


def test_cancel_a_running_job(mini_corpus, store_path):
    queue = JobQueue(store_path)
    config = make_config(mini_corpus, store_path, strategy_configs={"fake": {"delay_s": 0.5}})
    job_id = queue.submit(config)
    ensure_worker(store_path, idle_exit_s=30)
    poll_until(queue, job_id, lambda s: s.stage == "answer" and s.done >= 1)
    t0 = time.monotonic()
    queue.cancel(job_id)
    job = queue.wait(job_id, timeout=30)
    assert job.status == "cancelled" and job.cancel_requested
    assert time.monotonic() - t0 < 5  # stopped between batches, not at the end
    assert queue.store.get_run(job.run_id).status == "cancelled"


def test_cancel_a_queued_job_needs_no_worker(mini_corpus, store_path):
    queue = JobQueue(store_path)
    job_id = queue.submit(make_config(mini_corpus, store_path))
    queue.cancel(job_id)
    job = queue.get(job_id)
    assert job.status == "cancelled"
    assert queue.store.get_run(job.run_id).status == "cancelled"
    work(store_path, once=True)  # nothing left to take
    assert queue.get(job_id).status == "cancelled"
    with pytest.raises(JobNotFound, match="no job"):
        queue.cancel("nope")


def test_killed_worker_leaves_run_interrupted_and_resume_finishes_it(mini_corpus, store_path):
    queue = JobQueue(store_path)
    config = make_config(
        mini_corpus,
        store_path,
        strategies=["fake", "fake2"],
        strategy_configs={"fake2": {"delay_s": 0.4}},
    )
    job_id = queue.submit(config, owner="alice")
    ensure_worker(store_path, idle_exit_s=30)
    snap = poll_until(queue, job_id, lambda s: s.strategy == "fake2" and s.done >= 1)[-1]
    run_id, pid = snap.run_id, snap.worker_pid
    before = queue.store.get_run(run_id).results
    answers_before = [a.answer.to_dict() for a in queue.store.get_answers(run_id, "fake")]

    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert queue.list_jobs(owner="alice")[0].status == "interrupted"  # listing detects it
    job = queue.get(job_id)
    assert "resume" in job.error
    run = queue.store.get_run(run_id)
    assert run.status == "interrupted"
    assert [(r.strategy, r.status) for r in run.results] == [("fake", "done")]

    resumed = queue.resume(run_id, owner="alice")
    assert queue.store.get_run(run_id).status == "queued"
    ensure_worker(store_path, idle_exit_s=30)
    job = queue.wait(resumed, timeout=60)
    assert job.status == "done", job.error
    assert any("fake: strategy_done (kept)" in line for line in job.log)
    run = queue.store.get_run(run_id)
    assert run.status == "done" and run.error is None
    assert {r.strategy: r.status for r in run.results} == {"fake": "done", "fake2": "done"}
    kept = next(r for r in run.results if r.strategy == "fake")
    assert kept.cost == before[0].cost  # same latency figures: not run again
    assert [a.answer.to_dict() for a in queue.store.get_answers(run_id, "fake")] == answers_before
    assert len(queue.store.get_answers(run_id, "fake2")) == len(answers_before)
    with pytest.raises(ValueError, match="nothing to resume"):
        queue.resume(run_id)


def test_stale_heartbeat_marks_the_job_and_its_run_interrupted(mini_corpus, store_path):
    queue = JobQueue(store_path)
    job_id = queue.submit(make_config(mini_corpus, store_path))
    run_id = queue.get(job_id).run_id
    # A worker that is alive (this process) but has not written for longer than STALE_S.
    queue.update(job_id, status="running", worker_pid=os.getpid(), heartbeat=time.time() - 5)
    assert queue.mark_interrupted() == 0
    queue.update(job_id, heartbeat=time.time() - STALE_S - 5)
    assert queue.mark_interrupted() == 1
    assert queue.get(job_id).status == "interrupted"
    assert queue.store.get_run(run_id).status == "interrupted"


def test_bad_input_fails_the_job_with_a_message_and_the_worker_goes_on(
    mini_corpus, store_path, tmp_path
):
    queue = JobQueue(store_path)
    bad = queue.submit(make_config(mini_corpus, store_path, corpus=str(tmp_path / "missing")))
    good = queue.submit(make_config(mini_corpus, store_path))
    work(store_path, once=True)  # in-process mode: drains the queue, then returns
    job = queue.get(bad)
    assert job.status == "failed" and "missing" in job.error
    assert queue.store.get_run(job.run_id).status == "failed"
    assert queue.get(good).status == "done"
    with pytest.raises(RunNotFound):
        queue.resume("no-such-run")


def test_progress_writes_are_throttled_but_stage_changes_always_land():
    writes = []

    class Recorder:
        def update(self, job_id, **fields):
            writes.append(fields)

    progress = JobProgress(Recorder(), "j", [])
    progress(ProgressEvent("prepare", strategy="rag"))
    t0 = time.monotonic()
    for i in range(1, 2001):
        progress(ProgressEvent("answer", strategy="rag", done=i, total=2000))
    elapsed = time.monotonic() - t0
    progress(ProgressEvent("score", strategy="rag"))
    assert len(writes) <= 3 + elapsed / 0.25 + 1  # the stage changes + at most 4 a second
    assert [w["stage"] for w in writes][:2] == ["prepare", "answer"]
    assert writes[-1]["stage"] == "score" and writes[-1]["log"][-1].endswith("rag: score")


def test_cli_worker_once_and_jobs_listing(mini_corpus, store_path, capsys):
    queue = JobQueue(store_path)
    job_id = queue.submit(make_config(mini_corpus, store_path), owner="cli")
    assert cli_main(["worker", "--store", str(store_path), "--once"]) == 0
    assert queue.get(job_id).status == "done"
    capsys.readouterr()
    assert cli_main(["jobs", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert job_id in out and "done" in out and "cli" in out


def test_a_second_worker_on_the_same_store_exits_at_once(store_path):
    started = threading.Event()
    release = threading.Event()

    def hold():  # a worker busy holding the lock for the length of the test
        started.set()
        work(store_path, idle_exit_s=2, poll_s=0.05)
        release.set()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    started.wait(5)
    end = time.monotonic() + 5
    while worker_pid(store_path) is None and time.monotonic() < end:
        time.sleep(0.02)
    assert worker_pid(store_path) == os.getpid()
    t0 = time.monotonic()
    work(store_path, idle_exit_s=30)  # another worker holds the lock: returns immediately
    assert time.monotonic() - t0 < 1
    assert ensure_worker(store_path) is False
    t.join(10)
    assert release.is_set()


def test_sigterm_stops_the_worker_and_marks_the_job_interrupted(mini_corpus, store_path):
    queue = JobQueue(store_path)
    config = make_config(mini_corpus, store_path, strategy_configs={"fake": {"delay_s": 0.5}})
    job_id = queue.submit(config)
    ensure_worker(store_path, idle_exit_s=30)
    snap = poll_until(queue, job_id, lambda s: s.stage == "answer" and s.done >= 1)[-1]
    os.kill(snap.worker_pid, signal.SIGTERM)
    os.waitpid(snap.worker_pid, 0)
    job = queue.get(job_id)
    assert job.status == "interrupted" and "stopped" in job.error
    assert queue.store.get_run(job.run_id).status == "interrupted"
    assert worker_pid(store_path) is None  # the lock went with it


def test_qagen_job_writes_grounded_pairs_for_review_and_makes_no_run(mini_corpus, store_path):
    corpus, _ = mini_corpus
    queue = JobQueue(store_path)
    job_id = queue.submit_qagen(
        corpus, QAGenConfig(method="cloze", n=6), ModelConfig(generator="tiny"), owner="alice"
    )
    assert queue.list_jobs(owner="alice", kinds=RUN_KINDS) == []  # not a run: Run page skips it
    with pytest.raises(ValueError, match="queued"):
        queue.qagen_result(job_id)
    work(store_path, once=True)
    job = queue.get(job_id)
    assert (job.status, job.kind, job.run_id, job.error) == (
        "done",
        "qagen",
        None,
        None,
    )
    assert job.stage == "done" and any("generate" in line for line in job.log)
    result = queue.qagen_result(job_id)
    assert 1 <= len(result["records"]) <= 6 and result["stats"]["kept"] == len(result["records"])
    pairs = records_to_pairs(result["records"])  # what the review table saves
    assert all(p.answers[0] in p.passage for p in pairs)
    assert queue.store.list_runs() == []


def test_qagen_job_with_the_model_reports_every_prompt(mini_corpus, store_path):
    corpus, _ = mini_corpus
    queue = JobQueue(store_path)
    config = QAGenConfig(method="model", max_prompts=5, max_new_tokens=8)
    job_id = queue.submit_qagen(corpus, config, ModelConfig(generator="tiny"))
    work(store_path, once=True)
    job = queue.get(job_id)
    assert job.status == "done", job.error
    stats = queue.qagen_result(job_id)["stats"]
    considered = stats["considered"]
    assert 1 <= considered <= 5 and stats["generator"] == "tiny"
    assert considered == stats["kept"] + sum(stats["rejected"].values())


def test_qagen_job_cancel_and_failure_leave_no_pairs(mini_corpus, store_path, monkeypatch):
    corpus, _ = mini_corpus
    queue = JobQueue(store_path)
    models = ModelConfig(generator="tiny")
    queued = queue.submit_qagen(corpus, QAGenConfig(), models)
    queue.cancel(queued)
    missing = queue.submit_qagen(corpus / "nowhere", QAGenConfig(), models)
    work(store_path, once=True)
    assert queue.get(queued).status == "cancelled"
    failed = queue.get(missing)
    assert failed.status == "failed" and "nowhere" in failed.error
    with pytest.raises(ValueError, match="failed"):
        queue.qagen_result(missing)

    def slow_generation(corpus, config, models, progress):  # stands in for a big model
        for done in range(1, 1000):
            progress(done, 1000)
            time.sleep(0.01)
        raise AssertionError("the cancel flag was never read")

    monkeypatch.setattr("service.jobs.kinds.generate_qa", slow_generation)
    running = queue.submit_qagen(corpus, QAGenConfig(method="model"), models)
    worker = threading.Thread(target=work, args=(store_path,), kwargs={"once": True})
    worker.start()
    poll_until(queue, running, lambda s: s.stage == "generate" and s.done > 0)
    queue.cancel(running)
    worker.join(timeout=30)
    job = queue.get(running)
    assert job.status == "cancelled", job.error
    with pytest.raises(ValueError, match="cancelled"):
        queue.qagen_result(running)


def test_prune_forgets_old_finished_jobs_and_their_pairs_but_keeps_runs(mini_corpus, store_path):
    corpus, _ = mini_corpus
    queue = JobQueue(store_path)
    old_run = queue.submit(make_config(mini_corpus, store_path))
    old_pairs = queue.submit_qagen(corpus, QAGenConfig(n=3), ModelConfig(generator="tiny"))
    work(store_path, once=True)
    pairs_file = queue.result_path(old_pairs)
    assert pairs_file.exists()
    recent = queue.submit_qagen(corpus, QAGenConfig(n=3), ModelConfig(generator="tiny"))
    work(store_path, once=True)
    waiting = queue.submit(make_config(mini_corpus, store_path))
    run_id = queue.get(old_run).run_id
    week = 7 * 86400
    with sqlite3.connect(store_path) as c:  # age the first two jobs by a week
        c.execute(
            "UPDATE jobs SET finished_at = finished_at - ? WHERE id IN (?, ?)",
            (week, old_run, old_pairs),
        )
    assert queue.prune(older_than_s=3 * 86400) == 2
    assert queue.get(old_run) is None and queue.get(old_pairs) is None
    assert not pairs_file.exists()
    assert queue.get(recent).status == "done" and queue.get(waiting).status == "queued"
    assert queue.store.get_run(run_id).status == "done"  # History keeps the run
    assert queue.prune(older_than_s=3 * 86400) == 0


def test_a_run_stored_before_tuning_existed_resumes_untuned(mini_corpus, tmp_path):
    queue = JobQueue(tmp_path / "runs.sqlite")
    stored = make_config(mini_corpus, tmp_path / "runs.sqlite").to_dict()
    del stored["tuning"]  # what a run stored before the tuning section had
    run_id = queue.store.create_run(stored, "old", owner="alice")
    queue.store.finish_run(run_id, "interrupted", "the worker stopped")
    job_id = queue.resume(run_id, owner="alice")
    job = queue.claim()  # what the worker reads
    # Its finished arms were not tuned: the others must not be either.
    assert job.id == job_id and job.config["tuning"]["budget"] == "off"
    assert RunConfig().tuning.budget == "quick"  # what a new run gets
