"""The parser child (core.untrusted.sandbox) is confined beyond memory and time: no HOME of the
server's, a cap on the bytes it may write, no processes of its own, and no network where the
platform gives a network namespace (`unshare -n`, or `-rn` unprivileged)."""

from __future__ import annotations

import os
import resource
import socket
import threading
from pathlib import Path

import pytest

from core.untrusted.sandbox import (
    CHILD_FILE_BYTES,
    CHILD_HOME,
    FileParser,
    child_environment,
    no_network_prefix,
)


def what_the_child_can_do(path: Path, port: int) -> dict:
    """Run inside the child: its environment, limits, a connection and a large write."""
    out = {
        "home": os.environ.get("HOME"),
        "token": (Path.home() / ".cache" / "huggingface" / "token").exists(),
        "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    }
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        out["net"] = "connected"
    except OSError:
        out["net"] = "refused"
    try:
        with open(path.parent / "written.bin", "wb") as f:
            f.write(b"0" * (CHILD_FILE_BYTES + 2**20))
        out["write"] = "all"
    except OSError:
        out["write"] = "stopped"
    return out


def test_the_parser_child_has_no_home_no_big_writes_and_no_network(tmp_path, monkeypatch):
    fake_home = tmp_path / "server-home"
    (fake_home / ".cache" / "huggingface").mkdir(parents=True)
    (fake_home / ".cache" / "huggingface" / "token").write_text("hf_secret")
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert child_environment()["HOME"] == CHILD_HOME and "HF_TOKEN" not in child_environment()

    listener = socket.create_server(("127.0.0.1", 0))  # a service on the server's loopback
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: listener.accept(), daemon=True).start()
    target = tmp_path / "doc.txt"
    target.write_text("x")
    try:
        with FileParser() as parser:
            seen = parser.call(what_the_child_can_do, target, port)
    finally:
        listener.close()
    assert seen["home"] == CHILD_HOME and not seen["token"]
    assert seen["fsize"] == CHILD_FILE_BYTES and seen["write"] == "stopped"
    assert seen["nproc"] == 0
    if not no_network_prefix():
        pytest.skip("no network namespace on this platform: the child has the network")
    assert seen["net"] == "refused"
