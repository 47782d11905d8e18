"""Runs that survive anything: the worker SIGKILLed mid-training and mid-answering, a CLI run
killed, a worker that died with jobs queued. The store stays sound, the run is interrupted with
its finished strategies kept, its files are its own, and resume refuses changed inputs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.procs import pid_alive
from eval.store.artifacts import run_dir
from service.jobs import JobQueue, ensure_worker, worker_pid
from tests import test_jobs
from tests.test_jobs import make_config, poll_until

store_path = test_jobs.store_path  # the fixture: a fresh store, its workers killed afterwards

ROOT = Path(__file__).resolve().parents[1]


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as c:
        return c.execute("PRAGMA integrity_check").fetchone()[0]


def sigkill(pid: int) -> None:
    """SIGKILL a worker this test started and reap it. Reaped, not just dead: a killed
    process's other threads may hold its files (the worker lock) a moment after its main
    thread shows as a zombie."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert not pid_alive(pid)


def two_strategies(mini_corpus, store_path, **fake2) -> dict:
    return make_config(
        mini_corpus,
        store_path,
        strategies=["fake", "fake2"],
        strategy_configs={"fake": {"train_steps": 2, "step_s": 0.01}, "fake2": fake2},
    )


def kill_when(queue: JobQueue, job_id: str, predicate) -> dict:
    """SIGKILL the job's worker at the first snapshot where `predicate` holds; the snapshot."""
    ensure_worker(queue.path, idle_exit_s=30)
    snap = poll_until(queue, job_id, predicate)[-1]
    sigkill(snap.worker_pid)
    return snap


def test_worker_killed_mid_training_keeps_finished_work_and_refuses_changed_inputs(
    mini_corpus, store_path
):
    queue = JobQueue(store_path)
    config = two_strategies(mini_corpus, store_path, train_steps=400, step_s=0.05)
    job_id = queue.submit(config, owner="alice")
    snap = kill_when(
        queue, job_id, lambda s: s.strategy == "fake2" and s.stage == "train" and s.done
    )
    run_id = snap.run_id
    assert integrity(store_path) == "ok"
    assert queue.get(job_id).status == "interrupted"
    run = queue.store.get_run(run_id)
    assert run.status == "interrupted" and "stopped" in run.error
    assert [(r.strategy, r.status) for r in run.results] == [("fake", "done")]

    # Each strategy's files live under the run; the half-trained one never reached its place.
    folder = run_dir(config.workdir, run_id)
    assert (folder / "fake" / "fake" / "weights.bin").is_file()
    kept = run.results[0].prepare.artifact_path
    assert Path(kept) == folder / "fake" / "fake"  # the report points at the published folder
    assert not (folder / "fake2").exists()
    assert any(p.name.startswith(".fake2.building-") for p in folder.iterdir())

    # The Q/A file changed since: resuming would mix two test sets, so it is refused, by name.
    qa = Path(config.qa)
    original = qa.read_text()
    qa.write_text(original.replace("antibodies", "immunoglobulins"))
    with pytest.raises(ValueError, match="Q/A file changed"):
        queue.resume(run_id, owner="alice")
    assert queue.store.get_run(run_id).status == "interrupted"  # untouched by the refusal

    # The documents changed: only the worker can tell (it reads them); the job fails, the run
    # stays interrupted with its finished strategy.
    qa.write_text(original)
    doc = Path(config.corpus) / "pharmacy.txt"
    doc.write_text(doc.read_text() + " Pharmacists also vaccinate.")
    resumed = queue.resume(run_id, owner="alice")
    ensure_worker(store_path, idle_exit_s=30)
    job = queue.wait(resumed, timeout=60)
    assert job.status == "failed" and "documents changed" in job.error, job
    run = queue.store.get_run(run_id)
    assert run.status == "interrupted" and [r.strategy for r in run.results] == ["fake"]
    assert integrity(store_path) == "ok"


def test_worker_killed_mid_answering_resumes_to_the_end(mini_corpus, store_path):
    queue = JobQueue(store_path)
    config = two_strategies(mini_corpus, store_path, delay_s=0.4)
    job_id = queue.submit(config, owner="alice")
    snap = kill_when(
        queue, job_id, lambda s: s.strategy == "fake2" and s.stage == "answer" and s.done
    )
    run_id = snap.run_id
    assert integrity(store_path) == "ok"
    assert queue.store.get_run(run_id).status == "interrupted"
    assert queue.store.get_answers(run_id, "fake2") == []  # half-answered: nothing stored
    weights = (run_dir(config.workdir, run_id) / "fake" / "fake" / "weights.bin").read_bytes()

    ensure_worker(store_path, idle_exit_s=30)
    job = queue.wait(queue.resume(run_id, owner="alice"), timeout=60)
    assert job.status == "done", job.error
    run = queue.store.get_run(run_id)
    assert {r.strategy: r.status for r in run.results} == {"fake": "done", "fake2": "done"}
    folder = run_dir(config.workdir, run_id)
    assert (folder / "fake" / "fake" / "weights.bin").read_bytes() == weights  # kept, not redone
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # leftovers cleaned
    assert integrity(store_path) == "ok"

    queue.store.delete_run(run_id)  # deleting the run deletes its files
    assert not folder.exists()


def test_killed_cli_run_is_interrupted_then_deletable(mini_corpus, store_path, tmp_path):
    config = make_config(
        mini_corpus, store_path, strategy_configs={"fake": {"delay_s": 0.3}}, name="cli"
    )
    path = tmp_path / "run.yaml"
    path.write_text(config.to_yaml())
    proc = subprocess.Popen(
        [sys.executable, "-m", "eval", "run", "--config", str(path), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    queue = JobQueue(store_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = queue.store.list_runs()
        if runs and runs[0].status == "running" and runs[0].process:
            break
        time.sleep(0.1)
    run = queue.store.get_run(runs[0].id)
    assert run.status == "running" and run.process["pid"] == proc.pid  # pid and host recorded
    with pytest.raises(ValueError, match="still running"):
        queue.store.delete_run(run.id)
    proc.kill()
    proc.wait()
    listed = queue.store.list_runs()[0]  # listing notices the process is gone
    assert listed.status == "interrupted"
    assert "stopped" in queue.store.get_run(run.id).error
    queue.store.delete_run(run.id)
    assert queue.store.list_runs() == []
    assert integrity(store_path) == "ok"


def test_polling_a_queued_job_restarts_a_dead_worker(mini_corpus, store_path):
    from service.jobs import serve_queued

    queue = JobQueue(store_path)
    job_id = queue.submit(make_config(mini_corpus, store_path), owner="alice")
    assert worker_pid(store_path) is None  # nobody started one: the job would wait forever
    assert serve_queued(queue, [queue.get(job_id)]) is True  # what a polling page calls
    assert queue.wait(job_id, timeout=60).status == "done"
    assert serve_queued(queue, [queue.get(job_id)]) is False  # nothing queued: nothing started


def test_a_run_and_its_job_are_created_together(mini_corpus, store_path, monkeypatch):
    queue = JobQueue(store_path)
    insert = JobQueue._insert

    def insert_then_fail(self, *args, **kwargs):
        insert(self, *args, **kwargs)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(JobQueue, "_insert", insert_then_fail)
    with pytest.raises(sqlite3.OperationalError):
        queue.submit(make_config(mini_corpus, store_path), owner="alice")
    assert queue.store.list_runs() == [] and queue.list_jobs() == []  # neither one alone
