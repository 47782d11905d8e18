"""The pieces of Ray placement that need no cluster: what each arm asks for, how many fit, the
plan line, the storage round trip and its placeholder, and the worker's process figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import ConfigError
from eval.config import ExecutorConfig, RunConfig
from service.cluster.plan import ArmRequest, ClusterShape, arm_request, placement_plan, plan_line
from service.cluster.process_figures import ProcessFigures
from service.cluster.storage import (
    ARM_FOLDER,
    Storage,
    check_reachable,
    from_placeholder,
    to_placeholder,
)

GPU_NODES = ClusterShape([{"CPU": 8.0, "GPU": 1.0}, {"CPU": 4.0}])


def test_a_trained_arm_asks_for_a_gpu_where_the_cluster_has_one():
    executor = ExecutorConfig(kind="ray", cpus_per_arm=2, untrained_gpus=0.25)
    assert arm_request(executor, "lora", GPU_NODES) == ArmRequest(2, 1.0)
    assert arm_request(executor, "rag", GPU_NODES) == ArmRequest(2, 0.25)
    cpu_only = ClusterShape([{"CPU": 8.0}])
    assert arm_request(executor, "lora", cpu_only) == ArmRequest(2, 0.0)


def test_cpus_per_arm_default_to_a_local_run_capped_at_the_largest_node():
    executor = ExecutorConfig(kind="ray")  # cpus_per_arm 0: what a local run uses
    here = len(os.sched_getaffinity(0))
    assert arm_request(executor, "rag", ClusterShape([{"CPU": 64.0}])).cpus == here
    assert arm_request(executor, "rag", ClusterShape([{"CPU": 1.0}, {"CPU": 1.0}])).cpus == 1


def test_the_plan_counts_what_fits_and_says_what_cannot_be_placed():
    executor = ExecutorConfig(kind="ray", cpus_per_arm=4, untrained_gpus=0.5, storage="/mnt/s")
    plan = placement_plan(executor, ["lora", "rag"], GPU_NODES)
    # lora: 4 CPUs + 1 GPU: only the GPU node, once. rag: 4 CPUs + 0.5 GPU: twice on it by
    # CPUs and GPUs alike, never on the node without a GPU.
    assert plan["arms"]["lora"] == {"cpus": 4, "gpus": 1.0, "fit_at_once": 1}
    assert plan["arms"]["rag"] == {"cpus": 4, "gpus": 0.5, "fit_at_once": 2}
    assert (plan["nodes"], plan["cpus"], plan["gpus"]) == (2, 12.0, 1.0)
    # Arms at once: as many as the most plentiful request fits (two rag arms).
    assert plan["at_once"] == 2
    line = plan_line(plan)
    assert "lora 4 CPUs + 1 GPU" in line and "storage /mnt/s" in line
    assert line.endswith("up to 2 arm(s) at once")
    del plan["at_once"]  # a plan stored before arms ran at once: one at a time
    assert plan_line(plan).endswith("up to 1 arm(s) at once")
    too_big = placement_plan(ExecutorConfig(kind="ray", cpus_per_arm=16), ["rag"], GPU_NODES)
    assert "cannot be placed" in plan_line(too_big)


def test_executor_settings_for_gpus_niceness_and_storage_are_validated():
    for bad in (
        {"num_gpus": -1},
        {"num_gpus": 1.5},
        {"untrained_gpus": 2},
        {"worker_niceness": 20},
        {"storage": "ftp://host/x"},
    ):
        with pytest.raises(ConfigError):
            ExecutorConfig(kind="ray", **bad)
    got = RunConfig.from_yaml("executor: {kind: ray, storage: 's3://bucket/runs', num_gpus: 0.5}")
    assert (got.executor.storage, got.executor.num_gpus) == ("s3://bucket/runs", 0.5)


def test_the_cli_flag_sets_storage():
    from cli.args import parser
    from cli.main import build_config

    args = parser().parse_args(["run", "--ray-address", "h:6379", "--storage", "/mnt/shared"])
    assert build_config(args).executor.storage == "/mnt/shared"


def test_a_multi_node_cluster_needs_storage():
    check_reachable("", 1)
    check_reachable("/mnt/shared", 3)
    with pytest.raises(ConfigError, match="storage is not set and the Ray cluster has 2 nodes"):
        check_reachable("", 2)


def test_storage_round_trip_keeps_every_file(tmp_path):
    src = tmp_path / "built"
    (src / "adapter").mkdir(parents=True)
    (src / "adapter" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (src / "index.json").write_text("{}", encoding="utf-8")
    storage = Storage(str(tmp_path / "shared"))
    storage.put(src, "run-1/lora")
    (src / "index.json").write_text("changed", encoding="utf-8")
    storage.put(src, "run-1/lora")  # replaced, not merged
    out = tmp_path / "fetched"
    storage.get("run-1/lora", out)
    assert (out / "adapter" / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    assert (out / "index.json").read_text(encoding="utf-8") == "changed"
    storage.get("run-1/absent", tmp_path / "none")  # nothing there: an empty folder
    assert list((tmp_path / "none").iterdir()) == []
    assert storage.location("run-1/lora") == f"{tmp_path / 'shared'}/run-1/lora"


def test_paths_cross_machines_as_the_placeholder(tmp_path):
    worker = tmp_path / "scratch"
    record = {"artifact_path": f"{worker}/adapter", "other": "/elsewhere", "n": 3}
    moved = to_placeholder(record, worker)
    assert moved == {"artifact_path": f"{ARM_FOLDER}/adapter", "other": "/elsewhere", "n": 3}
    assert from_placeholder(moved, Path("/driver/run/lora"))["artifact_path"] == (
        "/driver/run/lora/adapter"
    )


def test_process_figures_count_this_process_threads_and_switches():
    before = ProcessFigures.read()
    assert before.nice == os.getpriority(os.PRIO_PROCESS, 0)
    assert before.threads >= 1
    after = ProcessFigures.read()
    assert after.since(before) >= 0
