"""`RunStore.list_runs` returns typed `RunSummary` records: each run's stored strategies in the
order they were stored, those that finished, newest first, only the runs an owner sees."""

from __future__ import annotations

import dataclasses
import time

import pytest

from cli.main import main
from core.access import Access
from eval.store.rows import RunSummary
from eval.store.runs import RunStore, StrategyResult

ALICE = "alice-token-000000001"


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def _runs(store: RunStore) -> tuple[str, str, str]:
    """A finished run (rag done, lora failed, fake done, stored in that order), one of Alice's
    still running with nothing stored, and a failed one with only a failed strategy."""
    first = store.create_run({"strategies": ["rag", "lora", "fake"]}, name="baseline")
    for name, status in (("rag", "done"), ("lora", "failed"), ("fake", "done")):
        store.save_strategy(first, StrategyResult(name, status))
    store.finish_run(first, "done")
    time.sleep(0.01)  # created_at orders the listing
    second = store.create_run({"strategies": ["fake"]}, owner=ALICE, process=None)
    time.sleep(0.01)
    third = store.create_run({"strategies": ["lora"]})
    store.save_strategy(third, StrategyResult("lora", "failed", error="out of memory"))
    store.finish_run(third, "failed", "lora failed")
    return first, second, third


def test_list_runs_returns_typed_summaries_newest_first(store):
    first, second, third = _runs(store)
    listed = store.list_runs()
    assert all(isinstance(r, RunSummary) for r in listed)
    assert [r.id for r in listed] == [third, second, first]
    newest, running, oldest = listed
    assert oldest.name == "baseline" and oldest.status == "done" and oldest.owner == ""
    assert oldest.strategies == ["rag", "lora", "fake"]  # stored order, not alphabetical
    assert oldest.finished == ["rag", "fake"] and oldest.has_finished
    assert oldest.took_s is not None and oldest.took_s >= 0
    assert running.strategies == [] and running.finished == [] and not running.has_finished
    assert running.owner == ALICE and running.took_s is None and running.name == ""
    assert newest.strategies == ["lora"] and not newest.has_finished
    assert newest.status == "failed"
    with pytest.raises(dataclasses.FrozenInstanceError):
        oldest.status = "failed"


def test_list_runs_limits_and_filters_by_owner(store):
    first, second, third = _runs(store)
    assert [r.id for r in store.list_runs(limit=2)] == [third, second]
    assert [r.id for r in store.list_runs(access=Access(ALICE))] == [second]
    # A limit counts runs, not stored results: the three strategies of `first` are one row.
    assert [r.id for r in store.list_runs(limit=1, access=Access())] == [third]
    assert len(store.list_runs(limit=3)) == 3


def test_cli_list_prints_each_run_with_its_strategies(store, capsys):
    first, _, third = _runs(store)
    assert main(["list", "--store", str(store.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith(third) and lines[2].startswith(first)
    assert "rag,lora,fake  baseline" in lines[2] and " done " in lines[2]
