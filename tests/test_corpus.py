"""Ingestion of every format, broken files, chunking and the fingerprint."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from core.config import ChunkingConfig
from core.corpus import (
    chunk_document,
    fingerprint,
    ingest,
    whitespace_token_spans,
)
from core.types import Document
from core.untrusted.sandbox import normalise
from tests.conftest import zip_bytes

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CHUNKING = ChunkingConfig(chunk_tokens=20, overlap_tokens=5)


def make_pdf(text: str) -> bytes:
    """A minimal valid one-page PDF showing `text` in Helvetica (test data, xref computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_docx(path: Path, paragraphs: list[str], table: list[list[str]] | None = None) -> None:
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    d.save(str(path))


@pytest.fixture
def every_format(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("Plain text about vaccines.", encoding="utf-8")
    (root / "b.md").write_text(
        "# Title\n\nMarkdown about  antibodies.\n\n\n\nEnd.", encoding="utf-8"
    )
    (root / "c.html").write_text(
        "<html><head><style>p{}</style><script>var x=1;</script></head><body><nav>menu</nav>"
        "<h1>Heading</h1><p>HTML about the <b>thymus</b> gland.</p><p>Second paragraph.</p>"
        "</body></html>",
        encoding="utf-8",
    )
    (root / "sub" / "d.pdf").write_bytes(make_pdf("PDF about pharmacists."))
    make_docx(root / "e.docx", ["Word document about fever."], [["cell one", "cell two"]])
    (root / ".hidden.txt").write_text("never read", encoding="utf-8")
    return root


def test_every_format_is_read(every_format):
    corpus = ingest(every_format, CHUNKING, whitespace_token_spans)
    assert [(e.name, e.reason) for e in corpus.errors] == [(".hidden.txt", "hidden file: skipped")]
    texts = {d.name: d.text for d in corpus.documents}
    assert set(texts) == {"a.txt", "b.md", "c.html", "sub/d.pdf", "e.docx"}
    assert "vaccines" in texts["a.txt"]
    assert texts["b.md"] == "# Title\n\nMarkdown about antibodies.\n\nEnd."
    # block elements apart, inline markup kept inside its line
    assert texts["c.html"] == "Heading\n\nHTML about the thymus gland.\n\nSecond paragraph."
    assert "PDF about pharmacists." in texts["sub/d.pdf"]
    assert "fever" in texts["e.docx"] and "cell one | cell two" in texts["e.docx"]
    assert corpus.chunks and corpus.fingerprint


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("truncated.pdf", make_pdf("Cut short.")[:200], "not a readable PDF"),
        ("fake.pdf", b"not a pdf at all", "not a readable PDF"),
        ("blank.pdf", make_pdf(""), "no extractable text"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "not a valid .docx file"),
        ("other.docx", zip_bytes({"a.txt": "a zip, but no Word document"}), "not a valid .docx"),
        ("junk.txt", b"\x00\x01\x02binary\x00", "binary"),
        ("empty.html", b"<html><body>   </body></html>", "no extractable text"),
        ("script.htm", b"<script>only code</script>", "no extractable text"),
        ("empty.md", b"", "no extractable text"),
        ("data.xlsx", b"whatever", "unsupported file type .xlsx"),
        ("README", b"no extension", "unsupported file type"),
    ],
)
def test_broken_files_are_reported_and_the_rest_kept(every_format, name, data, reason):
    (every_format / name).write_bytes(data)
    corpus = ingest(every_format, CHUNKING, whitespace_token_spans)
    assert len(corpus.documents) == 5
    named = [e for e in corpus.errors if e.name != ".hidden.txt"]  # named too: hidden
    assert [e.name for e in named] == [name]
    assert reason in named[0].reason


def test_a_list_of_files_names_them_and_reports_missing_and_duplicates(every_format, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("Same name, other folder.", encoding="utf-8")
    files = [every_format / "sub" / "d.pdf", every_format / "a.txt", other / "a.txt"]
    corpus = ingest([*files, tmp_path / "gone.txt"], CHUNKING, whitespace_token_spans)
    assert [d.name for d in corpus.documents] == ["d.pdf", "a.txt"]
    assert [(e.name, e.reason) for e in corpus.errors] == [
        ("a.txt", "another file with the same name was already read"),
        ("gone.txt", "file not found"),
    ]


def test_too_large_and_encrypted(tmp_path):
    from pypdf import PdfWriter

    (tmp_path / "big.txt").write_text("x " * 1000)
    w = PdfWriter()
    w.add_blank_page(100, 100)
    w.encrypt("secret")
    with open(tmp_path / "locked.pdf", "wb") as fh:
        w.write(fh)
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans, max_file_bytes=1000)
    reasons = {e.name: e.reason for e in corpus.errors}
    assert "too large" in reasons["big.txt"]
    assert "encrypted" in reasons["locked.pdf"]


def test_legacy_encoding_is_read(tmp_path):
    (tmp_path / "old.txt").write_bytes("Caf\xe9 au lait.".encode("cp1252"))
    corpus = ingest(tmp_path, CHUNKING, whitespace_token_spans)
    assert corpus.documents[0].text == "Café au lait."


def test_missing_folder():
    with pytest.raises(FileNotFoundError):
        ingest(Path("/no/such/folder"), CHUNKING, whitespace_token_spans)


def sentences(n: int) -> str:
    return " ".join(f"Sentence number {i} has exactly seven words." for i in range(n))


def test_chunks_are_bounded_overlapping_substrings():
    doc = Document("d.txt", sentences(30))
    chunks = chunk_document(doc, CHUNKING, whitespace_token_spans)
    assert len(chunks) > 5
    for c in chunks:
        assert c.text in doc.text
        assert 0 < c.n_tokens <= CHUNKING.chunk_tokens
        assert c.n_tokens == len(c.text.split())
    for a, b in zip(chunks, chunks[1:], strict=False):
        # the next chunk starts with the previous chunk's last sentence (7 tokens > overlap 5:
        # so overlap only where a sentence fits) or right after it; never skips text
        assert doc.text.index(b.text) <= doc.text.index(a.text) + len(a.text) + 1
    assert chunks[0].text.startswith("Sentence number 0")
    assert chunks[-1].text.endswith("seven words.")
    assert [c.id for c in chunks] == [f"d.txt#{i}" for i in range(len(chunks))]


def test_overlap_repeats_whole_sentences_when_they_fit():
    doc = Document("d.txt", " ".join(f"Short {i} one." for i in range(40)))  # 3 tokens each
    chunks = chunk_document(
        doc, ChunkingConfig(chunk_tokens=16, overlap_tokens=6), whitespace_token_spans
    )
    for a, b in zip(chunks, chunks[1:], strict=False):
        tail = " ".join(a.text.split()[-6:])
        assert b.text.startswith(tail)


def test_a_sentence_longer_than_a_chunk_is_windowed():
    words = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_document(Document("d", words), CHUNKING, whitespace_token_spans)
    assert all(c.n_tokens <= 20 for c in chunks)
    assert chunks[0].text.split()[0] == "w0" and chunks[-1].text.split()[-1] == "w99"
    # consecutive windows overlap by overlap_tokens
    assert chunks[1].text.split()[:5] == chunks[0].text.split()[-5:]


def test_a_short_sentence_before_a_long_one_is_filled_up_to_the_limit():
    text = "Tiny one. " + " ".join(f"w{i}" for i in range(50)) + "."
    chunks = chunk_document(Document("d", text), CHUNKING, whitespace_token_spans)
    assert chunks[0].n_tokens == 20 and chunks[0].text.startswith("Tiny one. w0 w1")


def test_degenerate_inputs_terminate():
    for empty in ("", "   \n\n\t  "):
        assert chunk_document(Document("d", empty), CHUNKING, whitespace_token_spans) == []
    one_token = "x" * 5000
    chunks = chunk_document(Document("d", one_token), CHUNKING, whitespace_token_spans)
    assert [c.text for c in chunks] == [one_token]
    # 1667 tokens and not one sentence break: windows of 20 every 15 tokens
    chunks = chunk_document(Document("d", one_token), CHUNKING, subword_spans)
    assert len(chunks) == 111 and {c.n_tokens for c in chunks[:-1]} == {20}


def subword_spans(text: str) -> list[tuple[int, int]]:
    """GPT-2-like pieces: up to three characters, a leading space inside the token's span."""
    return [m.span() for m in re.finditer(r" ?\S{1,3}|\n", text)]


def first_word_split_spans(text: str) -> list[tuple[int, int]]:
    """Whitespace tokens, but the text's first word counts twice (as BOS-like effects do), so a
    chunk tokenised alone has one more token than inside its document."""
    spans = whitespace_token_spans(text)
    if spans and spans[0][1] - spans[0][0] > 1:
        a, b = spans[0]
        spans[:1] = [(a, a + 1), (a + 1, b)]
    return spans


def random_text(rng: random.Random) -> str:
    words = ["alpha", "be", "c", "delta-epsilon", "é", "abcdefghijklmnopqrstuvwxyz", "(paren)"]
    seps = [" ", " ", " ", ". ", "! ", "\n", "\n\n", ".\n\n", '." ']
    # The counter makes every word unique, so a chunk's text is found at one place only.
    parts = [f"{rng.choice(words)}{i}{rng.choice(seps)}" for i in range(rng.randint(0, 300))]
    return normalise("".join(parts))


@pytest.mark.parametrize(
    "spans_fn", [whitespace_token_spans, subword_spans, first_word_split_spans]
)
def test_chunker_invariants_on_random_text(spans_fn):
    rng = random.Random(0)
    for _ in range(60):
        text = random_text(rng)
        limit = rng.choice([16, 17, 24, 40])
        cfg = ChunkingConfig(chunk_tokens=limit, overlap_tokens=rng.randint(0, limit - 1))
        chunks = chunk_document(Document("d", text), cfg, spans_fn)
        assert bool(chunks) == bool(text)
        start, end = -1, 0  # of the previous chunk in the text
        for c in chunks:
            assert c.text and c.text == c.text.strip()
            assert 0 < c.n_tokens == len(spans_fn(c.text)) <= limit
            prev_end = end
            start = text.index(c.text, start + 1)  # chunks move forward through the text
            end = start + len(c.text)
            assert not text[prev_end:start].strip()  # no text skipped (from 0 for the first)
            assert end > prev_end  # and each one adds some
        assert end == len(text)


def test_normalise():
    assert normalise("a \t b\r\n\r\n\r\n\r\nc  \n d") == "a b\n\nc\nd"
    assert normalise("e\u0301") == "\u00e9"  # NFC


def test_fingerprint_is_stable_and_sensitive():
    docs = [Document("a", "one"), Document("b", "two")]
    fp = fingerprint(docs, {"chunk_tokens": 10})
    assert fp == fingerprint(list(reversed(docs)), {"chunk_tokens": 10})
    assert fp != fingerprint([Document("a", "one!"), docs[1]], {"chunk_tokens": 10})
    assert fp != fingerprint(docs, {"chunk_tokens": 11})
    assert fp != fingerprint([Document("c", "one"), docs[1]], {"chunk_tokens": 10})


def test_ingest_fingerprint_follows_settings(every_format):
    fp = ingest(every_format, CHUNKING, whitespace_token_spans).fingerprint
    assert fp == ingest(every_format, CHUNKING, whitespace_token_spans).fingerprint
    other = ChunkingConfig(chunk_tokens=20, overlap_tokens=4)
    assert fp != ingest(every_format, other, whitespace_token_spans).fingerprint
    extra = {"tokenizer": "gpt2"}
    corpus = ingest(every_format, CHUNKING, whitespace_token_spans, fingerprint_extra=extra)
    assert fp != corpus.fingerprint
    (every_format / "a.txt").write_text("Plain text about vaccines!", encoding="utf-8")
    assert fp != ingest(every_format, CHUNKING, whitespace_token_spans).fingerprint


@pytest.mark.skipif(not (SAMPLE / "corpus").is_dir(), reason="sample corpus not bundled yet")
def test_sample_corpus():
    corpus = ingest(SAMPLE / "corpus", ChunkingConfig(), whitespace_token_spans)
    assert [d.name for d in corpus.documents] == ["Immune_system.md", "Pharmacy.md"]
    assert corpus.errors == []
    assert len(corpus.chunks) > 20
