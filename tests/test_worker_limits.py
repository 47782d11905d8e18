"""The shared worker cannot be hogged: budgets, per-owner and global caps, round-robin, and the
operator's `python -m eval jobs` (issue 18). Each test is written as the attack."""

from __future__ import annotations

import os
import time

import pytest

from cli.main import main as cli_main
from core.usage import add_tokens
from service.jobs import JobQueue
from service.jobs.kinds import register_job_kind
from service.jobs.progress import CancelFlag
from service.jobs.watchdog import Watchdog
from service.jobs.worker import work
from service.limits import JobRefused, WorkerLimits, load_worker_limits

ORDER: list[str] = []


@register_job_kind("test_record")
def _record(queue, job, progress):
    ORDER.append(job.owner)
    return "done"


@register_job_kind("test_forever")
def _forever(queue, job, progress):
    """A job that would run for ever but stops at its cancel flag (like the harness)."""
    cancel = CancelFlag(queue, job.id)
    while not cancel.is_set():
        if job.config.get("tokens"):
            add_tokens(job.config["tokens"])
        time.sleep(0.05)
    return "cancelled"


def limits_file(tmp_path, text: str):
    (tmp_path / "worker_limits.yaml").write_text(text)
    return tmp_path / "runs.sqlite"


def test_a_job_over_its_wall_clock_budget_is_stopped_and_marked(tmp_path):
    store = limits_file(tmp_path, "job_wall_s: 0.5\n")
    queue = JobQueue(store)
    job_id = queue.submit_task("test_forever", {}, owner="hog")
    t0 = time.monotonic()
    work(store, once=True)
    job = queue.get(job_id)
    assert time.monotonic() - t0 < 10
    assert job.status == "failed" and "wall-clock budget of 0.5 s" in job.error


def test_a_job_over_its_token_budget_is_stopped_and_marked(tmp_path):
    store = limits_file(tmp_path, "job_tokens: 1000\n")
    queue = JobQueue(store)
    job_id = queue.submit_task("test_forever", {"tokens": 100}, owner="hog")
    work(store, once=True)
    job = queue.get(job_id)
    assert job.status == "failed" and "token budget of 1,000 tokens" in job.error


def test_a_job_that_ignores_the_cancel_is_ended_by_the_worker(tmp_path):
    queue = JobQueue(tmp_path / "runs.sqlite")
    job_id = queue.submit_task("test_forever", {}, owner="hog")
    job = queue.claim()
    ended = []
    limits = WorkerLimits(job_wall_s=0.2, grace_s=0.3)
    dog = Watchdog(queue, job, limits, hard_stop=lambda q, j, why: ended.append(why))
    dog.start()
    time.sleep(2.0)  # the job never looks at its flag
    dog.stop()
    assert queue.get(job_id).cancel_requested
    assert ended == [dog.reason] and "wall-clock" in dog.reason


def test_a_second_owners_job_runs_before_the_first_owners_third(tmp_path):
    queue = JobQueue(tmp_path / "runs.sqlite")
    for _ in range(3):
        queue.submit_task("test_record", {}, owner="first")
    queue.submit_task("test_record", {}, owner="second")  # submitted last
    ORDER.clear()
    work(queue.path, once=True)
    assert ORDER == ["first", "second", "first", "first"]


@pytest.mark.parametrize("kind", ["run", "resume", "estimate", "qagen", "playground", "merge"])
def test_the_per_owner_cap_refuses_every_kind(tmp_path, kind):
    queue = JobQueue(tmp_path / "runs.sqlite")
    for _ in range(WorkerLimits().owner_jobs):
        queue.submit_task("test_record", {}, owner="hog")
    with pytest.raises(JobRefused, match="at most 3"):
        queue.submit_task(kind, {}, owner="hog")  # every submit_* goes through the same check
    queue.submit_task(kind, {}, owner="someone else")  # others are not blocked


def test_a_refused_run_leaves_no_run_row(tmp_path, mini_corpus):
    from eval.config import RunConfig

    corpus, qa = mini_corpus
    store = limits_file(tmp_path, "owner_jobs: 1\n")
    queue = JobQueue(store)
    config = RunConfig(corpus=str(corpus), qa=str(qa), strategies=["fake"], store_path=str(store))
    queue.submit(config, owner="hog")
    with pytest.raises(JobRefused):
        queue.submit(config, owner="hog")
    assert len(queue.store.list_runs()) == 1


def test_fresh_owner_tokens_do_not_bypass_the_global_cap(tmp_path):
    queue = JobQueue(limits_file(tmp_path, "queued_jobs: 5\n"))
    for i in range(5):
        queue.submit_task("test_record", {}, owner=f"fresh{i}")
    with pytest.raises(JobRefused, match="queue is full"):
        queue.submit_task("test_record", {}, owner="fresh-again")


def test_bad_limits_file_is_named(tmp_path):
    (tmp_path / "worker_limits.yaml").write_text("owner_jobs: 0\n")
    with pytest.raises(ValueError, match="worker_limits.yaml"):
        load_worker_limits(tmp_path)


def test_operator_lists_and_cancels_any_owners_job(tmp_path, capsys):
    queue = JobQueue(tmp_path / "runs.sqlite")
    a = queue.submit_task("test_record", {}, owner="alice")
    b = queue.submit_task("test_record", {}, owner="bob")
    assert cli_main(["jobs", "--store", str(queue.path)]) == 0
    out = capsys.readouterr().out
    assert a in out and b in out and "alice" in out and "bob" in out
    assert cli_main(["jobs", "cancel", b, "--store", str(queue.path)]) == 0
    assert queue.get(b).status == "cancelled" and queue.get(a).status == "queued"
    assert cli_main(["jobs", "cancel", "nope", "--store", str(queue.path)]) == 2


def test_the_worker_process_runs_under_a_memory_limit(tmp_path):
    # A job allocating past the operator's limit gets a MemoryError; the server keeps its memory.
    import subprocess
    import sys

    (tmp_path / "worker_limits.yaml").write_text("worker_memory_mb: 1500\n")
    code = (
        "import sys, resource\n"
        "from pathlib import Path\n"
        "from service.limits import load_worker_limits\n"
        "from service.jobs.worker import _limit_memory\n"
        "_limit_memory(load_worker_limits(Path(sys.argv[1])))\n"
        "print(resource.getrlimit(resource.RLIMIT_DATA)[0] // 2**20)\n"
        "try:\n    bytearray(3 * 2**30)\nexcept MemoryError:\n    print('refused')\n"
        # V8 (the report's chart renderer) reserves terabytes of address space: it still runs.
        "import vl_convert\n"
        "spec = {'mark': 'point', 'data': {'values': [{'a': 1}]}}\n"
        "print('svg' if vl_convert.vegalite_to_svg(spec).startswith('<svg') else 'no svg')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split() == ["1500", "refused", "svg"], out.stderr


def test_a_run_over_its_budget_is_marked_failed_with_the_reason(tmp_path, mini_corpus):
    from eval.config import RunConfig

    corpus, qa = mini_corpus
    store = limits_file(tmp_path, "job_wall_s: 0.5\n")
    queue = JobQueue(store)
    config = RunConfig(corpus=str(corpus), qa=str(qa), strategies=["fake"], store_path=str(store))
    # A first batch far longer than the budget: the run cannot finish before the watchdog fires,
    # even on a loaded machine (a run that did would stay done, its job failed).
    config = config.replace(strategy_configs={"fake": {"delay_s": 3.0}}, retention_questions=0)
    job_id = queue.submit(config, owner="hog")
    work(store, once=True)
    job = queue.get(job_id)
    run = queue.store.get_run(job.run_id)
    assert job.status == "failed" and "wall-clock budget" in job.error
    assert run.status == "failed" and "wall-clock budget" in run.error


def test_fair_share_is_by_worker_time_not_by_last_start(tmp_path):
    """Issue 32: ordering by an owner's last start let whoever started longest ago (or a fresh
    identity) go first however much worker time they had had. Now the owner who used the
    least worker time in the window goes first."""
    queue = JobQueue(tmp_path / "runs.sqlite")
    now = time.time()
    for owner, started, finished in (("heavy", now - 7200, now - 3600), ("light", now - 60, now)):
        old = queue.submit_task("test_record", {}, owner=owner)
        queue.update(old, status="done", started_at=started, finished_at=finished)
    queue.submit_task("test_record", {}, owner="heavy")  # queued first
    queue.submit_task("test_record", {}, owner="light")
    ORDER.clear()
    work(queue.path, once=True)
    assert ORDER == ["light", "heavy"]  # 60 s used goes before 3600 s, though it started last
    # A running job counts its time so far: its owner's next job waits behind others.
    hog = queue.submit_task("test_record", {}, owner="hog")
    queue.update(hog, status="running", started_at=now - 600, worker_pid=os.getpid(), heartbeat=now)
    queue.submit_task("test_record", {}, owner="hog")
    queue.submit_task("test_record", {}, owner="light")
    assert queue.claim().owner == "light"


def test_fresh_accounts_cannot_lock_a_colleague_out_of_the_queue(tmp_path):
    """Issue 32: 12 identities x 3 jobs filled the 30-job queue and the next person was refused.
    A signed-in account with nothing queued always gets one job in; tokens (free to make) and
    accounts that already have a job still meet the global cap."""
    from service.accounts import account_owner

    queue = JobQueue(limits_file(tmp_path, "queued_jobs: 6\nowner_jobs: 3\n"))
    for who in ("mallory1", "mallory2"):
        for _ in range(3):
            queue.submit_task("test_record", {}, owner=account_owner("https://idp", who))
    colleague = account_owner("https://idp", "colleague")
    queue.submit_task("test_record", {}, owner=colleague)  # the full queue still takes her first
    with pytest.raises(JobRefused, match="queue is full"):
        queue.submit_task("test_record", {}, owner=colleague)  # but not a second
    mallory = account_owner("https://idp", "mallory1")
    queue.cancel(queue.list_jobs(owner=mallory)[0].id)  # under her own cap, not empty-handed
    with pytest.raises(JobRefused, match="queue is full"):
        queue.submit_task("test_record", {}, owner=mallory)
    with pytest.raises(JobRefused, match="queue is full"):
        queue.submit_task("test_record", {}, owner="fresh-link-token-0001")  # free: no seat
    with pytest.raises(JobRefused, match="queue is full"):
        queue.submit_task("test_record", {}, owner="a-" + "Z" * 32)  # not an account's shape
