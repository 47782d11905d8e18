"""Two owners in one app: the second cannot find, load, download or learn the path of the
first's adapter by any typed path (the Playground's adapter folder, lora.adapter_path on the Run
page, the home, `..` tricks, the old token-named folder), nor read it from an export."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.access import Access
from core.untrusted.allowlist import LocationRefused, check_location
from eval.records import CostSummary, PreparedRecord
from eval.store.artifacts import run_dir
from eval.store.runs import RunStore, StrategyResult
from service.jobs import worker_pid
from service.owners import owner_folder, upload_folder, upload_roots

APP = str(Path(__file__).resolve().parents[1] / "app.py")
ALICE, BOB = "alice-token-000000001", "bob-token-00000000002"


def adapter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    return folder


@pytest.fixture
def two_owners(tmp_path, monkeypatch):
    """Alice has an upload, an upload in the old token-named folder and a run with a trained
    adapter; Bob has an upload and a finished run of his own."""
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    monkeypatch.delenv("ADAPTLAB_WORKSPACE", raising=False)
    store = RunStore(home / "runs.sqlite")
    runs = {}
    for owner in (ALICE, BOB):
        config = {"strategies": ["fake"], "workdir": str(home / "work")}
        run_id = store.create_run(config, owner=owner)
        trained = adapter(run_dir(home / "work", run_id) / "lora" / "weights")
        prepare = PreparedRecord(artifact_path=str(trained), trainable_params=8)
        result = StrategyResult("fake", "done", {}, prepare, CostSummary(), {})
        store.save_strategy(run_id, result)
        store.finish_run(run_id, "done")
        runs[owner] = run_id
    paths = {
        "alice_upload": adapter(upload_folder(home, ALICE) / "u1" / "secret-adapter"),
        "alice_legacy": adapter(home / "adapters" / ALICE / "u0" / "old-secret"),
        "alice_run": run_dir(home / "work", runs[ALICE]),
        "bob_upload": adapter(upload_folder(home, BOB) / "u2" / "bobs"),
    }
    yield home, store, runs, paths
    pid = worker_pid(home / "runs.sqlite")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def attacks(home: Path, paths: dict) -> list[str]:
    """Every way Bob might type his way to Alice's adapter."""
    alice = paths["alice_upload"]
    return [
        str(home),
        str(home / "adapters"),
        os.path.relpath(home / "adapters", Path.cwd()),  # `.adaptlab/adapters` from the cwd
        str(alice),
        str(alice.parent.parent),
        str(upload_folder(home, BOB) / ".." / owner_folder(ALICE)),
        str(upload_folder(home, BOB) / ".." / ".."),
        str(paths["alice_legacy"]),
        str(home / "adapters" / ALICE),
        str(home / "work"),
        str(home / "work" / "runs"),
        str(paths["alice_run"]),
        str(paths["alice_run"] / "lora" / "weights"),
    ]


def test_the_library_confines_each_owner_to_their_folders(two_owners):
    home, store, runs, paths = two_owners
    roots = {
        o: [*upload_roots(home, Access(o)), *store.run_folders(Access(o))] for o in (ALICE, BOB)
    }
    for value in attacks(home, paths):
        with pytest.raises(LocationRefused):
            check_location(value, roots=roots[BOB], what="adapter")
    for mine in ("alice_upload", "alice_legacy", "alice_run"):  # Alice keeps hers, old ones too
        assert check_location(str(paths[mine]), roots=roots[ALICE]) == str(paths[mine].resolve())
    assert check_location(str(paths["bob_upload"]), roots=roots[BOB])
    assert ALICE not in str(upload_folder(home, ALICE))  # a hash names the folder, not the token


def visit(owner: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["owner"] = owner
    at.session_state["show_hidden_strategies"] = True
    at.run()
    assert not at.exception, at.exception
    return at


def page_text(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("error", "warning", "success", "info", "markdown", "caption")
        for e in getattr(at, kind)
    ]
    return " | ".join(str(p) for p in parts)


def test_bob_cannot_load_alices_adapter_in_the_playground(two_owners):
    home, _, _, paths = two_owners
    at = visit(BOB)
    at.switch_page("ui/playground_page.py")
    at.run()
    assert not at.exception, at.exception
    for value in attacks(home, paths):
        at.text_input(key="pg_adapter_dir").set_value(value).run()
        at.button(key="pg_load").click().run()
        assert not at.exception, at.exception
        assert at.error, value
        assert at.session_state["pg_adapters"] == [], value
        shown = page_text(at)
        assert "is not one you can use here" in shown  # the same refusal for every path
        for found in ("secret-adapter", "old-secret", "weights", "adapter_config"):
            assert found not in shown, (value, found)  # nothing found, nothing named
        assert str(home) not in shown  # no server path, not even the typed one
    # The control: Bob's own upload loads.
    at.text_input(key="pg_adapter_dir").set_value(str(paths["bob_upload"])).run()
    at.button(key="pg_load").click().run()
    assert not at.error and at.session_state["pg_adapters"], page_text(at)


def test_bob_cannot_name_alices_adapter_as_lora_adapter_path(two_owners):
    home, _, _, paths = two_owners
    at = visit(BOB)
    at.switch_page("ui/run_page.py")
    at.run()
    at.multiselect(key="run.strategies").set_value(["lora"]).run()
    for value in (str(home / "adapters"), str(paths["alice_upload"]), str(paths["alice_run"])):
        at.text_input(key="run.lora.adapter_path").set_value(value).run()
        assert not at.exception, at.exception
        errors = " ".join(e.value for e in at.error)
        assert "adapter" in errors and "not one you can use" in errors, errors
        assert at.button(key="run").disabled
    at.text_input(key="run.lora.adapter_path").set_value(str(paths["bob_upload"])).run()
    assert "not one you can use" not in " ".join(e.value for e in at.error)


def test_an_export_carries_no_server_path_nor_token(two_owners):
    home, store, runs, _ = two_owners
    text = store.export_json(runs[ALICE])
    assert str(home) not in text and ALICE not in text and owner_folder(ALICE) not in text
    prepare = json.loads(text)["results"][0]["prepare"]
    assert prepare["artifact_path"] == "lora/weights"  # relative to the run's folder
