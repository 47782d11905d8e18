"""Nothing a user gives is dropped without a word (issue 32, item 5), and a corpus too large to
handle is refused before it is chunked (item 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ChunkingConfig
from core.corpus import CorpusTooLarge, ingest, whitespace_token_spans
from tests.test_corpus_child import PEAK_MB

CHUNKING = ChunkingConfig(chunk_tokens=50, overlap_tokens=0)
ROOT = Path(__file__).resolve().parents[1]


def test_every_file_is_read_or_named_with_the_reason(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the server's secret")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("Aspirin thins the blood.")
    (docs / "same.txt").write_text("Aspirin thins the blood.")  # an exact duplicate
    (docs / "mixed.txt").write_bytes(
        "Café au lait.\n".encode() + "Crème brûlée.\n".encode("cp1252")
    )
    (docs / "legacy.txt").write_bytes("Déjà vu, naïve.".encode("cp1252"))
    (docs / "notes.xlsx").write_bytes(b"PK\x03\x04")
    (docs / ".DS_Store").write_bytes(b"\x00\x01")
    (docs / "leak.txt").symlink_to(outside / "secret.txt")
    (docs / "leakdir").symlink_to(outside)
    (docs / "inside.txt").symlink_to(docs / "a.txt")  # a link within the folder is fine
    (docs / "broken.txt").symlink_to(tmp_path / "gone.txt")
    (docs / "sub" / "b.md").write_text("Insulin lowers blood sugar.")

    corpus = ingest(docs, CHUNKING, whitespace_token_spans)
    read = {d.name for d in corpus.documents}
    refused = {e.name: e.reason for e in corpus.errors}
    doubts = {w.name: w.reason for w in corpus.warnings}
    listed = {p.relative_to(docs).as_posix() for p in docs.rglob("*")} - {"sub"}
    assert read | set(refused) == listed  # every entry is one or the other
    assert not read & set(refused)
    assert "outside the corpus folder" in refused["leak.txt"]
    assert "outside the corpus folder" in refused["leakdir"]
    assert all("secret" not in d.text for d in corpus.documents)
    assert "unsupported file type .xlsx" in refused["notes.xlsx"]
    assert "hidden" in refused[".DS_Store"] and "link to nothing" in refused["broken.txt"]
    assert "inside.txt" in read
    # Doubtful files are read, with a warning the page shows.
    texts = {d.name: d.text for d in corpus.documents}
    assert texts["mixed.txt"] == "Café au lait.\nCrème brûlée."  # neither line garbled
    assert "mixed encodings: 1 of" in doubts["mixed.txt"]
    assert texts["legacy.txt"] == "Déjà vu, naïve." and "not UTF-8" in doubts["legacy.txt"]
    assert "the same text as a.txt" in doubts["same.txt"]
    assert "the same text as a.txt" in doubts["inside.txt"]
    assert "a.txt" not in doubts


def test_a_100m_character_corpus_is_refused_and_the_process_stays_small(tmp_path):
    """Issue 32: a 10M-character document added ~317 MB to the web process, chunked there.
    Ten documents of 10M characters (100M) are refused with a message naming the file and the
    reason, from the app's own preview call; the corpus is read and chunked in the bounded
    corpus child, so the calling process stays far under 600 MB."""
    docs = tmp_path / "docs"
    docs.mkdir()
    line = b"Aspirin thins the blood and lowers the risk of stroke in some patients.\n"
    (docs / "d0.txt").write_bytes(line * (6_000_000 // len(line)))
    for i in range(1, 10):
        (docs / f"d{i}.txt").write_bytes(line * (10_000_000 // len(line) + 1))
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_bytes(line * 100)
    # The preview of a small corpus first (tokenizer loaded, parser child started), then the
    # huge one: what the huge one adds to the peak is what the corpus costs the web process.
    code = PEAK_MB + (
        "import sys\n"
        "from eval.run.inputs import preview_corpus\n"
        "peak = peak_mb\n"
        "assert preview_corpus(sys.argv[2])['problem'] is None\n"
        "before = peak()\n"
        "print(preview_corpus(sys.argv[1])['problem'])\n"
        "print(before, peak())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(docs), str(small)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    problem, peaks = out.stdout.strip().splitlines()[-2:]
    # d0 (6M) fits, d1 takes the corpus past 10M: the file named, and why.
    assert "more than 10,000,000 characters of text (at d1.txt)" in problem, out.stderr[-2000:]
    before, after = map(int, peaks.split())
    # Nothing of the corpus comes to this process: not its text, not its chunks, not even the
    # tokenizer (measured: 106 MB -> 106 MB; 366 -> 382 MB when the text was read here).
    assert after < 600 and after - before < 50, f"peak {before} MB -> {after} MB"


def test_the_cap_is_checked_before_chunking(tmp_path):
    (tmp_path / "a.txt").write_text("word " * 100)
    with pytest.raises(CorpusTooLarge, match="more than 400 characters"):
        ingest(tmp_path, CHUNKING, whitespace_token_spans, max_total_chars=400)
    assert len(ingest(tmp_path, CHUNKING, whitespace_token_spans, max_total_chars=600).chunks)
