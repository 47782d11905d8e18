"""Ingestion of every format, broken files, chunking and the fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ChunkingConfig
from core.corpus import chunk_document, fingerprint, ingest, normalise, whitespace_token_spans
from core.types import Document

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
        "<h1>Heading</h1><p>HTML about the thymus.</p><p>Second paragraph.</p></body></html>",
        encoding="utf-8",
    )
    (root / "sub" / "d.pdf").write_bytes(make_pdf("PDF about pharmacists."))
    make_docx(root / "e.docx", ["Word document about fever."], [["cell one", "cell two"]])
    (root / ".hidden.txt").write_text("never read", encoding="utf-8")
    return root


def test_every_format_is_read(every_format):
    corpus = ingest(every_format, CHUNKING, whitespace_token_spans)
    assert corpus.errors == []
    texts = {d.name: d.text for d in corpus.documents}
    assert set(texts) == {"a.txt", "b.md", "c.html", "sub/d.pdf", "e.docx"}
    assert "vaccines" in texts["a.txt"]
    assert texts["b.md"] == "# Title\n\nMarkdown about antibodies.\n\nEnd."
    assert "thymus" in texts["c.html"] and "var x" not in texts["c.html"]
    assert "menu" not in texts["c.html"]
    assert "PDF about pharmacists." in texts["sub/d.pdf"]
    assert "fever" in texts["e.docx"] and "cell one | cell two" in texts["e.docx"]
    assert corpus.chunks and corpus.fingerprint


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "PDF"),
        ("fake.pdf", b"not a pdf at all", "PDF"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "docx"),
        ("junk.txt", b"\x00\x01\x02binary\x00", "binary"),
        ("empty.html", b"<html><body>   </body></html>", "no extractable text"),
        ("empty.md", b"", "no extractable text"),
        ("data.xlsx", b"whatever", "unsupported file type .xlsx"),
    ],
)
def test_broken_files_are_reported_and_the_rest_kept(every_format, name, data, reason):
    (every_format / name).write_bytes(data)
    corpus = ingest(every_format, CHUNKING, whitespace_token_spans)
    assert len(corpus.documents) == 5
    assert [e.name for e in corpus.errors] == [name]
    assert reason in corpus.errors[0].reason


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


def test_degenerate_inputs_terminate():
    assert chunk_document(Document("d", ""), CHUNKING, whitespace_token_spans) == []
    one_token = "x" * 5000
    chunks = chunk_document(Document("d", one_token), CHUNKING, whitespace_token_spans)
    assert [c.text for c in chunks] == [one_token]


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


def test_sample_corpus():
    corpus = ingest(SAMPLE / "corpus", ChunkingConfig(), whitespace_token_spans)
    assert [d.name for d in corpus.documents] == ["Immune_system.md", "Pharmacy.md"]
    assert corpus.errors == []
    assert len(corpus.chunks) > 20
