"""The saved-corpus library: save, list, get, delete, attach Q/A pairs, the bundled sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.access import AccessDenied
from core.config import ChunkingConfig
from core.corpus import ingest, whitespace_token_spans
from core.qa import QAFormatError, load_qa
from core.types import QAPair
from service.corpus_library import GENERATED_QA, CorpusLibrary, CorpusNotFound
from service.uploads import UploadLimits
from tests.conftest import DOCS, QA

FILES = [(name, text.encode()) for name, text in DOCS.items()]
QA_FILE = (
    "qa.jsonl",
    "\n".join(json.dumps({"id": i, "question": q, "answers": a}) for i, q, a in QA).encode(),
)


def test_save_list_get_delete(tmp_path):
    lib = CorpusLibrary(tmp_path / "lib")
    assert lib.list() == []
    entry = lib.save("My notes", FILES, QA_FILE, UploadLimits())
    assert entry.n_docs == 2 and entry.has_qa and entry.refused == []
    assert sorted(entry.documents) == sorted(DOCS)
    corpus = ingest(entry.docs_path, ChunkingConfig(), whitespace_token_spans)
    assert {d.name for d in corpus.documents} == set(DOCS)
    assert len(load_qa(entry.qa_path)) == len(QA)
    assert [e.id for e in lib.list()] == [entry.id]
    assert lib.get(entry.id).name == "My notes"
    lib.delete(entry.id)
    assert lib.list() == []
    with pytest.raises(CorpusNotFound, match="no saved corpus"):
        lib.get(entry.id)


def test_same_files_give_the_same_entry(tmp_path):
    lib = CorpusLibrary(tmp_path)
    a = lib.save("first", FILES)
    b = lib.save("second name", list(reversed(FILES)))
    assert a.id == b.id and len(lib.list()) == 1
    assert lib.get(a.id).name == "second name"
    assert not a.has_qa
    c = lib.save("with qa", FILES, QA_FILE)
    assert c.id != a.id and len(lib.list()) == 2


def test_refused_files_are_reported_and_the_rest_kept(tmp_path):
    lib = CorpusLibrary(tmp_path)
    limits = UploadLimits(max_file_mb=0.0008, max_total_mb=1)
    big = ("big.txt", b"x" * 2000)
    entry = lib.save("mixed", [*FILES[:1], ("virus.exe", b"MZ"), big], limits=limits)
    reasons = {r["name"]: r["reason"] for r in entry.refused}
    assert "unsupported" in reasons["virus.exe"] and "too large" in reasons["big.txt"]
    assert entry.n_docs == 1
    with pytest.raises(ValueError, match="no document could be saved"):
        lib.save("nothing", [("a.exe", b"MZ")])
    with pytest.raises(ValueError, match="Q/A file must be"):
        lib.save("bad qa", FILES, ("qa.pdf", b"%PDF"))
    assert len(lib.list()) == 1  # failed saves leave nothing behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".saving")]


def test_path_tricks_stay_inside_the_library(tmp_path):
    root = tmp_path / "lib"
    lib = CorpusLibrary(root)
    entry = lib.save("../../etc/passwd\n<b>", [("../../evil.txt", b"Some text here.")])
    assert entry.name == "../../etc/passwd <b>"  # a label only, never a path
    assert entry.documents == ["evil.txt"]
    assert not (tmp_path / "evil.txt").exists()
    for bad in ("../lib", "..", "/etc", "a/b", "", ".saving-x"):
        with pytest.raises(CorpusNotFound):
            lib.get(bad)
        with pytest.raises(CorpusNotFound):
            lib.delete(bad)
    assert root.is_dir() and len(lib.list()) == 1


def test_set_qa_attaches_generated_pairs_and_keeps_upload(tmp_path):
    lib = CorpusLibrary(tmp_path)
    entry = lib.save("c", FILES, QA_FILE)
    pairs = [
        QAPair(
            "g1",
            "Where do T cells mature?",
            ("The thymus",),
            "immune.md",
            "The thymus is where T cells mature.",
        )
    ]
    updated = lib.set_qa(entry.id, pairs)
    assert updated.qa_path.endswith(GENERATED_QA) and updated.uploaded_qa
    assert load_qa(updated.qa_path) == pairs
    assert len(load_qa(updated.uploaded_qa)) == len(QA)
    with pytest.raises(ValueError, match="no Q/A pairs"):
        lib.set_qa(entry.id, [])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    with pytest.raises(QAFormatError):
        lib.set_qa(entry.id, bad)
    assert load_qa(lib.get(entry.id).qa_path) == pairs  # a failed attach keeps the old pairs
    assert lib.set_qa(entry.id, None).qa_path == updated.uploaded_qa


def test_sample_is_registered_without_copying(tmp_path):
    lib = CorpusLibrary(tmp_path)
    s = lib.sample()
    assert s.id == "sample" and s.builtin and s.has_qa and s.n_docs == 2
    assert s.docs_path.endswith("sample_data/corpus")
    assert not list((tmp_path / "sample").glob("*.md"))
    assert lib.sample().id == s.id and [e.id for e in lib.list()] == ["sample"]
    mine = lib.save("mine", FILES)
    assert [e.id for e in lib.list()] == [mine.id, "sample"]  # the user's corpora first
    with pytest.raises(AccessDenied, match="read-only"):  # shared by every owner
        lib.delete("sample")
    assert Path(s.docs_path, "Pharmacy.md").is_file()  # the bundled files stay
