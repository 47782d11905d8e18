"""Runs on a real Ray cluster: a local head on loopback with 2 CPUs and no dashboard.

Skipped where Ray is not installed (requirements-cluster.txt), except under CI=true, where a
missing Ray is a failure: CI installs it (.ci/run)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from core.config import ModelConfig, SplitConfig
from eval.config import RunConfig
from eval.events import ProgressEvent
from eval.records import CostSummary, Placement, PreparedRecord, ResultExtras
from eval.store.runs import RunStore
from tests.conftest import require_ray

ray = require_ray()

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ray_head():
    """The address of a Ray head started for these tests (2 CPUs, loopback, no dashboard);
    this test process is connected to it as the driver. Stopped afterwards."""
    from service.cluster.ray_executor import connect
    from service.cluster.ray_head import local_head

    with local_head(cpus=2) as address:
        connect(address)
        yield address
        ray.shutdown()


def _config(tmp_path, mini_corpus, strategies, executor, address="", **extra) -> RunConfig:
    corpus, qa = mini_corpus
    return RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": strategies,
            "models": ModelConfig(generator="tiny", max_new_tokens=8).to_dict(),
            "split": SplitConfig(seed=3).to_dict(),
            "store_path": str(tmp_path / "runs.sqlite"),
            "workdir": str(tmp_path / "work"),
            "bootstrap_resamples": 100,
            "retention_questions": 0,
            "executor": {"kind": executor, "address": address},
            "tuning": {"budget": "off"},
            **extra,
        }
    )


def _answers(store: RunStore, run_id: str) -> dict[tuple[str, str], str]:
    return {(a.strategy, a.qid): a.answer.text for a in store.get_answers(run_id)}


def test_ray_gives_the_same_answers_and_scores_as_local(ray_head, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    strategies = ["fake", "system_prompt", "rag"]
    got = {}
    for kind in ("local", "ray"):
        config = _config(tmp_path / kind, mini_corpus, strategies, kind, ray_head)
        store = RunStore(config.store_path)
        events: list[ProgressEvent] = []
        run_id = run_comparison(config, store=store, progress=events.append)
        got[kind] = (store, run_id, events)
    (local, local_id, _), (remote, remote_id, events) = got["local"], got["ray"]
    assert remote.get_run(remote_id).status == "done"
    assert _answers(remote, remote_id) == _answers(local, local_id)
    assert len(_answers(local, local_id)) > 0
    by_local = {r.strategy: r for r in local.get_run(local_id).results}
    for r in remote.get_run(remote_id).results:
        assert r.status == "done", r.error
        assert r.metrics == by_local[r.strategy].metrics
        # What crossed the Ray boundary came back, and was stored, as the typed records.
        assert isinstance(r.prepare, PreparedRecord) and isinstance(r.cost, CostSummary)
        assert isinstance(r.extras, ResultExtras) and isinstance(r.extras.placement, Placement)
        assert r.cost.questions == by_local[r.strategy].cost.questions
        placement = r.extras.placement
        assert placement.executor == "ray" and placement.device == "cpu"
        assert placement.pid != os.getpid()  # measured in a Ray worker, not here
        assert 0 <= placement.overhead_s <= placement.driver_wall_s
        assert by_local[r.strategy].extras.placement is None
    # The worker's progress reached the driver, as ProgressEvents: every arm's answering.
    assert all(isinstance(e, ProgressEvent) for e in events)
    answered = {e.strategy for e in events if e.stage == "answer"}
    assert answered == set(strategies)
    assert remote.get_run(remote_id).meta.executor["kind"] == "ray"


def test_cancel_stops_the_arm_on_the_cluster(ray_head, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    config = _config(
        tmp_path,
        mini_corpus,
        ["fake"],
        "ray",
        ray_head,
        batch_size=1,
        strategy_configs={"fake": {"delay_s": 2.0}},
    )
    store, cancel = RunStore(config.store_path), threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.stage == "answer" and (event.done or 0) >= 1:
            cancel.set()

    t0 = time.monotonic()
    run_id = run_comparison(config, store=store, progress=progress, cancel=cancel)
    assert store.get_run(run_id).status == "cancelled"
    assert store.get_run(run_id).results == []
    # Stopped at the next batch, not after every question (10 batches of 2 s).
    assert time.monotonic() - t0 < 60


def test_a_killed_ray_worker_leaves_the_run_interrupted_and_resumable(
    ray_head, tmp_path, mini_corpus
):
    from eval.run.executor import ArmLost
    from eval.run.harness import run_comparison

    config = _config(
        tmp_path,
        mini_corpus,
        ["fake", "fake2"],
        "ray",
        ray_head,
        batch_size=1,
        strategy_configs={"fake2": {"delay_s": 1.0}},
    )
    store = RunStore(config.store_path)
    run_id = store.create_run(config.to_dict(), "")
    killed: list[int] = []

    def progress(event: ProgressEvent) -> None:
        if event.strategy == "fake2" and event.stage == "answer" and not killed:
            # The worker that measured fake measures fake2 too (one per run).
            pid = store.get_run(run_id).results[0].extras.placement.pid
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(ArmLost):
        run_comparison(config, store=store, progress=progress, run_id=run_id)
    run = store.get_run(run_id)
    assert killed and run.status == "interrupted"
    assert [(r.strategy, r.status) for r in run.results] == [("fake", "done")]
    events: list[ProgressEvent] = []
    run_comparison(config, store=store, progress=events.append, run_id=run_id, resume=True)
    run = store.get_run(run_id)
    assert run.status == "done"
    assert {r.strategy: r.status for r in run.results} == {"fake": "done", "fake2": "done"}
    assert ProgressEvent("strategy_done", strategy="fake", status="kept") in events
    assert run.results[1].extras.placement.pid != killed[0]


def test_runs_of_two_owners_proceed_at_once_on_the_cluster(ray_head, tmp_path, mini_corpus):
    from service.jobs.queue import JobQueue
    from service.jobs.worker import work

    (tmp_path / "cluster.yaml").write_text(
        f"executor: {{kind: ray, address: '{ray_head}'}}\nparallel_runs: 2\n", encoding="utf-8"
    )
    # The browser-side config says local: the operator's cluster.yaml decides.
    config = _config(
        tmp_path,
        mini_corpus,
        ["fake"],
        "local",
        batch_size=2,
        strategy_configs={"fake": {"delay_s": 1.0}},
    )
    queue = JobQueue(config.store_path)
    jobs = [queue.submit(config, owner=owner) for owner in ("alice", "bob")]
    work(config.store_path, once=True, poll_s=0.1)
    got = [queue.get(j) for j in jobs]
    assert [j.status for j in got] == ["done", "done"], [j.error for j in got]
    runs = [queue.store.get_run(j.run_id) for j in got]
    assert [r.owner for r in runs] == ["alice", "bob"]
    assert all(r.results[0].extras.placement.executor == "ray" for r in runs)
    # Both ran at once: each started before the other finished.
    assert got[0].started_at < got[1].finished_at
    assert got[1].started_at < got[0].finished_at


def test_resplits_run_as_ray_work_on_their_own_splits(ray_head, tmp_path, mini_corpus):
    """Each re-split is measured by the Ray worker on that split's own train/test (the same
    per-split scores as local), not on the run's first split."""
    from eval.run.harness import run_comparison
    from eval.stats.stability import StabilityRecord

    got = {}
    for kind in ("local", "ray"):
        config = _config(
            tmp_path / kind, mini_corpus, ["fake", "system_prompt"], kind, ray_head,
            stability={"resplits": 2},
        )  # fmt: skip
        store = RunStore(config.store_path)
        run_id = run_comparison(config, store=store)
        record = StabilityRecord.from_dict(store.get_run(run_id).meta.stability)
        got[kind] = {
            (s.k, name): (r.status, r.metrics)
            for s in record.splits
            for name, r in s.strategies.items()
        }
        main_f1 = {r.strategy: r.metrics["f1"].mean for r in store.get_run(run_id).results}
    assert len(got["ray"]) == 4 and all(st == "done" for st, _ in got["ray"].values())
    assert got["ray"] == got["local"]
    # A split answered on the run's own test questions would repeat the main split's scores.
    splits = {k: m["f1"] for (k, name), (_, m) in got["ray"].items() if name == "fake"}
    assert len(set(splits.values()) | {main_f1["fake"]}) > 1


def _overlap(a: Placement, b: Placement) -> float:
    """Seconds the two arms' measurements overlapped on their workers (negative: apart)."""
    return min(a.ended_at, b.ended_at) - max(a.started_at, b.started_at)


def test_arms_run_at_once_on_workers_of_their_own(ray_head, tmp_path, mini_corpus):
    """Two 1-CPU arms on the 2-CPU head are measured at once, each by its own worker; a third
    waits and reuses a freed worker; answers and scores are the local run's."""
    from eval.run.harness import run_comparison

    strategies = ["fake", "fake2", "system_prompt"]
    slow = {"fake": {"delay_s": 2.5}, "fake2": {"delay_s": 2.5}}
    got = {}
    for kind in ("local", "ray"):
        config = _config(
            tmp_path / kind,
            mini_corpus,
            strategies,
            kind,
            ray_head,
            batch_size=1,
            # The local run needs no delay: it changes no answer.
            strategy_configs=slow if kind == "ray" else {},
        )
        if kind == "ray":
            config = config.replace(executor=config.executor.replace(cpus_per_arm=1))
        store = RunStore(config.store_path)
        got[kind] = (store, run_comparison(config, store=store))
    (local, local_id), (remote, remote_id) = got["local"], got["ray"]
    run = remote.get_run(remote_id)
    assert run.status == "done"
    assert run.meta.executor["plan"]["at_once"] == 2
    assert [r.strategy for r in run.results] == strategies  # stored in the config's order
    assert _answers(remote, remote_id) == _answers(local, local_id)
    by_local = {r.strategy: r for r in local.get_run(local_id).results}
    placed = {}
    for r in run.results:
        assert r.status == "done", r.error
        assert r.metrics == by_local[r.strategy].metrics
        placed[r.strategy] = r.extras.placement
        assert placed[r.strategy].cpus == 1
    fake, fake2, system_prompt = placed["fake"], placed["fake2"], placed["system_prompt"]
    assert fake.pid != fake2.pid  # a worker each
    assert _overlap(fake, fake2) > 0, (fake, fake2)  # measured at the same time
    # The third arm took a worker the first two had loaded, once it was free.
    assert system_prompt.pid in (fake.pid, fake2.pid)
    assert system_prompt.started_at >= min(fake.ended_at, fake2.ended_at)


def test_cancel_stops_every_arm_running_at_once(ray_head, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    steps = 600  # 60 s of pretend training each, stopped between steps
    config = _config(
        tmp_path,
        mini_corpus,
        ["fake", "fake2"],
        "ray",
        ray_head,
        strategy_configs={n: {"train_steps": steps, "step_s": 0.1} for n in ("fake", "fake2")},
    )
    config = config.replace(executor=config.executor.replace(cpus_per_arm=1))
    store, cancel = RunStore(config.store_path), threading.Event()
    last: dict[str, int] = {}

    def progress(event: ProgressEvent) -> None:
        if event.stage == "train":
            last[event.strategy] = event.step
            if set(last) == {"fake", "fake2"}:  # both training at once
                cancel.set()

    t0 = time.monotonic()
    run_id = run_comparison(config, store=store, progress=progress, cancel=cancel)
    assert store.get_run(run_id).status == "cancelled"
    assert store.get_run(run_id).results == []
    # Both stopped long before their training would have ended.
    assert set(last) == {"fake", "fake2"} and max(last.values()) < steps
    assert time.monotonic() - t0 < 45


def test_a_lost_worker_keeps_the_arm_running_beside_it_and_resume_completes(
    ray_head, tmp_path, mini_corpus, monkeypatch
):
    from eval.run.executor import ArmLost
    from eval.run.harness import run_comparison
    from service.cluster.ray_executor import RayExecutor

    config = _config(
        tmp_path,
        mini_corpus,
        ["fake", "fake2"],
        "ray",
        ray_head,
        batch_size=1,
        strategy_configs={"fake": {"delay_s": 1.0}, "fake2": {"delay_s": 1.0}},
    )
    config = config.replace(executor=config.executor.replace(cpus_per_arm=1))
    store = RunStore(config.store_path)
    run_id = store.create_run(config.to_dict(), "")
    workers, killed = {}, []
    measure = RayExecutor._evaluate

    def remember(self, actor, arm):  # which worker each arm was lent
        workers[arm.label] = actor
        return measure(self, actor, arm)

    monkeypatch.setattr(RayExecutor, "_evaluate", remember)

    def progress(event: ProgressEvent) -> None:
        if event.strategy == "fake2" and event.stage == "answer" and not killed:
            pid = ray.get(workers["fake2"].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(ArmLost):
        run_comparison(config, store=store, progress=progress, run_id=run_id)
    run = store.get_run(run_id)
    assert killed and run.status == "interrupted"
    # fake ran beside it, on a worker of its own, and finished: kept.
    assert [(r.strategy, r.status) for r in run.results] == [("fake", "done")]
    assert run.results[0].extras.placement.pid != killed[0]
    events: list[ProgressEvent] = []
    run_comparison(config, store=store, progress=events.append, run_id=run_id, resume=True)
    run = store.get_run(run_id)
    assert run.status == "done"
    assert {r.strategy: r.status for r in run.results} == {"fake": "done", "fake2": "done"}
    assert ProgressEvent("strategy_done", strategy="fake", status="kept") in events
    assert run.results[1].extras.placement.pid != killed[0]


def test_a_tuned_arm_on_a_one_node_cluster_answers_with_its_trial_adapter(
    ray_head, tmp_path, mini_corpus
):
    """Without storage, on one node of this machine, the chosen trial's adapter is where the
    trial left it, in the run's folder: the arm loads it instead of training again."""
    from eval.run.harness import run_comparison

    config = _config(
        tmp_path,
        mini_corpus,
        ["lora"],
        "ray",
        ray_head,
        strategy_configs={
            "lora": {
                "training": {"max_steps": 2, "batch_size": 4, "eval_every": 1},
                "val_fraction": 0.3,  # its own validation: the trials prepare as the arm will
            },
        },
        tuning={"budget": "quick", "n_trials": 2},
    )
    store = RunStore(config.store_path)
    (result,) = store.get_run(run_comparison(config, store=store)).results
    assert result.status == "done", result.error
    rec = result.extras.tuning
    assert all(t.placement is not None for t in rec.trials)  # the trials ran on the cluster
    assert rec.reused_trial == rec.chosen_trial == result.prepare.details["tuning_trial"]
    assert result.extras.placement is not None and Path(result.prepare.artifact_path).is_dir()
