"""An arm's tuning trials as Ray Tune trials on a real two-node Ray cluster on this machine (a
head and a second node, one CPU each, so two trials run at once, one per node).

Skipped where Ray is not installed (requirements-cluster.txt), except under CI=true."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from cli.main import summary_with_diagnostics
from core.config import ModelConfig, SplitConfig
from eval.config import RunConfig
from eval.events import ProgressEvent
from eval.store.artifacts import run_dir
from eval.store.runs import RunStore
from tests.conftest import require_ray

ray = require_ray()

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def two_nodes():
    """(address, the two node ids); this process is the driver. Stopped afterwards."""
    from service.cluster.ray_executor import connect
    from service.cluster.ray_head import local_head, local_node

    with local_head(cpus=1) as address, local_node(address, 1, {"second_node": 1}):
        connect(address)
        yield address, {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        ray.shutdown()


def _config(tmp_path: Path, mini_corpus, executor: dict, **extra) -> RunConfig:
    corpus, qa = mini_corpus
    return RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": ["system_prompt"],
            "models": ModelConfig(generator="tiny", max_new_tokens=8).to_dict(),
            "split": SplitConfig(seed=3).to_dict(),
            "store_path": str(tmp_path / "runs.sqlite"),
            "workdir": str(tmp_path / "work"),
            "bootstrap_resamples": 100,
            "retention_questions": 0,
            "executor": executor,
            # The system prompt's instructions: a finite space, each tried once.
            "tuning": {"budget": "quick", "n_trials": 4, "adopt": "best"},
            **extra,
        }
    )


def _ray(tmp_path: Path, address: str) -> dict:
    return {"kind": "ray", "address": address, "storage": str(tmp_path / "shared")}


def _trials(record) -> dict[str, tuple]:
    """Each trial's outcome by its settings (the order trials finish in may differ)."""
    return {
        str(sorted(t.values.items())): (t.state, t.value, t.default, t.answered)
        for t in record.trials
    }


def test_trials_run_on_the_cluster_and_choose_as_a_local_run(two_nodes, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    address, node_ids = two_nodes
    got = {}
    for kind, executor in (("local", {"kind": "local"}), ("ray", _ray(tmp_path, address))):
        config = _config(tmp_path / kind, mini_corpus, executor)
        store = RunStore(config.store_path)
        run_id = run_comparison(config, store=store)
        got[kind] = (store, run_id)
    (local, local_id), (remote, remote_id) = got["local"], got["ray"]
    (mine,), (theirs,) = remote.get_run(remote_id).results, local.get_run(local_id).results
    assert mine.status == theirs.status == "done", mine.error
    rec, local_rec = mine.extras.tuning, theirs.extras.tuning
    assert rec.status == "tuned" and len(rec.trials) == 4
    assert _trials(rec) == _trials(local_rec)
    assert rec.chosen == local_rec.chosen and rec.default_score == local_rec.default_score
    assert mine.config == theirs.config
    assert mine.metrics == theirs.metrics
    answers = {(a.strategy, a.qid): a.answer.text for a in remote.get_answers(remote_id)}
    assert answers == {(a.strategy, a.qid): a.answer.text for a in local.get_answers(local_id)}
    placed = [t.placement for t in rec.trials]
    assert all(p is not None and p.pid != os.getpid() and p.cpus == 1 for p in placed)
    assert {p.node_id for p in placed} <= node_ids
    # At the executor's nice value (0), not Ray's default 15 for the workers it starts.
    assert {p.nice for p in placed} == {0}
    assert all(t.placement is None for t in local_rec.trials)
    # One experiment: its worker, started for the default trial, served the next ones with
    # the generator it had loaded (loaded once, not once more for the trials after it).
    assert placed[0].load_s > 0 and any(p.pid == placed[0].pid for p in placed[1:])
    # --json: tuning.<arm>.trials[].placement
    summary = summary_with_diagnostics(remote, remote_id)
    rows = summary["tuning"]["system_prompt"]["trials"]
    assert [r["placement"]["node_id"] for r in rows] == [p.node_id for p in placed]
    assert all(r["placement"]["worker_s"] > 0 for r in rows)


def test_an_arm_s_trials_run_two_at_once_on_both_nodes(two_nodes, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    address, node_ids = two_nodes
    # Trials of some seconds each: shorter ones all finish on the default trial's worker
    # (Tune reuses it) before a second worker has started on the other node.
    models = ModelConfig(generator="tiny", max_new_tokens=512).to_dict()
    config = _config(tmp_path, mini_corpus, _ray(tmp_path, address), models=models, batch_size=1)
    store = RunStore(config.store_path)
    run_id = run_comparison(config, store=store)
    (result,) = store.get_run(run_id).results
    assert result.status == "done", result.error
    placed = [t.placement for t in result.extras.tuning.trials]
    assert len(placed) == 4 and {p.node_id for p in placed} == node_ids
    rows = summary_with_diagnostics(store, run_id)["tuning"]["system_prompt"]["trials"]
    assert {r["placement"]["node_id"] for r in rows} == node_ids


def test_a_killed_trial_is_retried_and_the_run_goes_on(two_nodes, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    address, _ = two_nodes
    config = _config(tmp_path, mini_corpus, _ray(tmp_path, address), batch_size=1)
    store, killed = RunStore(config.store_path), []

    def progress(event: ProgressEvent) -> None:
        # The first report of a trial after the default: kill the worker running it.
        trial, pid = event.figures.get("trial"), event.figures.get("pid")
        if event.stage == "tune" and pid and trial and not killed:
            os.kill(int(pid), signal.SIGKILL)
            killed.append((trial, int(pid)))

    run = store.get_run(run_comparison(config, store=store, progress=progress))
    (result,) = run.results
    assert killed and run.status == "done" and result.status == "done", result.error
    number, pid = killed[0]
    rec = result.extras.tuning
    assert len(rec.trials) == 4 and rec.n_failed == 0
    retried = next(t for t in rec.trials if t.number == number)
    assert retried.state == "complete" and retried.placement.pid != pid


def test_cancel_stops_every_trial(two_nodes, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    address, _ = two_nodes
    config = _config(tmp_path, mini_corpus, _ray(tmp_path, address), batch_size=1)
    store, cancel = RunStore(config.store_path), threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.stage == "tune" and event.figures.get("trial"):  # past the default trial
            cancel.set()

    run_id = run_comparison(config, store=store, progress=progress, cancel=cancel)
    assert store.get_run(run_id).status == "cancelled"
    # The trials running at the cancel were stopped, not finished: failed without an error
    # of their own, so a resumed run runs them again.
    study = optuna.load_study(
        study_name=optuna.get_all_study_names(_journal(config, run_id))[0],
        storage=_journal(config, run_id),
    )
    states = {t.number: t.state for t in study.trials}
    assert states[0] == TrialState.COMPLETE and TrialState.FAIL in states.values()
    # No trial goes on after the run: every trial's worker has ended, its CPU free again.
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.5)


def _journal(config: RunConfig, run_id: str) -> JournalStorage:
    path = run_dir(config.workdir, run_id) / "tuning" / "trials.journal"
    return JournalStorage(JournalFileBackend(str(path)))


def test_a_resumed_run_runs_no_finished_trial_again(two_nodes, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    address, _ = two_nodes
    config = _config(tmp_path, mini_corpus, _ray(tmp_path, address))
    store, cancel = RunStore(config.store_path), threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.stage == "tune" and event.figures.get("trial"):  # the default has finished
            cancel.set()

    run_id = run_comparison(config, store=store, progress=progress, cancel=cancel)
    assert store.get_run(run_id).status == "cancelled"
    storage = _journal(config, run_id)
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    finished = {
        t.number: t.user_attrs["placement"] for t in study.trials if t.state == TrialState.COMPLETE
    }
    assert 0 in finished  # the default trial, on the worker that ran it

    run_comparison(config, store=store, run_id=run_id, resume=True)
    run = store.get_run(run_id)
    (result,) = run.results
    assert run.status == "done" and result.status == "done", result.error
    rec = result.extras.tuning
    rows = {t.number: t for t in rec.trials}
    # The finished trials were read back from the journal, not run again: the same outcome
    # on the same worker in the same seconds; the default trial once.
    for number, placement in finished.items():
        assert rows[number].state == "complete"
        assert rows[number].placement.to_dict() == placement
    assert sum(t.default for t in rec.trials) == 1
    # The resumed run ran the rest of the budget of four on the cluster.
    assert len([t for t in rec.trials if t.state == "complete"]) == 4
    ran = [t for n, t in rows.items() if n not in finished and t.placement is not None]
    assert ran and all(t.placement.pid not in {p["pid"] for p in finished.values()} for t in ran)


def test_trials_past_the_time_budget_are_stopped_and_recorded_as_pruned(
    two_nodes, tmp_path, mini_corpus
):
    from eval.run.harness import run_comparison

    address, _ = two_nodes
    # Trials of some seconds; half a second for those after the default: they are stopped
    # as the budget ends.
    models = ModelConfig(generator="tiny", max_new_tokens=512).to_dict()
    config = _config(tmp_path, mini_corpus, _ray(tmp_path, address), models=models, batch_size=1)
    config = config.replace(tuning=config.tuning.replace(max_seconds=0.5))
    store = RunStore(config.store_path)
    run_id = run_comparison(config, store=store)
    (result,) = store.get_run(run_id).results
    assert result.status == "done", result.error
    rec = result.extras.tuning
    states = [t.state for t in rec.trials if not t.default]
    assert states and "pruned" in states and "fail" not in states
    # None is left running in the journal (a resume would count it as killed).
    study = optuna.load_study(study_name=None, storage=_journal(config, run_id))
    assert TrialState.RUNNING not in {t.state for t in study.trials}


def test_two_arms_tuned_at_once_from_threads(two_nodes, tmp_path, mini_corpus):
    """Parallel arms (or the app's parallel runs) tune from threads of one driver: each arm's
    search keeps to its own trials (Ray Tune's trainable registry is process-wide)."""
    from eval.run.harness import run_comparison

    address, _ = two_nodes
    got: dict[str, object] = {}

    def run(name: str) -> None:
        config = _config(tmp_path / name, mini_corpus, _ray(tmp_path / name, address))
        store = RunStore(config.store_path)
        got[name] = store.get_run(run_comparison(config, store=store)).results[0]

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a, b = got["a"], got["b"]
    assert a.status == b.status == "done", (a.error, b.error)
    assert _trials(a.extras.tuning) == _trials(b.extras.tuning)  # same inputs, same outcomes
    assert all(t.placement for t in a.extras.tuning.trials + b.extras.tuning.trials)


def test_an_arm_tunes_while_another_is_measured(two_nodes, tmp_path, mini_corpus):
    """Arms run at once: fake is measured on one node's CPU while system_prompt's trials take
    the other; once fake is done its idle worker gives its CPU back to the trials."""
    from eval.run.harness import run_comparison

    address, _ = two_nodes
    config = _config(
        tmp_path,
        mini_corpus,
        _ray(tmp_path, address),
        strategies=["fake", "system_prompt"],
        strategy_configs={"fake": {"delay_s": 0.5}},
    )
    store = RunStore(config.store_path)
    run = store.get_run(run_comparison(config, store=store))
    by = {r.strategy: r for r in run.results}
    assert run.status == "done"
    assert all(r.status == "done" for r in by.values()), [r.error for r in by.values()]
    rec = by["system_prompt"].extras.tuning
    assert len(rec.trials) == 4 and all(t.placement for t in rec.trials)


@pytest.mark.parametrize("racing", ["rungs", "clear"])
def test_trials_are_raced_out_as_in_a_local_search(two_nodes, tmp_path, racing):
    """On enough validation pairs to race (the sample's 294 training pairs), the trials on the
    cluster stop where the local search's stop (the same pruner on the same running scores):
    the tiny model scores 0 everywhere, so with rungs each trial after the default ties it at
    the first rung, 16 pairs, and stops there, and the default is asked no further. Racing
    only what is clearly behind, every tie answers all 294, and the default with them: the
    rivals answer it on the pairs past its first rung, on the cluster as in process."""
    from eval.run.harness import run_comparison

    address, _ = two_nodes
    sample = Path(__file__).resolve().parents[1] / "sample_data"
    got = {}
    for kind, executor in (("local", {"kind": "local"}), ("ray", _ray(tmp_path, address))):
        config = RunConfig.from_dict(
            {
                "corpus": str(sample / "corpus"),
                "qa": str(sample / "qa.jsonl"),
                "strategies": ["system_prompt"],
                "models": ModelConfig(generator="tiny", max_new_tokens=4).to_dict(),
                "store_path": str(tmp_path / kind / "runs.sqlite"),
                "workdir": str(tmp_path / kind / "work"),
                "n_test": 4,
                "bootstrap_resamples": 100,
                "retention_questions": 0,
                "executor": executor,
                "tuning": {"budget": "quick", "n_trials": 4, "racing": racing},
            }
        )
        store = RunStore(config.store_path)
        (result,) = store.get_run(run_comparison(config, store=store)).results
        assert result.status == "done", result.error
        got[kind] = result.extras.tuning
    local, remote = got["local"], got["ray"]
    assert _trials(remote) == _trials(local)
    answered = sorted(t.answered for t in remote.trials)
    assert remote.val_pairs == 294
    if racing == "rungs":
        assert answered == [16, 16, 16, 16]
        assert [t.state for t in remote.trials if not t.default] == ["pruned"] * 3
    else:
        assert answered == [294] * 4 and remote.default_score.n == 294
        assert [t.state for t in remote.trials] == ["complete"] * 4
