"""The installed `adaptlab` command (`pip install -e .`, done by `make venv`), run from a folder
that is not the checkout: paths relative to that folder, the bundled sample found from the
package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _command() -> Path:
    """The `adaptlab` script beside this interpreter (the venv's bin/), else on PATH."""
    here = Path(sys.executable).parent / "adaptlab"
    found = here if here.is_file() else shutil.which("adaptlab")
    if found is None:
        reason = "adaptlab is not installed in this venv: run `make venv` (pip install -e .)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(found)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # No PYTHONPATH: the packages must come from the install, not from the checkout.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [str(_command()), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_adaptlab_run_from_another_folder(mini_corpus, tmp_path):
    corpus, qa = mini_corpus
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.move(corpus, work / "docs")
    shutil.move(qa, work / "pairs.jsonl")
    args = ["run", "--corpus", "docs", "--qa", "pairs.jsonl", "--strategies", "system_prompt"]
    done = _run([*args, "--n-test", "3", "--generator", "tiny", "--quiet"], cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "system_prompt" in done.stdout
    run_id = done.stdout.rsplit("adaptlab show ", 1)[1].split(")")[0]
    assert (work / ".adaptlab").is_dir()  # the default store, relative to where it was typed
    shown = _run(["show", run_id], cwd=work)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "system_prompt" in shown.stdout
    compared = _run(["compare", run_id, "--html", "report.html"], cwd=work)
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert "system_prompt" in compared.stdout.lower().replace(" ", "_")
    assert (work / "report.html").read_text(encoding="utf-8").startswith("<!")


def test_adaptlab_finds_the_bundled_sample(tmp_path):
    """No --corpus/--qa: the defaults (sample_data/...) do not exist here, the package has them."""
    args = ["run", "--strategies", "system_prompt", "--n-test", "2", "--generator", "tiny"]
    done = _run([*args, "--quiet", "--store", "runs.sqlite"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "sample_data").exists()
    assert (tmp_path / "runs.sqlite").is_file()


def test_python_dash_m_eval_and_verbs():
    done = subprocess.run(
        [sys.executable, "-m", "eval", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m eval")
    for verb in ("run", "show", "export", "compare", "rescore", "worker", "app"):
        assert verb in done.stdout


def test_app_verb_serves_app_py_on_loopback_with_the_checkout_settings(tmp_path, monkeypatch):
    from cli.main import main

    called = {}

    def call(argv, env=None):
        called.update(argv=argv, env=env)
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    monkeypatch.delenv("ADAPTLAB_MODE", raising=False)
    monkeypatch.chdir(tmp_path)  # elsewhere: no .streamlit/ here, the checkout's applies
    assert main(["app", "--port", "8600"]) == 0
    argv = called["argv"]
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4] == str(ROOT / "app.py")
    assert "--server.address=127.0.0.1" in argv and "--server.port=8600" in argv
    assert "--client.showErrorDetails=none" in argv and "--server.maxUploadSize=200" in argv
    assert "ADAPTLAB_MODE" not in called["env"]  # personal mode unless asked
    assert main(["app", "--shared"]) == 0
    assert called["env"]["ADAPTLAB_MODE"] == "shared"  # service.accounts reads it
