"""The cluster manifests in deploy/ parse, validate where a validator ships here (Ray's own
cluster-config schema for `ray up`), and carry the storage setting to every node."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from service.cluster.settings import ClusterSettings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _settings_from_heredoc(command: str) -> ClusterSettings:
    """The operator settings a head setup command writes with `cat > ... <<'SETTINGS'`."""
    body = command.split("<<'SETTINGS'\n", 1)[1].rsplit("SETTINGS", 1)[0]
    return ClusterSettings.from_dict(yaml.safe_load(body))


def test_ray_up_config_validates_and_names_storage_every_node_reaches():
    config = yaml.safe_load((DEPLOY / "cluster.yaml").read_text(encoding="utf-8"))
    ray = pytest.importorskip("ray")  # noqa: F841  (the schema ships with Ray)
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))  # raises on a malformed config
    writes = [c for c in config["head_setup_commands"] if "<<'SETTINGS'" in c]
    assert len(writes) == 1
    settings = _settings_from_heredoc(writes[0])
    assert settings.executor.kind == "ray"
    assert settings.executor.storage.startswith(("s3://", "gs://", "/"))
    # Every node type has the project at the path its workers import it from.
    assert "/home/ubuntu/adaptlab" in config["file_mounts"]
    assert {"head", "cpu_worker", "gpu_worker"} <= set(config["available_node_types"])


def test_kuberay_manifest_mounts_the_storage_on_every_pod():
    docs = list(yaml.safe_load_all((DEPLOY / "raycluster.yaml").read_text(encoding="utf-8")))
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"PersistentVolumeClaim", "ConfigMap", "RayCluster"}
    claim = by_kind["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every node writes and reads it
    settings = ClusterSettings.from_dict(
        yaml.safe_load(by_kind["ConfigMap"]["data"]["cluster.yaml"])
    )
    storage = settings.executor.storage
    cluster = by_kind["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            mounts = [
                m
                for m in container["volumeMounts"]
                if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
                == claim["metadata"]["name"]
            ]
            # The storage the settings name lies under the shared volume's mount, on every pod.
            assert any(storage.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts)
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env["PYTHONPATH"] == container["workingDir"]
    gpus = [
        g
        for g in cluster["spec"]["workerGroupSpecs"]
        if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]
    ]
    assert gpus, "a GPU worker group for trained arms and trials"
