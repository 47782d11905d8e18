"""Read-modify-write of a run's metadata and of an owner's settings from two processes at once
(the page and the worker): neither may lose the other's writes."""

from __future__ import annotations

import multiprocessing

import pytest

from eval.store.runs import RunStore
from service.owner_state import OwnerStates

N = 60


def _meta_writer(path: str, run_id: str, who: str) -> None:
    store = RunStore(path)
    for i in range(N):
        store.update_run(run_id, **{f"{who}{i}": i})


def _widget_writer(path: str, who: str) -> None:
    states = OwnerStates(path)
    for i in range(N):
        states.update("owner-token-0000000001", widgets={f"{who}{i}": i})


def _race(target, *args) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=(*args, who)) for who in ("page", "worker")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


@pytest.mark.parametrize("attempt", range(2))
def test_concurrent_meta_updates_keep_every_write(tmp_path, attempt):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"strategies": []})
    _race(_meta_writer, str(store.path), run_id)
    meta = store.get_run(run_id).meta.to_dict()  # the writers' keys are unknown to RunMeta
    lost = [f"{w}{i}" for w in ("page", "worker") for i in range(N) if f"{w}{i}" not in meta]
    assert not lost, f"{len(lost)} writes lost"


@pytest.mark.parametrize("attempt", range(2))
def test_concurrent_owner_setting_updates_keep_every_write(tmp_path, attempt):
    path = tmp_path / "runs.sqlite"
    _race(_widget_writer, str(path))
    widgets = OwnerStates(path).get("owner-token-0000000001").widgets
    lost = [f"{w}{i}" for w in ("page", "worker") for i in range(N) if f"{w}{i}" not in widgets]
    assert not lost, f"{len(lost)} writes lost"
