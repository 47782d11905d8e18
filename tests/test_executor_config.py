"""The executor setting without a cluster: config, CLI flags, the operator's cluster.yaml, the
browser's refusal of a cluster address, History's "Where", and the local executor's run."""

from __future__ import annotations

import pytest

from cli.args import parser
from cli.main import build_config
from core.config import ConfigError
from core.untrusted.allowlist import LocationRefused, check_run_settings
from eval.config import RunConfig
from eval.records import Placement, ResultExtras
from eval.run.executor import EXECUTORS, LocalExecutor
from eval.store.rows import RunMeta
from service.cluster.ray_executor import RayExecutor
from service.cluster.settings import ExecutorConfig, load_cluster_settings, where_ran
from service.cluster.slots import RunSlots, with_operator_executor


def test_local_is_the_default_and_ray_is_registered():
    assert RunConfig().executor.kind == "local"
    assert dict(EXECUTORS) == {"local": LocalExecutor, "ray": RayExecutor}


def test_executor_settings_are_validated():
    with pytest.raises(ConfigError):
        ExecutorConfig(kind="slurm")
    with pytest.raises(ConfigError):
        ExecutorConfig(kind="ray", cpus_per_arm=-1)
    got = RunConfig.from_yaml("executor: {kind: ray, address: 'head:6379', cpus_per_arm: 2}")
    assert (got.executor.kind, got.executor.address, got.executor.cpus_per_arm) == (
        "ray",
        "head:6379",
        2,
    )


def test_cli_flags_set_the_executor():
    args = parser().parse_args(["run", "--executor", "ray", "--ray-address", "10.0.0.1:6379"])
    assert build_config(args).executor == ExecutorConfig("ray", "10.0.0.1:6379")
    implied = build_config(parser().parse_args(["run", "--ray-address", "h:6379"]))
    assert implied.executor.kind == "ray"
    assert build_config(parser().parse_args(["run"])).executor.kind == "local"


def test_operator_cluster_yaml_decides_a_queued_runs_executor(tmp_path):
    store = tmp_path / "runs.sqlite"
    browser = RunConfig(executor=ExecutorConfig("ray", "evil.example:6379"))
    # No cluster.yaml: local, one run at a time, whatever the browser sent.
    assert with_operator_executor(browser, store).executor == ExecutorConfig()
    assert load_cluster_settings(tmp_path).parallel_runs == 1
    (tmp_path / "cluster.yaml").write_text(
        "executor: {kind: ray, address: 'head:6379'}\nparallel_runs: 3\n", encoding="utf-8"
    )
    assert with_operator_executor(browser, store).executor == ExecutorConfig("ray", "head:6379")
    assert load_cluster_settings(tmp_path).parallel_runs == 3
    (tmp_path / "cluster.yaml").write_text("parallel_runs: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_cluster_settings(tmp_path)


def test_a_browser_never_names_a_cluster_address(tmp_path):
    settings = RunConfig(executor=ExecutorConfig("ray", "head:6379")).to_dict()
    with pytest.raises(LocationRefused, match="operator"):
        check_run_settings(settings, tmp_path)
    check_run_settings(RunConfig().to_dict(), tmp_path)  # no address: nothing refused


def test_where_ran_reads_the_stored_placement():
    meta = RunMeta.from_dict  # where_ran reads the run's typed meta
    assert where_ran(meta({}), []) == "local"
    local = meta({"executor": {"kind": "local", "node": "laptop"}})
    assert where_ran(local, [ResultExtras()]) == "local (laptop)"
    placed = [
        ResultExtras(placement=Placement(node="gpu-2", device="cuda")),
        ResultExtras(placement=Placement(node="cpu-1", device="cpu")),
    ]
    assert (
        where_ran(meta({"executor": {"kind": "ray"}}), placed) == "ray: cpu-1 (cpu), gpu-2 (cuda)"
    )
    assert where_ran(meta({"executor": {"kind": "ray", "nodes": 4}}), []) == "ray (4 node(s))"


def test_run_slots_hold_at_most_their_size():
    import threading

    gate = threading.Event()
    slots = RunSlots(2)
    slots.start(gate.wait)
    assert slots.free()
    slots.start(gate.wait)
    assert not slots.free() and slots.running() == 2
    gate.set()
    slots.join()
    assert slots.free() and slots.running() == 0


def test_a_local_run_records_where_it_ran(tmp_path, mini_corpus):
    from eval.run.harness import run_comparison
    from eval.store.runs import RunStore

    corpus, qa = mini_corpus
    config = RunConfig(
        corpus=str(corpus),
        qa=str(qa),
        strategies=["fake"],
        store_path=str(tmp_path / "runs.sqlite"),
        workdir=str(tmp_path / "work"),
        bootstrap_resamples=100,
    )
    store = RunStore(config.store_path)
    run = store.get_run(run_comparison(config, store=store))
    assert run.status == "done"
    assert run.meta.executor["kind"] == "local"
    assert run.results[0].extras.placement is None  # a local arm's extras are as before
    assert "placement" not in run.results[0].extras.to_dict()
