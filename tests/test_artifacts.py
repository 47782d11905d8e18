"""Run files per run id (staged then renamed, deleted with the run), process liveness, and the
input stamp a resume checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.procs import ALIVE, GONE, UNKNOWN, ProcessRef, pid_alive
from eval.run.stamp import InputsChanged, InputStamp, file_sha256
from eval.store.artifacts import (
    Staged,
    clean_leftovers,
    delete_run_files,
    disk_usage,
    folder_bytes,
    human_bytes,
    label_folder,
    relocate,
    run_dir,
)


# --- artifacts --------------------------------------------------------------------------------
def test_run_dir_is_per_run_and_refuses_odd_ids(tmp_path):
    assert run_dir(tmp_path, "20260101-000000-abc123") == tmp_path.resolve() / "runs" / (
        "20260101-000000-abc123"
    )
    assert run_dir(tmp_path, "a") != run_dir(tmp_path, "b")
    for bad in ("../x", "/etc", "", "..", "a/b", ".hidden", None):
        with pytest.raises(ValueError, match="not a run id"):
            run_dir(tmp_path, bad)
    assert label_folder("lora@50%") == "lora_50_" and label_folder("..") == "_"


def test_staged_folder_appears_only_when_published(tmp_path):
    final = tmp_path / "run" / "lora"
    with Staged(final) as st:
        (st.path / "adapter.bin").write_bytes(b"x" * 10)
        assert not final.exists()  # a reader never sees a half-built folder
        st.publish()
    assert (final / "adapter.bin").read_bytes() == b"x" * 10
    assert [p.name for p in final.parent.iterdir()] == ["lora"]  # no temp left

    with Staged(final) as st:  # a rebuild replaces the old folder whole
        (st.path / "new.bin").write_bytes(b"y")
        st.publish()
    assert [p.name for p in final.iterdir()] == ["new.bin"]

    with Staged(final) as st:  # failed or cancelled: discarded, the published one kept
        (st.path / "junk").write_bytes(b"z")
    assert [p.name for p in final.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in final.parent.iterdir()) == ["lora"]


def test_relocate_moves_reported_paths_only_under_the_old_folder(tmp_path):
    old, new = tmp_path / ".lora.building-x", tmp_path / "lora"
    report = {
        "artifact_path": str(old / "adapter"),
        "details": {"paths": [str(old), str(tmp_path / "other")], "n": 3},
        "name": str(old) + "-sibling",
    }
    moved = relocate(report, old, new)
    assert moved["artifact_path"] == str(new / "adapter")
    assert moved["details"] == {"paths": [str(new), str(tmp_path / "other")], "n": 3}
    assert moved["name"] == str(old) + "-sibling"  # a prefix of the name is not a path under it


def test_delete_usage_and_leftovers(tmp_path):
    a, b = run_dir(tmp_path, "run-a"), run_dir(tmp_path, "run-b")
    for folder, size in ((a, 1000), (b, 24)):
        (folder / "rag").mkdir(parents=True)
        (folder / "rag" / "index").write_bytes(b"0" * size)
    os.symlink("/", a / "rag" / "root-link")  # never followed, never counted
    assert folder_bytes(a) == 1000 and disk_usage([a, b]) == 1024
    assert human_bytes(1024) == "1.0 KB" and human_bytes(12) == "12 B"
    assert human_bytes(3 * 2**30) == "3.0 GB" and human_bytes(2**41) == "2.0 TB"
    assert delete_run_files(tmp_path, "run-a") == 1000
    assert not a.exists() and b.exists()
    assert delete_run_files(tmp_path, "never-ran") == 0
    (b / ".lora.building-abc").mkdir()
    (b / ".rag.old-1-2").mkdir()
    assert clean_leftovers(b) == 2 and [p.name for p in b.iterdir()] == ["rag"]


# --- processes --------------------------------------------------------------------------------
def test_process_ref_alive_gone_and_recycled():
    me = ProcessRef.current()
    assert me.state() == ALIVE and ProcessRef.from_dict(me.to_dict()) == me
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ref = ProcessRef(child.pid, socket.gethostname(), None)
    child.wait()
    assert ref.state() == GONE and not pid_alive(child.pid)
    recycled = ProcessRef(me.pid, me.host, (me.started or 0) + 12345)
    assert recycled.state() == GONE  # same pid, another start time: another process
    assert ProcessRef(me.pid, "another-host", me.started).state() == UNKNOWN
    assert ProcessRef.from_dict(None) is None and ProcessRef.from_dict({"pid": 0}) is None


def test_zombie_counts_as_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 10
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child.pid)  # exited, not yet reaped by its parent
    child.wait()


# --- input stamps -------------------------------------------------------------------------------
def test_stamp_names_every_change(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "q", "answers": ["a"]}\n')
    then = InputStamp("corpus-fp-1", file_sha256(qa), ["q1", "q2"])
    assert InputStamp.from_dict(then.to_dict()) == then
    assert InputStamp.from_dict({"corpus": "x"}) is None  # runs stored before stamps
    then.check_resume(InputStamp("corpus-fp-1", file_sha256(qa), ["q1", "q2"]), "r")
    qa.write_text('{"question": "q", "answers": ["b"]}\n')
    now = InputStamp("corpus-fp-2", file_sha256(qa), ["q1", "q3"])
    with pytest.raises(InputsChanged) as e:
        then.check_resume(now, "r1")
    msg = str(e.value)
    assert "run r1 cannot be resumed" in msg
    assert "documents changed" in msg and "Q/A file changed" in msg
    assert "1 no longer asked, e.g. 'q2'" in msg and "1 new, e.g. 'q3'" in msg
    only_order = InputStamp(then.corpus, then.qa_sha256, ["q2", "q1"])
    assert then.changes(only_order) == [
        "the test questions differ (same questions in another order)"
    ]
    assert then.fingerprint != InputStamp(then.corpus, now.qa_sha256).fingerprint
    assert then.fingerprint == InputStamp(then.corpus, then.qa_sha256, []).fingerprint
