"""Runs on a real two-node Ray cluster on this machine: a head with no CPUs (so every arm lands on
the second node) and a second node (`ray start --address ... --resources '{"second_node": 1}'`,
its own temp folder). Where this process may (root), the second node runs in a mount namespace
of its own with an empty tmpfs over the driver's work folder: like a node of a real cluster, it
cannot see the driver's disk, and what it wrote there can be listed afterwards.

Skipped where Ray is not installed (requirements-cluster.txt), except under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.config import ConfigError, ModelConfig, SplitConfig
from eval.config import RunConfig
from eval.store.artifacts import label_folder, run_dir
from eval.store.runs import RunStore
from eval.views.tables import run_summary
from tests.conftest import require_ray

ray = require_ray()

pytestmark = pytest.mark.cluster


def _can_hide() -> bool:
    """Whether a process here may get a mount namespace with a tmpfs of its own."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs none /mnt"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """(address, the driver's work folder, whether the second node is blind to it, the second
    node's id); this process is the driver. Both nodes are stopped afterwards."""
    from service.cluster.ray_executor import connect
    from service.cluster.ray_head import local_head, local_node

    work = tmp_path_factory.mktemp("driver") / "work"
    work.mkdir()
    hidden = _can_hide()
    with (
        local_head(cpus=0) as address,
        local_node(address, 2, {"second_node": 1}, work if hidden else None),
    ):
        connect(address)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        second = [n["NodeID"] for n in nodes if "second_node" in n["Resources"]]
        yield address, work, hidden, second[0]
        ray.shutdown()


def _config(work: Path, store: Path, mini_corpus, executor: dict) -> RunConfig:
    corpus, qa = mini_corpus
    return RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": ["lora", "rag"],
            "strategy_configs": {"lora": {"max_steps": 2, "batch_size": 2, "val_fraction": 0}},
            "models": ModelConfig(generator="tiny", max_new_tokens=8).to_dict(),
            "split": SplitConfig(seed=3).to_dict(),
            "store_path": str(store),
            "workdir": str(work),
            "bootstrap_resamples": 100,
            "retention_questions": 0,
            "executor": executor,
            "tuning": {"budget": "off"},
        }
    )


def _answers(store: RunStore, run_id: str) -> dict[tuple[str, str], str]:
    return {(a.strategy, a.qid): a.answer.text for a in store.get_answers(run_id)}


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_multi_node_cluster_without_storage_refuses_to_start(two_nodes, tmp_path, mini_corpus):
    from eval.run.harness import run_comparison

    address, work, _, _ = two_nodes
    config = _config(
        work / "refused", tmp_path / "runs.sqlite", mini_corpus, {"kind": "ray", "address": address}
    )
    with pytest.raises(ConfigError, match="storage is not set and the Ray cluster has 2 nodes"):
        run_comparison(config, store=RunStore(config.store_path))


def test_workers_write_to_storage_and_the_driver_reads_the_adapter_from_there(
    two_nodes, tmp_path, mini_corpus
):
    from eval.run.harness import run_comparison

    address, work, hidden, second = two_nodes
    storage = tmp_path / "shared"  # the folder every node reaches
    storage.mkdir()
    ray_config = _config(
        work,
        tmp_path / "ray.sqlite",
        mini_corpus,
        {"kind": "ray", "address": address, "storage": str(storage)},
    )
    local_config = _config(
        tmp_path / "local-work", tmp_path / "local.sqlite", mini_corpus, {"kind": "local"}
    )
    stores = {}
    for name, config in (("local", local_config), ("ray", ray_config)):
        stores[name] = RunStore(config.store_path)
        stores[name] = (stores[name], run_comparison(config, store=stores[name]))
    (local, local_id), (remote, remote_id) = stores["local"], stores["ray"]
    run = remote.get_run(remote_id)
    assert run.status == "done"
    # Answers and scores equal the local run's with the same seed.
    assert _answers(remote, remote_id) == _answers(local, local_id)
    by_local = {r.strategy: r for r in local.get_run(local_id).results}
    for r in run.results:
        assert r.status == "done", r.error
        assert r.metrics == by_local[r.strategy].metrics
        placed = r.extras.placement
        assert placed.node_id == second  # the head has no CPUs: every arm ran on the second node
        assert placed.storage.startswith(str(storage))
        # The nodes inherit this process's nice value; Ray's default would add 15 for workers.
        assert placed.nice == os.getpriority(os.PRIO_PROCESS, 0)
        assert placed.threads and placed.involuntary_switches is not None
    # --json gives each arm's placement (node, CPUs, GPUs, seconds, storage).
    placed = run_summary(run)["strategies"]["lora"]["placement"]
    assert placed["node_id"] == second and placed["cpus"] == 2 and placed["worker_s"] > 0
    assert run.meta.executor["plan"]["arms"]["lora"]["cpus"] == 2
    lora = next(r for r in run.results if r.strategy == "lora")
    adapter = Path(lora.prepare.artifact_path)
    published = run_dir(work, run.id) / label_folder("lora")
    # The driver's copy is in its own run folder, published there as for a local arm ...
    assert adapter.is_dir() and adapter.resolve().is_relative_to(published.resolve())
    assert any(p.name == "adapter_config.json" for p in adapter.rglob("*"))
    # ... and it is what the worker put in storage, file for file, byte for byte.
    key = published.relative_to(work).as_posix()  # the arm's folder under the run's workdir
    assert lora.extras.placement.storage == f"{storage}/{key}"
    assert _files(Path(lora.extras.placement.storage)) == _files(published)
    if hidden:
        # What the second node sees of the driver's work folder: its own empty tmpfs, so no
        # worker wrote there (nor could have read the driver's files from there).
        @ray.remote(num_cpus=1, resources={"second_node": 0.01})
        def listing(folder: str) -> list[str]:
            return [str(p) for p in Path(folder).rglob("*")]

        assert ray.get(listing.remote(str(work))) == []
        assert any(work.rglob("adapter_config.json"))  # while the driver's own view has it


def test_a_tuned_arm_answers_with_its_trial_adapter_sent_through_storage(
    two_nodes, tmp_path, mini_corpus
):
    from eval.run.harness import run_comparison

    address, work, hidden, second = two_nodes
    storage = tmp_path / "shared"
    config = _config(
        work,
        tmp_path / "tuned.sqlite",
        mini_corpus,
        {"kind": "ray", "address": address, "storage": str(storage)},
    ).replace(strategies=["lora"])
    config = config.replace(
        strategy_configs={
            "lora": {
                "training": {"max_steps": 2, "batch_size": 4, "eval_every": 1},
                "val_fraction": 0.3,  # its own validation: the trials prepare as the arm will
            },
        },
        tuning=config.tuning.replace(budget="quick", n_trials=2),
    )
    store = RunStore(config.store_path)
    run = store.get_run(run_comparison(config, store=store))
    (result,) = run.results
    assert result.status == "done", result.error
    rec = result.extras.tuning
    # The arm, on the second node, loaded the chosen trial's adapter (trained here by the
    # tuner) from storage instead of training again.
    assert rec.reused_trial == rec.chosen_trial == result.prepare.details["tuning_trial"]
    assert result.extras.placement.node_id == second
    published = run_dir(work, run.id) / label_folder("lora")
    trial = published / f"tuning-trial-{rec.chosen_trial}"
    assert Path(result.prepare.artifact_path).resolve().is_relative_to(published.resolve())
    assert trial.is_dir() and _files(trial)
    stored = Path(result.extras.placement.storage) / trial.name
    assert _files(stored) == _files(trial)
    if hidden:

        @ray.remote(num_cpus=1, resources={"second_node": 0.01})
        def listing(folder: str) -> list[str]:
            return [str(p) for p in Path(folder).rglob("*")]

        assert ray.get(listing.remote(str(work))) == []


def test_the_estimate_shows_the_placement_plan_before_the_run(two_nodes, tmp_path, mini_corpus):
    from service.estimate.probe import cluster_line

    address, work, _, _ = two_nodes
    executor = {"kind": "ray", "address": address, "storage": str(tmp_path / "shared")}
    line = cluster_line(_config(work, tmp_path / "e.sqlite", mini_corpus, executor))
    assert line.startswith("Ray: 2 node(s), 2 CPUs, 0 GPUs")
    assert f"storage {tmp_path / 'shared'}" in line and "lora 2 CPUs" in line
    refused = cluster_line(
        _config(work, tmp_path / "e.sqlite", mini_corpus, {"kind": "ray", "address": address})
    )
    assert "storage is not set" in refused
