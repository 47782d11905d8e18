"""Owners: each visitor sees and changes only their own runs, jobs and corpora; the sample is
shared and read-only; a team workspace shares everything; the owner survives a reload."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.access import Access, AccessDenied
from eval.store.artifacts import run_dir
from eval.store.runs import RunNotFound, RunStore, StrategyResult
from service.corpus_library import CorpusLibrary, CorpusNotFound
from service.jobs import JobNotFound, JobQueue, worker_pid
from service.owners import new_owner, valid_owner, workspace_mode
from service.uploads import UploadLimits

APP = str(Path(__file__).resolve().parents[1] / "app.py")
ALICE, BOB = "alice-token-000000001", "bob-token-00000000002"
FILES = [("a.txt", b"Aspirin thins the blood."), ("b.txt", b"Insulin lowers blood sugar.")]


def test_tokens_are_random_and_checked():
    a, b = new_owner(), new_owner()
    assert a != b and valid_owner(a) and len(a) >= 22
    for bad in ("", "short", "../../etc", "x" * 65, None, 12345678901234567890, "a b" * 8):
        assert not valid_owner(bad)


def test_workspace_mode_from_env_then_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ADAPTLAB_WORKSPACE", raising=False)
    assert workspace_mode(tmp_path) == "private"
    (tmp_path / "workspace.yaml").write_text("mode: team\n")
    assert workspace_mode(tmp_path) == "team"
    monkeypatch.setenv("ADAPTLAB_WORKSPACE", "private")
    assert workspace_mode(tmp_path) == "private"  # the environment wins
    monkeypatch.setenv("ADAPTLAB_WORKSPACE", "everyone")
    with pytest.raises(ValueError, match="not one of"):
        workspace_mode(tmp_path)
    monkeypatch.delenv("ADAPTLAB_WORKSPACE")
    (tmp_path / "workspace.yaml").write_text("- team\n")
    with pytest.raises(ValueError, match="mapping"):
        workspace_mode(tmp_path)


def test_access_rules():
    alice = Access(ALICE)
    assert alice.sees(ALICE) and not alice.sees(BOB) and not alice.sees("")
    assert alice.only == ALICE
    team = Access(ALICE, team=True)
    assert team.sees(BOB) and team.sees("") and team.only is None
    assert Access().sees(BOB) and Access().only is None  # the operator (CLI, worker)
    with pytest.raises(AccessDenied, match="not yours"):
        alice.check(BOB, "run x")


def test_store_lists_opens_and_deletes_only_the_owners_runs(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    a = store.create_run({"strategies": []}, "a", owner=ALICE)
    b = store.create_run({"strategies": []}, "b", owner=BOB)
    cli = store.create_run({"strategies": []}, "cli")
    for run_id in (a, b, cli):
        store.finish_run(run_id, "done")
    assert [r.id for r in store.list_runs(access=Access(ALICE))] == [a]
    assert {r.id for r in store.list_runs()} == {a, b, cli}  # the operator sees all
    assert {r.id for r in store.list_runs(access=Access(ALICE, team=True))} == {a, b, cli}
    assert store.get_run(a, Access(ALICE)).owner == ALICE
    with pytest.raises(RunNotFound):
        store.get_run(b, Access(ALICE))
    with pytest.raises(RunNotFound):
        store.delete_run(b, Access(ALICE))
    assert store.get_run(b).status == "done"  # still there
    assert '"owner"' not in store.export_json(a)  # the private link never travels in a file
    store.delete_run(b, Access(ALICE, team=True))
    with pytest.raises(RunNotFound):
        store.get_run(b)


def test_old_store_gets_the_owner_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as c:
        c.execute(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, "
            "created_at REAL NOT NULL, finished_at REAL, config_json TEXT NOT NULL, "
            "fingerprint TEXT, meta_json TEXT NOT NULL DEFAULT '{}', error TEXT)"
        )
        c.execute(
            "INSERT INTO runs (id, status, created_at, config_json) VALUES ('r', 'done', 0, '{}')"
        )
    store = RunStore(path)
    assert store.get_run("r").owner == ""  # older runs are the operator's
    assert store.list_runs(access=Access(ALICE)) == []


def test_jobs_resume_and_cancel_need_the_owner(tmp_path, mini_corpus):
    from tests.test_jobs import make_config

    path = tmp_path / "runs.sqlite"
    queue = JobQueue(path)
    job = queue.submit(make_config(mini_corpus, path), owner=ALICE)
    run_id = queue.get(job).run_id
    assert queue.store.get_run(run_id).owner == ALICE  # the run is the submitter's too
    with pytest.raises(JobNotFound):
        queue.cancel(job, Access(BOB))
    queue.cancel(job, Access(ALICE))
    assert queue.get(job).status == "cancelled"
    with pytest.raises(RunNotFound):
        queue.resume(run_id, owner=BOB, access=Access(BOB))


def test_corpora_are_per_owner_and_the_sample_is_read_only(tmp_path):
    lib = CorpusLibrary(tmp_path / "corpora")
    sample = lib.sample()
    mine = lib.save("mine", FILES, owner=ALICE)
    theirs = lib.save("theirs", FILES, owner=BOB)
    assert mine.id != theirs.id  # the same files, two owners: two entries
    assert [e.id for e in lib.list(Access(ALICE))] == [mine.id, "sample"]
    with pytest.raises(CorpusNotFound):
        lib.get(theirs.id, Access(ALICE))
    with pytest.raises(CorpusNotFound):
        lib.delete(theirs.id, Access(ALICE))
    for who in (Access(ALICE), Access(ALICE, team=True), Access()):
        with pytest.raises(AccessDenied, match="read-only"):
            lib.delete("sample", who)
        with pytest.raises(AccessDenied, match="read-only"):
            lib.set_qa("sample", Path(sample.qa_path), who)
    assert Path(sample.qa_path).is_file() and lib.get("sample").generated_qa is None
    lib.delete(theirs.id, Access(BOB))
    assert [e.id for e in lib.list()] == [mine.id, "sample"]


def test_a_corpus_a_job_reads_cannot_be_deleted(tmp_path):
    from eval.config import RunConfig

    lib = CorpusLibrary(tmp_path / "corpora")
    entry = lib.save("mine", FILES, owner=ALICE, limits=UploadLimits())
    queue = JobQueue(tmp_path / "runs.sqlite")
    config = RunConfig(corpus=entry.docs_path, qa="", strategies=["fake"])
    job = queue.submit(config, owner=ALICE)
    with pytest.raises(ValueError, match="used by a queued or running job"):
        lib.delete(entry.id, Access(ALICE), queue.inputs_in_use())
    queue.cancel(job)
    lib.delete(entry.id, Access(ALICE), queue.inputs_in_use())
    assert lib.list(Access(ALICE)) == []


# --- the app, as two visitors ----------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    monkeypatch.delenv("ADAPTLAB_WORKSPACE", raising=False)
    yield home
    pid = worker_pid(home / "runs.sqlite")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def visit(owner: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if owner is not None:
        at.query_params["owner"] = owner
    at.run()
    assert not at.exception, at.exception
    return at


def history(at: AppTest) -> AppTest:
    at.switch_page("ui/history_page.py")
    at.run()
    assert not at.exception, at.exception
    return at


def finished(store: RunStore, run_id: str) -> None:
    """Mark a run done with one finished strategy (History hides runs with nothing finished)."""
    store.save_strategy(run_id, StrategyResult("fake", "done"))
    store.finish_run(run_id, "done")


def shown_runs(at: AppTest) -> set[str]:
    """The run ids History lists (its table) and offers (its picker)."""
    table = set(at.dataframe[0].value["Run"])
    offered = {o.split(" · ")[0] for o in at.selectbox(key="hist_pick").options}
    assert table == offered
    return table


def test_first_visit_gets_an_owner_that_survives_reload_and_page_changes(home):
    at = visit()
    token = at.query_params["owner"]
    token = token[0] if isinstance(token, list) else token
    assert valid_owner(token)
    history(at)  # switching pages drops query parameters: the token is written back
    again = at.query_params["owner"]
    assert (again[0] if isinstance(again, list) else again) == token
    reload = visit(token)  # a reload is a new session holding the same URL
    assert reload.session_state["owner"] == token


def test_two_owners_neither_see_nor_delete_each_others_runs(home):
    store = RunStore(home / "runs.sqlite")
    config = {"strategies": ["fake"], "workdir": str(home / "work")}
    a = store.create_run(config, "alice's", owner=ALICE)
    b = store.create_run(config, "bob's", owner=BOB)
    for r, size in ((a, 2048), (b, 1024)):
        finished(store, r)
        run_dir(home / "work", r).mkdir(parents=True)
        (run_dir(home / "work", r) / "adapter.bin").write_bytes(b"0" * size)
    alice = history(visit(ALICE))
    assert shown_runs(alice) == {a}
    assert "2.0 KB for the files of these runs" in alice.caption[0].value
    assert "for every run" not in alice.caption[0].value  # Bob's disk use is Bob's
    bob = history(visit(BOB))
    assert shown_runs(bob) == {b}
    bob.button(key="hist_delete").click().run()  # Bob deletes the only run he can pick
    assert not bob.exception
    assert [r.id for r in store.list_runs()] == [a]  # Alice's run is untouched
    assert not run_dir(home / "work", b).exists() and run_dir(home / "work", a).exists()
    stranger = history(visit(new_owner()))
    assert "No runs yet" in " ".join(i.value for i in stranger.info)


def test_team_workspace_shows_everyones_runs(home, monkeypatch):
    store = RunStore(home / "runs.sqlite")
    a = store.create_run({"strategies": ["fake"]}, owner=ALICE)
    b = store.create_run({"strategies": ["fake"]}, owner=BOB)
    for r in (a, b):
        finished(store, r)
    home.mkdir(parents=True, exist_ok=True)
    (home / "workspace.yaml").write_text("mode: team\n")
    assert shown_runs(history(visit(ALICE))) == {a, b}


def test_cli_files_a_run_under_an_owner(tmp_path, mini_corpus, capsys):
    from cli.main import main
    from tests.test_jobs import make_config

    path = tmp_path / "runs.sqlite"
    config = tmp_path / "run.yaml"
    config.write_text(make_config(mini_corpus, path).to_yaml())
    assert main(["run", "--config", str(config), "--quiet", "--owner", ALICE]) == 0
    assert main(["run", "--config", str(config), "--quiet"]) == 0
    store = RunStore(path)
    assert len(store.list_runs(access=Access(ALICE))) == 1  # the operator's run is not hers
    assert {r.owner for r in store.list_runs()} == {ALICE, ""}


def test_a_link_to_another_owner_does_not_take_over_the_session(home):
    """Session fixation: Bob sends Alice `?owner=<Bob's token>`; followed within her session it
    must not silently make her Bob (her uploads would land in his workspace). She is asked, and
    stays herself unless she switches."""
    at = visit(ALICE)
    at.query_params["owner"] = BOB
    at.run()
    assert not at.exception
    assert at.session_state["owner"] == ALICE
    linked = at.query_params["owner"]
    assert (linked[0] if isinstance(linked, list) else linked) == ALICE
    assert "another workspace" in " ".join(w.value for w in at.warning)
    at.button(key="owner_stay").click().run()
    assert at.session_state["owner"] == ALICE and not at.warning
    at.query_params["owner"] = BOB
    at.run()
    at.button(key="owner_switch").click().run()  # a confirmed switch is honoured
    assert not at.exception
    assert at.session_state["owner"] == BOB
    linked = at.query_params["owner"]
    assert (linked[0] if isinstance(linked, list) else linked) == BOB
