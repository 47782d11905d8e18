"""Arms measured at once without a cluster: the in-order driver (eval.run.arms), the pool of
arm workers (service.cluster.worker_pool) with stand-in workers, and a whole run whose local
executor is told to run three arms at once."""

from __future__ import annotations

import threading
import time

import pytest

from eval.events import ProgressEvent
from eval.records import ResultExtras
from eval.run.arms import ArmJob, in_order
from eval.run.executor import ArmLost, LocalExecutor
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from service.cluster.plan import ArmRequest, ClusterShape
from service.cluster.worker_pool import WorkerPool
from service.jobs.progress import JobProgress
from strategies.base import RunCancelled
from tests.test_harness import make_config


def _jobs(*labels: str) -> list[ArmJob]:
    return [ArmJob(label, label, [], ResultExtras()) for label in labels]


def test_results_are_finished_in_the_jobs_order_while_they_run_at_once():
    # "a" takes longest: "b" and "c" end first, yet are finished after it.
    delays = {"a": 0.4, "b": 0.2, "c": 0.1}
    running, most = set(), [0]
    lock = threading.Lock()

    def measure(job):
        with lock:
            running.add(job.label)
            most[0] = max(most[0], len(running))
        time.sleep(delays[job.label])
        with lock:
            running.discard(job.label)
        return job.label.upper()

    finished: list[tuple[str, str, str]] = []
    in_order(
        _jobs("a", "b", "c"),
        3,
        measure,
        lambda job, out: finished.append((job.label, out, threading.current_thread().name)),
    )
    assert [(label, out) for label, out, _ in finished] == [("a", "A"), ("b", "B"), ("c", "C")]
    assert most[0] == 3  # all three ran at once
    # The store's side runs in the caller's thread only.
    assert {name for _, _, name in finished} == {threading.current_thread().name}


def test_one_at_a_time_runs_in_the_callers_thread():
    seen = []
    in_order(
        _jobs("a", "b"), 1, lambda j: threading.current_thread().name, lambda j, o: seen.append(o)
    )
    assert seen == [threading.current_thread().name] * 2


def test_an_error_stops_what_has_not_started_keeps_what_finished_and_is_raised():
    started, told = [], []

    def measure(job):
        started.append(job.label)
        if job.label == "b":
            raise ArmLost("b's worker died")
        time.sleep(0.3 if job.label == "a" else 0.0)
        return job.label

    finished = []
    with pytest.raises(ArmLost, match="b's worker died"):
        in_order(
            _jobs("a", "b", "c", "d"),
            2,
            measure,
            lambda job, out: finished.append(out),
            told.append,
        )
    # "a" was running when "b" failed: it finished and is kept; "c" and "d" may have been
    # picked up by the free thread before the error was seen, but no later job started after.
    assert finished[0] == "a" and "b" not in finished
    assert [type(e) for e in told] == [ArmLost]
    assert set(finished) == set(started) - {"b"}


def test_a_failing_finish_stops_the_running_jobs():
    stop = threading.Event()

    def measure(job):
        if job.label == "slow":
            assert stop.wait(5), "not told to stop"
            raise RunCancelled
        return job.label

    def finish(job, out):
        raise RuntimeError("store is full")

    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="store is full"):
        in_order(_jobs("fast", "slow"), 2, measure, finish, lambda e: stop.set())
    assert time.monotonic() - t0 < 5


class _Cluster:
    """Stand-in workers: numbered, and which were killed."""

    def __init__(self):
        self.started: list[tuple[ArmRequest, int]] = []
        self.killed: list[int] = []

    def start(self, request):
        self.started.append((request, len(self.started)))
        return len(self.started) - 1

    def kill(self, actor):
        self.killed.append(actor)


def test_the_pool_reuses_idle_workers_and_starts_one_per_arm_running():
    cluster = _Cluster()
    pool = WorkerPool(ClusterShape([{"CPU": 2.0}]), cluster.start, cluster.kill)
    one = ArmRequest(1, 0.0)
    a, b = pool.lease(one, lambda: False), pool.lease(one, lambda: False)
    assert a != b and len(cluster.started) == 2  # two arms at once: a worker each
    pool.release(a)
    assert pool.lease(one, lambda: False) == a  # loaded already: taken again
    pool.drop(b)  # died: killed and forgotten
    assert cluster.killed == [b] and pool.live() == [a]
    c = pool.lease(one, lambda: False)
    assert c not in (a, b)
    pool.close()
    assert sorted(cluster.killed) == sorted([a, b, c])


def test_the_pool_waits_for_room_and_gives_up_an_idle_worker_of_another_request():
    cluster = _Cluster()
    pool = WorkerPool(ClusterShape([{"CPU": 2.0}]), cluster.start, cluster.kill)
    whole, half = ArmRequest(2, 0.0), ArmRequest(1, 0.0)
    big = pool.lease(whole, lambda: False)
    # No room beside the busy 2-CPU worker: the arm waits, and a cancel ends the wait.
    with pytest.raises(RunCancelled):
        pool.lease(half, lambda: True)
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.lease(half, lambda: False)))
    waiter.start()
    time.sleep(0.3)
    assert not got  # still waiting: the cluster is full
    pool.release(big)  # idle now, of another request: given up to make room
    waiter.join(5)
    assert got and got[0] != big and cluster.killed == [big]


def test_a_run_with_arms_at_once_stores_what_one_at_a_time_does(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    # fake2 answers slowest: it ends last, yet is stored first, as the config lists it.
    over = {
        "strategies": ["fake2", "fake", "system_prompt"],
        "strategy_configs": {"fake2": {"delay_s": 0.5}},
        "retention_questions": 2,
    }
    got, inside, overlapped = {}, threading.Lock(), []

    def progress(event) -> None:  # never entered by two arms' threads at once
        if not inside.acquire(blocking=False):
            overlapped.append(event)
            return
        time.sleep(0.001)
        inside.release()

    for at_once in (1, 3):
        monkeypatch.setattr(LocalExecutor, "arms_at_once", at_once)
        cfg = make_config(mini_corpus, tiny_models, tmp_path / str(at_once), **over)
        store = RunStore(cfg.store_path)
        run = store.get_run(run_comparison(cfg, store=store, progress=progress))
        assert run.status == "done"
        got[at_once] = (
            run,
            {(a.strategy, a.qid): a.answer.text for a in store.get_answers(run.id)},
        )
    (one, one_answers), (three, three_answers) = got[1], got[3]
    assert [r.strategy for r in three.results] == ["fake2", "fake", "system_prompt"]
    assert three_answers == one_answers and three_answers
    for a, b in zip(one.results, three.results, strict=True):
        assert a.status == b.status == "done"
        assert a.metrics == b.metrics
        assert a.extras.retention.to_dict() == b.extras.retention.to_dict()
    assert three.meta.retention_base == one.meta.retention_base
    assert overlapped == []


def test_the_job_log_gets_one_line_per_arm_stage_when_arms_interleave():
    writes = []

    class Recorder:
        def update(self, job_id, **fields):
            writes.append(fields)

    progress = JobProgress(Recorder(), "j", [])
    for i in range(1, 6):  # two arms answering at once, their events alternating
        progress(ProgressEvent("answer", strategy="rag", done=i, total=5))
        progress(ProgressEvent("train", strategy="lora", step=i, steps=5, loss=1 / i))
    progress(ProgressEvent("score", strategy="rag"))
    log = [line.split(" ", 1)[1] for line in writes[-1]["log"]]
    assert log == ["rag: answer", "lora: train", "rag: score"]
    # The fields follow the latest event's arm, without the other's loss.
    assert writes[-1]["strategy"] == "rag" and writes[-1]["loss"] is None


def test_an_arm_worker_does_all_its_model_work_on_one_thread(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    # Ray hands an actor's calls to whichever of its threads is free; each thread that starts
    # torch work keeps an OpenMP team, and two teams on the arm's CPUs slowed a LoRA arm after a
    # RAG arm by 30%. So warm-ups and arms, called from any thread, run on the same one.
    from service.cluster import ray_worker

    used = []
    monkeypatch.setattr(ray_worker, "limit_threads", lambda cpus: None)  # this process's own
    monkeypatch.setattr(
        ray_worker, "warm_models", lambda models, names: used.append(threading.get_ident()) or 0.0
    )
    monkeypatch.setattr(
        ray_worker.ArmWorker,
        "_measure",
        lambda self, *args: used.append(threading.get_ident()),  # None: as if cancelled
    )
    worker = ray_worker.ArmWorker(make_config(mini_corpus, tiny_models, tmp_path), cpus=2)
    calls = [
        threading.Thread(target=worker.warm, args=(["rag"],)),
        threading.Thread(target=worker.evaluate, args=(None, "rag", "rag", [], [], str(tmp_path))),
        threading.Thread(
            target=worker.evaluate, args=(None, "lora", "lora", [], [], str(tmp_path))
        ),
    ]
    for call in calls:  # one after another, each from a thread of its own, as Ray would
        call.start()
        call.join()
    assert len(used) == 5 and len(set(used)) == 1
    assert used[0] not in {call.ident for call in calls}
