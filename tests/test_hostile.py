"""Hostile and careless inputs: every case is built here, and each must end in a named refusal
(or a safe result), never a crash, a hang, or a file written outside its folder."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from pathlib import Path

import pytest

from core.config import ChunkingConfig
from core.corpus import ingest, whitespace_token_spans
from core.files import csv_safe, write_text_atomic
from core.qa import QAFormatError, load_qa
from core.untrusted.allowlist import (
    ALLOW_FILE,
    LocationRefused,
    check_key_env,
    check_location,
    check_run_settings,
    check_server,
    check_strategy_settings,
    check_tracking_uri,
    load_allowlist,
)
from core.untrusted.markup import escape_markdown
from core.untrusted.paths import UnsafePath, confined, find_file, safe_filename
from core.untrusted.sandbox import FileParser, ParseLimits, ParseRefused
from service.corpus_library import CorpusLibrary
from service.uploads import Upload, UploadLimits, save_documents
from strategies.lora.deploy import unpack_adapter_zip
from tests import hostile_readers  # noqa: F401 (registers .slowtest and .crashtest)
from tests.conftest import zip_bytes

CHUNKING = ChunkingConfig(chunk_tokens=50, overlap_tokens=10)
LONG_UNICODE = "Übersicht der Impfstoffe für Kinder und Jugendliche – 日本語の長い名前" * 6


# --- names and destinations -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../../ui.zip", "ui.zip"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.md", "evil.md"),
        ("..", "file"),
        ("", "file"),
        (".bashrc", "bashrc"),
        ("a\x00b\nc\x1b.md", "a_b_c_.md"),
        ("Cafe\u0301.md", "Café.md"),  # NFC: one code point for é
    ],
)
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected


def test_long_unicode_name_is_capped_in_bytes_and_keeps_its_extension():
    name = safe_filename(LONG_UNICODE + ".md")
    assert name.endswith(".md") and len(name.encode()) <= 200
    assert name.startswith("Übersicht")


def test_confined_refuses_what_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert confined(root, "a", "b.txt") == (root / "a" / "b.txt").resolve()
    (root / "out").symlink_to(tmp_path)
    for parts in (["../x"], ["/etc/passwd"], ["a", "..", "..", "x"], ["out", "x"]):
        with pytest.raises(UnsafePath):
            confined(root, *parts)


def test_uploads_cannot_escape_and_a_long_unicode_name_saves(tmp_path):
    files = [("../../escape.md", b"text one"), (LONG_UNICODE + ".md", b"text two")]
    saved, refused = save_documents(files, tmp_path / "docs", UploadLimits())
    assert refused == [] and len(saved) == 2
    assert all(p.parent == (tmp_path / "docs").resolve() for p in saved)
    entry = CorpusLibrary(tmp_path / "lib").save("Long", [(LONG_UNICODE + ".txt", b"Hello.")])
    assert entry.n_docs == 1  # main aborted the whole save with ENAMETOOLONG


class _NoReading:
    """An upload whose bytes must never be read: its size alone refuses it."""

    def __init__(self, name: str, size: int):
        self.name, self.size = name, size

    def getvalue(self) -> bytes:
        raise AssertionError("read before its size was checked")


def test_upload_limits_are_checked_before_reading(tmp_path):
    limits = UploadLimits(max_file_mb=1, max_total_mb=1, max_files=2)
    files = [
        _NoReading("huge.pdf", 5 * 2**20),
        ("ok.md", b"fine"),
        _NoReading("third.md", 10),
        Upload("x.exe", 3, lambda: b"bad"),
    ]
    saved, refused = save_documents(files, tmp_path, limits)
    assert [p.name for p in saved] == ["ok.md"]
    reasons = {e.name: e.reason for e in refused}
    assert "too large" in reasons["huge.pdf"] and "more than 2 files" in reasons["third.md"]


# --- adapter zips ------------------------------------------------------------------------------


def _zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def test_adapter_zip_destination_must_stay_in_its_root(tmp_path):
    root = tmp_path / "adapters"
    data = zip_bytes({"adapter_config.json": b"{}"})
    with pytest.raises(ValueError, match="outside"):
        unpack_adapter_zip(data, root / "s1" / ".." / ".." / "ui", root=root)
    assert not (tmp_path / "ui").exists()
    folder = unpack_adapter_zip(data, root / "s1" / "mine", root=root)
    assert (folder / "adapter_config.json").is_file()


@pytest.mark.parametrize("bad", ["/etc/cron.d/x", "../../x.py", "a/../../x.py", "C:/x.py"])
def test_adapter_zip_entries_with_unsafe_names_are_refused(tmp_path, bad):
    data = _zip_with([("adapter_config.json", b"{}"), (bad, b"print('owned')")])
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_adapter_zip(data, tmp_path / "a" / "dest", root=tmp_path / "a")
    assert not (tmp_path / "a").exists()  # refused from the central directory, nothing written


def test_adapter_zip_symlinks_counts_and_sizes_are_refused(tmp_path):
    link = zipfile.ZipInfo("adapter_model.safetensors")
    link.external_attr = (0o120777 << 16) | 0
    with pytest.raises(ValueError, match="symbolic link"):
        unpack_adapter_zip(_zip_with([("adapter_config.json", b"{}"), (link, b"/etc")]), tmp_path)
    many = [(f"f{i}", b"") for i in range(300)] + [("adapter_config.json", b"{}")]
    with pytest.raises(ValueError, match="entries"):
        unpack_adapter_zip(_zip_with(many), tmp_path / "m")
    big = zip_bytes({"adapter_config.json": b"{}", "w.bin": b"0" * 10_000})
    with pytest.raises(ValueError, match="MB"):
        unpack_adapter_zip(big, tmp_path / "b", max_bytes=5_000)


def test_adapter_zip_replaces_an_earlier_upload_whole(tmp_path):
    root = tmp_path / "adapters"
    unpack_adapter_zip(zip_bytes({"adapter_config.json": b"{}", "old.bin": b"1"}), root / "a")
    unpack_adapter_zip(zip_bytes({"adapter_config.json": b"{}", "new.bin": b"2"}), root / "a")
    assert sorted(p.name for p in (root / "a").iterdir()) == ["adapter_config.json", "new.bin"]
    assert [p.name for p in root.iterdir()] == ["a"]


# --- bombs and stuck parsers -------------------------------------------------------------------


def _docx_bomb(path: Path, xml_mb: int) -> None:
    """A valid .docx whose document.xml inflates to `xml_mb` MB from well under 1 MB."""
    import docx

    buf = io.BytesIO()
    docx.Document().save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    block = b"<w:p><w:r><w:t>boom</w:t></w:r></w:p>" * 30_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                out.writestr(info, src.read(info))
                continue
            with out.open("word/document.xml", "w", force_zip64=True) as f:
                f.write(f'<?xml version="1.0"?><w:document xmlns:w="{ns}"><w:body>'.encode())
                for _ in range(xml_mb * 2**20 // len(block)):
                    f.write(block)
                f.write(b"</w:body></w:document>")


def test_docx_bomb_is_refused_from_its_central_directory(tmp_path):
    _docx_bomb(tmp_path / "bomb.docx", 500)
    (tmp_path / "fine.md").write_text("A normal document about vaccines.")
    assert (tmp_path / "bomb.docx").stat().st_size < 3_000_000
    t0 = time.monotonic()
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans)
    assert time.monotonic() - t0 < 10
    assert [d.name for d in corpus.documents] == ["fine.md"]
    assert corpus.errors[0].name == "bomb.docx" and "MB" in corpus.errors[0].reason


def test_docx_bomb_past_the_zip_checks_dies_in_the_child_only(tmp_path):
    _docx_bomb(tmp_path / "a_bomb.docx", 300)
    (tmp_path / "b_fine.md").write_text("Still read after the bomb.")
    # zip checks off: only the child's memory limit stands between the bomb and this process
    limits = ParseLimits(memory_mb=700, zip_max_bytes=10**12, zip_max_ratio=10**9, wall_s=60)
    t0 = time.monotonic()
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans, limits=limits)
    assert time.monotonic() - t0 < 45
    assert [d.name for d in corpus.documents] == ["b_fine.md"]
    (err,) = corpus.errors
    assert err.name == "a_bomb.docx" and ("memory" in err.reason or "died" in err.reason)


def test_deep_html_is_read_in_seconds(tmp_path):
    (tmp_path / "deep.html").write_text("<div><b>" * 130_000 + "deep text" + "</b></div>" * 10)
    t0 = time.monotonic()
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans)
    assert time.monotonic() - t0 < 15  # main took over 2 minutes on this
    assert corpus.errors == [] and "deep text" in corpus.documents[0].text


def test_a_stuck_or_crashing_parser_refuses_its_file_and_the_next_ones_are_read(tmp_path):
    for name in ("a.slowtest", "b.md", "c.crashtest", "d.md"):
        (tmp_path / name).write_text(f"Text of {name}.")
    limits = ParseLimits(wall_s=3)
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans, limits=limits)
    assert [d.name for d in corpus.documents] == ["b.md", "d.md"]
    reasons = {e.name: e.reason for e in corpus.errors}
    assert "longer than 3 s" in reasons["a.slowtest"]
    assert "died" in reasons["c.crashtest"]


def test_output_cap_and_a_reused_child(tmp_path):
    (tmp_path / "long.txt").write_text("word " * 5000)
    (tmp_path / "short.txt").write_text("word")
    with FileParser(ParseLimits(max_chars=1000)) as parser:
        from core.corpus import read_text

        with pytest.raises(ParseRefused, match="characters"):
            parser.read(tmp_path / "long.txt", read_text)
        pid = parser._proc.pid
        assert parser.read(tmp_path / "short.txt", read_text) == "word"
        assert parser._proc.pid == pid  # one child for the batch


# --- formats -----------------------------------------------------------------------------------


def _pdf(path: Path, text: str, user_password: str | None, algorithm: str = "RC4-128") -> None:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    w = PdfWriter()
    page = w.add_blank_page(300, 300)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): w._add_object(font)})}
    )
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 20 200 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = w._add_object(stream)
    if user_password is not None:
        w.encrypt(user_password, owner_password="owner-secret", algorithm=algorithm)
    with open(path, "wb") as fh:
        w.write(fh)


def test_pdfs_with_an_empty_password_are_read_and_locked_ones_refused(tmp_path):
    _pdf(tmp_path / "open.pdf", "Plain PDF text", None)
    _pdf(tmp_path / "rc4.pdf", "Empty password RC4", "")
    _pdf(tmp_path / "aes.pdf", "Empty password AES", "", "AES-256")
    _pdf(tmp_path / "locked.pdf", "Secret", "hunter2")
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans)
    texts = {d.name: d.text for d in corpus.documents}
    assert "Empty password RC4" in texts["rc4.pdf"] and "Empty password AES" in texts["aes.pdf"]
    assert "Plain PDF text" in texts["open.pdf"]
    assert [(e.name, "password" in e.reason) for e in corpus.errors] == [("locked.pdf", True)]


def test_binary_renamed_to_text_is_refused(tmp_path):
    import random

    rng = random.Random(0)
    (tmp_path / "photo.txt").write_bytes(bytes(rng.randrange(1, 256) for _ in range(20_000)))
    (tmp_path / "utf16.md").write_bytes(
        b"\xff\xfe" + bytes(rng.randrange(1, 256) for _ in range(999))
    )
    (tmp_path / "page.html").write_bytes(b"<p>" + bytes(rng.randrange(1, 32) for _ in range(5000)))
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans)
    assert corpus.documents == []
    assert all("binary" in e.reason for e in corpus.errors), corpus.errors


# --- Q/A files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("qa.csv", 'question,answer\nWhat?,"' + "x" * 200_000 + '"\n', "qa.csv line 2"),
        ("qa.jsonl", '{"question":"q","answer":"a"}\n' + "[" * 100_000 + "\n", "qa.jsonl line 2"),
        ("qa.json", "[" * 100_000, "nested too deeply"),
        ("qa.jsonl", '{"question":"q","answers":[{"text":"a"}]}\n', "must be text"),
        ("qa.jsonl", '{"question":["q"],"answer":"a"}\n', "'question' must be text"),
        ("qa.jsonl", '{"question":"q","answers":[NaN]}\n', "must be text"),
        ("qa.csv", "question,answer\nq,a,extra\n", "more cells than the header"),
        ("qa.csv", "question,answer,answer\nq,a,b\n", "repeats"),
    ],
)
def test_bad_qa_files_give_named_errors(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QAFormatError) as err:
        load_qa(path)
    assert where in str(err.value) and name in str(err.value)


# --- output and rendering ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, expected",
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3", "-3"),
        ("fine", "fine"),
        (0.5, 0.5),
    ],
)
def test_csv_safe(cell, expected):
    assert csv_safe(cell) == expected


def test_markdown_image_injection_is_inert():
    answer = "The thymus. ![](https://attacker.example/p.png?leak=1) [click](javascript:x) <img>"
    shown = escape_markdown(answer)
    assert not re.search(r"(?<!\\)[!\[\]()<>:]", shown)  # every active character escaped
    assert shown.replace("\\", "") == answer  # the same characters, shown literally


def test_playground_shows_answers_as_plain_text():
    source = (Path(__file__).resolve().parents[1] / "ui" / "playground_page.py").read_text()
    assert "st.text(a.answer.text" in source
    assert "st.write(a.answer" not in source and "st.markdown(a.answer" not in source


# --- where browser users may point models and adapters -----------------------------------------


def test_allow_list(tmp_path):
    home = tmp_path / "home"
    mine = home / "work" / "runs" / "r1"
    (mine / "merged" / "m1").mkdir(parents=True)
    outside = tmp_path / "models" / "big"
    outside.mkdir(parents=True)
    assert check_location("tiny", roots=[mine], aliases=["tiny"]) == "tiny"
    assert check_location(str(mine / "merged" / "m1"), roots=[mine]) == str(mine / "merged" / "m1")
    for value in ("/", str(home), str(outside), str(mine / ".." / ".." / ".."), "org/model", ""):
        with pytest.raises(LocationRefused):
            check_location(value, roots=[mine], allow=load_allowlist(home))
    (home / ALLOW_FILE).write_text(f"paths: [{tmp_path / 'models'}]\nallow_hub_ids: true\n")
    allow = load_allowlist(home)
    assert check_location(str(outside), roots=[mine], allow=allow) == str(outside)
    assert check_location("org/model", roots=[mine], allow=allow) == "org/model"
    with pytest.raises(LocationRefused):
        check_location("/", roots=[mine], allow=allow)


def test_one_refusal_whether_or_not_the_path_exists(tmp_path):
    """A refusal must not tell a visitor which server paths exist: `/etc/passwd` (there) and
    `/etc/nope` (not there) get the same words, and the bundled names are still listed."""
    there, missing = tmp_path / "secret.txt", tmp_path / "nothing-here"
    there.write_text("x")
    words = []
    for value in (there, missing):
        with pytest.raises(LocationRefused) as got:
            check_location(str(value), roots=[tmp_path / "mine"], aliases=["tiny"], what="adapter")
        words.append(str(got.value).replace(str(value), "<typed>"))
    assert words[0] == words[1]
    assert "tiny" in words[0]


def test_servers_keys_and_tracking_uris_a_browser_may_name(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    allow = load_allowlist(home)
    assert check_server("http://127.0.0.1:8080/v1", allow) == "http://127.0.0.1:8080/v1"
    assert check_server("http://localhost:5000", allow)
    for url in (
        "http://attacker.example/v1",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://user:pw@127.0.0.1:8080/v1",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/",
        "http://127.0.0.1:notaport/",
        "http://127.0.0.1.attacker.example/",
    ):
        with pytest.raises(LocationRefused):
            check_server(url, allow)
    with pytest.raises(LocationRefused, match="AWS_SECRET_ACCESS_KEY"):
        check_key_env("AWS_SECRET_ACCESS_KEY", allow)
    assert check_key_env("", allow) == ""
    local = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    assert check_tracking_uri(local, home, allow) == local
    for uri in (
        f"sqlite:///{home / 'runs.sqlite'}",  # the app's own run store
        f"sqlite:///{home / 'mlruns' / '..' / 'runs.sqlite'}",
        f"file://{home / 'work'}",
        "sqlite:////tmp/elsewhere.db",
        f"file://{tmp_path / 'out'}",
        f"sqlite:///{home / '..' / 'x.db'}",
        "sqlite:///relative.db",
        "http://attacker.example:5000",
        "s3://bucket/path",
    ):
        with pytest.raises(LocationRefused):
            check_tracking_uri(uri, home, allow)
    (home / ALLOW_FILE).write_text(
        "servers: [https://vllm.internal:8000/v1]\napi_key_envs: [VLLM_API_KEY]\n"
    )
    allow = load_allowlist(home)
    assert check_server("https://vllm.internal:8000/v1", allow)
    for url in (
        "https://vllm.internal:9000/v1",
        "https://vllm.internal:8000/admin",
        "https://vllm.internal:8000/v1/../admin",
        "http://127.0.0.1",
    ):
        with pytest.raises(LocationRefused):
            check_server(url, allow)  # the operator's list replaces the loopback default
    assert check_key_env("VLLM_API_KEY", allow) == "VLLM_API_KEY"
    bundled = {"generator": "tiny", "embedder": "all-minilm-l6-v2"}
    settings = {
        "models": {**bundled, "engine": "openai", "base_url": "https://vllm.internal:8000/v1"},
        "judge": {"base_url": "http://attacker.example/v1", "api_key_env": "VLLM_API_KEY"},
    }
    with pytest.raises(LocationRefused, match="judge server"):
        check_run_settings(settings, home, allow)
    settings = {"models": dict(bundled), "judge": {"model": "/etc", "engine": "transformers"}}
    with pytest.raises(LocationRefused):
        check_run_settings(settings, home, allow)
    with pytest.raises(LocationRefused, match="generator"):
        check_run_settings({"models": {**bundled, "generator": "/etc"}}, home, allow)
    with pytest.raises(LocationRefused, match="Chroma server"):
        check_strategy_settings({"chroma_host": "10.0.0.5", "chroma_port": 8000}, [], allow)
    loopback = load_allowlist(tmp_path)
    check_strategy_settings({"chroma_host": "127.0.0.1", "chroma_port": 8000}, [], loopback)
    with pytest.raises(LocationRefused, match="Chroma server"):  # not a documented port
        check_strategy_settings({"chroma_host": "127.0.0.1", "chroma_port": 6379}, [], loopback)
    # A combination nests its parts' settings: they are checked too.
    with pytest.raises(LocationRefused, match="Chroma server"):
        check_strategy_settings({"rag": {"chroma_host": "10.0.0.5", "chroma_port": 1}}, [], allow)
    with pytest.raises(LocationRefused, match="adapter"):
        check_strategy_settings({"lora": {"adapter_path": "/"}}, [], allow)


def test_the_default_loopback_is_a_few_documented_ports_without_queries(tmp_path):
    """A loopback URL on any port, or with a query string, turns the model client into a proxy
    to every local service (the app itself, a database, an admin page)."""
    allow = load_allowlist(tmp_path)
    for url in ("http://127.0.0.1:11434/v1", "http://localhost:8000/v1", "http://[::1]:5000"):
        assert check_server(url, allow) == url
    for url in (
        "http://127.0.0.1:8501/",  # the app's own port
        "http://127.0.0.1:6379/",  # redis
        "http://127.0.0.1/v1",  # port 80
        "http://127.0.0.1:8000/v1?",
        "http://127.0.0.1:8000/v1?url=http://169.254.169.254/",
        "http://127.0.0.1:8000/v1#frag",
        "http://127.0.0.1:8000/v1/%2e%2e/admin",
    ):
        with pytest.raises(LocationRefused):
            check_server(url, allow)


def test_adapter_search_is_bounded(tmp_path):
    deep = tmp_path.joinpath(*"abcdef")
    deep.mkdir(parents=True)
    (deep / "adapter_config.json").write_text("{}")
    assert find_file(tmp_path, "adapter_config.json", max_depth=3) is None
    assert find_file(tmp_path, "adapter_config.json", max_depth=6) == deep / "adapter_config.json"


# --- atomic writes -----------------------------------------------------------------------------


def test_atomic_writes_from_two_threads_leave_one_whole_file(tmp_path):
    target = tmp_path / "meta.json"

    def writer(tag: str) -> None:
        for i in range(200):
            write_text_atomic(target, json.dumps({"tag": tag, "i": i, "pad": "x" * 5000}))

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(target.read_text())["i"] == 199  # a shared temp name broke this on main
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]
