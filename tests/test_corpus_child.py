"""Issue 32: the web process never reads, chunks or indexes a corpus. The Corpus and Run pages'
previews and quick Q/A generation run in a bounded corpus child (eval.run.inputs
`in_corpus_child`), which gets the same answers a run gets and returns only counts and pairs."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import core.corpus
import eval.run.inputs as inputs
from core.config import ModelConfig
from core.engines import model_files
from core.engines.in_process import prepare_tokenizer_files
from core.engines.model_files import hub_cache_env
from core.engines.tiny import TINY_VERSION
from core.qagen import QAGenConfig, generate_qa, pairs_to_records
from core.untrusted.sandbox import CHILD_HOME, FileParser, ParseLimits
from eval.config import RunConfig
from eval.run.inputs import (
    corpus_summary,
    generate_pairs_bounded,
    preview_corpus,
    preview_inputs,
    preview_split,
    read_corpus,
)

ROOT = Path(__file__).resolve().parents[1]


def _never(*args, **kwargs):
    raise AssertionError("the corpus was read or chunked in the calling process")


def environment_of(path: Path) -> dict[str, str]:
    """Run in the child: what it sees of the environment."""
    return dict(os.environ)


def test_the_preview_is_what_a_run_reads_and_is_made_in_the_child(mini_corpus, monkeypatch):
    corpus, _ = mini_corpus
    for target in (core.corpus, inputs):
        for name in ("ingest", "chunk_document", "load_tokenizer"):
            if hasattr(target, name):
                monkeypatch.setattr(target, name, _never)  # this process only
    preview = preview_corpus(corpus)
    monkeypatch.undo()
    assert preview["problem"] is None, preview["problem"]
    here = read_corpus(corpus)  # what a run reads, in this process
    assert preview["corpus"] == json.loads(json.dumps(corpus_summary(here)))
    assert preview["fingerprint"] == here.fingerprint
    assert preview["corpus"]["documents"] == 2 and preview["corpus"]["chunks"] >= 2


def test_quick_pairs_are_made_in_the_child_and_equal_those_made_here(mini_corpus, monkeypatch):
    corpus, _ = mini_corpus
    config = QAGenConfig(n=6, seed=3)
    monkeypatch.setattr(inputs, "generate_qa", _never)
    monkeypatch.setattr(core.corpus, "chunk_document", _never)
    made = generate_pairs_bounded(corpus, config)
    monkeypatch.undo()
    expected = generate_qa(read_corpus(corpus), config)
    assert made["records"] == json.loads(json.dumps(pairs_to_records(expected.pairs)))
    assert 0 < len(made["records"]) <= 6 and made["stats"] == expected.stats
    with pytest.raises(ValueError, match="worker"):
        generate_pairs_bounded(corpus, QAGenConfig(method="model"))
    with pytest.raises(ValueError, match="^corpus not found"):  # the child's reason, as is
        generate_pairs_bounded(corpus.parent / "missing", config)


def test_a_bundled_model_never_made_is_made_apart_then_only_checked(
    tmp_path, mini_corpus, monkeypatch
):
    corpus, _ = mini_corpus
    cache = tmp_path / "cache"
    models = ModelConfig(generator="tiny", cache_dir=str(cache))
    monkeypatch.setattr(model_files, "build_tiny_model", _never)  # not in this process
    preview = preview_corpus(corpus, RunConfig(models=models))
    assert preview["problem"] is None, preview["problem"]
    assert preview["corpus"]["documents"] == 2
    assert (cache / "models" / f"tiny-{TINY_VERSION}" / "config.json").is_file()
    monkeypatch.setattr(model_files.subprocess, "run", _never)
    prepare_tokenizer_files(models)  # made: a look at the folder, no process


def test_relative_paths_are_read_from_the_callers_folder(mini_corpus, monkeypatch):
    corpus, qa = mini_corpus
    monkeypatch.chdir(corpus.parent)  # the child itself runs in the repository folder
    preview = preview_split(corpus.name, qa.name)
    assert preview["problem"] is None, preview["problem"]
    assert preview["corpus"]["documents"] == 2 and preview["split"]["pairs"] == 10


def test_a_corpus_over_the_childs_memory_is_a_problem_said_not_a_crash(
    tmp_path, mini_corpus, monkeypatch
):
    _, qa = mini_corpus
    docs = tmp_path / "words"
    docs.mkdir()
    # 3M one-letter words: whitespace token spans alone need ~350 MB, over what is left of
    # 400 MB of address space once the child's modules are loaded.
    (docs / "letters.txt").write_text("a " * 3_000_000)
    monkeypatch.setattr(inputs, "CORPUS_LIMITS", ParseLimits(memory_mb=400, wall_s=120))
    config = RunConfig(corpus=str(docs), qa=str(qa), strategies=["fake"])  # no tokenizer
    preview = preview_inputs(config)
    assert "needs more than 400 MB of memory" in preview["problem"], preview


def test_the_corpus_child_keeps_the_parsers_environment_and_finds_the_model_cache(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-the-server")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with FileParser(spawns=True, env=hub_cache_env()) as child:
        seen = child.call(environment_of, __file__)
    with FileParser() as parser:
        parsing = parser.call(environment_of, __file__)
    assert "sk-secret-of-the-server" not in json.dumps(seen)
    assert seen["HOME"] == CHILD_HOME and seen["HF_HUB_OFFLINE"] == "1"
    assert Path(seen["HF_HUB_CACHE"]).is_absolute()
    assert seen["CUDA_VISIBLE_DEVICES"] == "" == parsing["CUDA_VISIBLE_DEVICES"]  # no GPU
    # Only the corpus child may start processes (its parser children, one file each).
    assert seen["ADAPTLAB_PARSE_SPAWNS"] == "1" and "ADAPTLAB_PARSE_SPAWNS" not in parsing


# --- the page, in a fresh process: its peak memory is the web process's ----------------------


def _compressed_docx(text_chars: int, first_line: str) -> bytes:
    """A valid .docx whose document.xml stays under 1 MB (so no zip ratio check applies) and
    holds about `text_chars` characters of text, compressed to a few KB."""
    import docx

    buf = io.BytesIO()
    docx.Document().save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    sentence = "Aspirin thins the blood and lowers the risk of stroke in some patients. " * 9
    para = f"<w:p><w:r><w:t>{sentence}</w:t></w:r></w:p>"
    body = f"<w:p><w:r><w:t>{first_line}</w:t></w:r></w:p>" + para * (text_chars // len(sentence))
    xml = f'<?xml version="1.0"?><w:document xmlns:w="{ns}"><w:body>{body}</w:body></w:document>'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = xml.encode() if info.filename == "word/document.xml" else src.read(info)
            z.writestr(info.filename, data)
    return out.getvalue()


# This process's own peak RSS in MB: VmHWM starts afresh at exec, while ru_maxrss keeps the
# peak of the process before the exec (in a child of pytest, pytest's size).
PEAK_MB = """
import re
from pathlib import Path

def peak_mb():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\\s*(\\d+) kB", status, re.M).group(1)) // 1024
"""

PAGE_SCRIPT = (
    PEAK_MB
    + """
import json, sys
from pathlib import Path
from streamlit.testing.v1 import AppTest

folder = Path(sys.argv[1])
docs = [(p.name, p.read_bytes(), "application/octet-stream") for p in sorted(folder.iterdir())]
at = AppTest.from_file(sys.argv[2], default_timeout=300)
at.query_params["owner"] = "test-owner-token-0001"
at.run()
before = peak_mb()
at.text_input(key="up_name").set_value("Huge")
at.file_uploader(key="docs").set_value(docs)
at.button(key="FormSubmitter:upload_form-Save corpus").click().run()
print(json.dumps({
    "exception": [str(e.value) for e in at.exception],
    "errors": [e.value for e in at.error],
    "success": [e.value for e in at.success],
    "options": list(at.selectbox(key="corpus_pick").options),
    "peak_before": before,
    "peak": peak_mb(),
}))
"""
)


def test_the_corpus_page_refuses_100m_characters_of_compressed_documents(tmp_path):
    """Issue 32's attack: many small compressed documents (110 .docx of ~40 KB, 100M characters
    in all, each under the zip checks) uploaded through the Corpus page. Refused with a message
    naming the file and the reason, nothing saved, and the page's process stays under 600 MB."""
    folder = tmp_path / "upload"
    folder.mkdir()
    for i in range(110):
        (folder / f"d{i:03d}.docx").write_bytes(_compressed_docx(930_000, f"Document {i}."))
    sizes = [p.stat().st_size for p in folder.iterdir()]
    assert max(sizes) < 50_000  # under 5 MB uploaded in all, for ~100M characters of text
    env = {**os.environ, "ADAPTLAB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PAGE_SCRIPT, str(folder), str(ROOT / "app.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert not seen["exception"] and not seen["success"], seen
    (error,) = [re.sub(r"\\(.)", r"\1", e) for e in seen["errors"]]  # Markdown escapes off
    # ~0.93M characters a file: the eleventh takes the corpus past 10M.
    assert "more than 10,000,000 characters of text (at d010.docx)" in error, error
    assert "Nothing was saved" in error and str(tmp_path) not in error
    assert not any("Huge" in o for o in seen["options"])
    # Streamlit, the page and the sample's preview: measured 244 MB, 249 MB after the upload.
    assert seen["peak"] < 600, seen
    assert seen["peak"] - seen["peak_before"] < 100, seen
