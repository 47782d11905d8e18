"""Corpus ingestion: files -> plain text -> token-bounded chunks, plus a fingerprint.

Parsing is left to maintained libraries (pypdf, python-docx, BeautifulSoup); every file that
cannot be used is reported by name with the reason, and the rest of the corpus is still used.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.config import ChunkingConfig
from core.types import Chunk, Corpus, Document, IngestError

TokenSpans = Callable[[str], list[tuple[int, int]]]
Reader = Callable[[Path], str]

READERS: dict[str, Reader] = {}


class Unreadable(Exception):
    """A reader's verdict that a file cannot be used; the message is shown to the user."""


def register_reader(*exts: str):
    """Decorator: use `fn(path) -> text` for files with these extensions ('.pdf', ...)."""

    def deco(fn: Reader) -> Reader:
        for ext in exts:
            READERS[ext.lower()] = fn
        return fn

    return deco


@register_reader(".txt", ".md", ".markdown")
def read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise Unreadable("binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy encodings are common in exported notes; cp1252 maps nearly every byte.
        return data.decode("cp1252", errors="replace")


@register_reader(".pdf")
def read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise Unreadable("PDF is encrypted")
        return "\n\n".join((page.extract_text() or "") for page in reader.pages)
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        raise Unreadable(f"not a readable PDF ({type(e).__name__}: {e})") from e


@register_reader(".docx")
def read_docx(path: Path) -> str:
    import zipfile

    import docx

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise Unreadable(f"not a valid .docx file ({type(e).__name__})") from e
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n\n".join(parts)


@register_reader(".html", ".htm")
def read_html(path: Path) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes(), "lxml")
    for tag in soup(["script", "style", "nav", "noscript", "template", "header", "footer"]):
        tag.decompose()
    # A newline between elements keeps paragraphs apart; normalise() then tidies the gaps.
    return soup.get_text("\n")


def normalise(text: str) -> str:
    """NFC, no trailing spaces, runs of spaces collapsed, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def whitespace_token_spans(text: str) -> list[tuple[int, int]]:
    """Spans of whitespace-separated words: a model-free token counter."""
    return [m.span() for m in re.finditer(r"\S+", text)]


def hf_token_spans(tokenizer: Any) -> TokenSpans:
    """Token spans from a Hugging Face fast tokenizer's offset mapping."""

    def spans(text: str) -> list[tuple[int, int]]:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(a, b) for a, b in enc["offset_mapping"] if b > a]

    return spans


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def _sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences (split after . ! ? and at blank lines)."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > start:
            out.append((start, m.start()))
        start = m.end()
    if start < len(text):
        out.append((start, len(text)))
    return [(a, b) for a, b in out if text[a:b].strip()]


def chunk_document(doc: Document, chunking: ChunkingConfig, token_spans: TokenSpans) -> list[Chunk]:
    """Cut a document into chunks of at most `chunk_tokens` tokens, whole sentences where
    possible, each next chunk starting with up to `overlap_tokens` tokens of the previous one.

    Chunk text is an exact slice of the document text.
    """
    text = doc.text
    limit, overlap = chunking.chunk_tokens, chunking.overlap_tokens
    # Pieces are (start, end, tokens): whole sentences, or windows of a too-long sentence.
    pieces: list[tuple[int, int, int]] = []
    for a, b in _sentences(text):
        toks = token_spans(text[a:b])
        if len(toks) <= limit:
            if toks:
                pieces.append((a, b, len(toks)))
            continue
        step = max(1, limit - overlap)
        for i in range(0, len(toks), step):
            window = toks[i : i + limit]
            pieces.append((a + window[0][0], a + window[-1][1], len(window)))
            if i + limit >= len(toks):
                break

    chunks: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        j, used = i, 0
        while j < len(pieces) and (j == i or used + pieces[j][2] <= limit):
            used += pieces[j][2]
            j += 1
        chunks.append((pieces[i][0], pieces[j - 1][1]))
        if j >= len(pieces):
            break
        # Step back over trailing pieces worth at most `overlap` tokens, always moving forward.
        k, carried = j, 0
        while k - 1 > i and carried + pieces[k - 1][2] <= overlap:
            carried += pieces[k - 1][2]
            k -= 1
        i = k
    return [
        Chunk(f"{doc.name}#{n}", doc.name, text[a:b], len(token_spans(text[a:b])))
        for n, (a, b) in enumerate(chunks)
    ]


def fingerprint(documents: Iterable[Document], settings: dict[str, Any]) -> str:
    """A short hash of the normalised texts (with names) and the settings that shape chunks."""
    h = hashlib.sha256()
    for d in sorted(documents, key=lambda d: d.name):
        h.update(d.name.encode() + b"\0" + d.text.encode() + b"\0")
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _list_files(source: Path | list[Path]) -> tuple[Path | None, list[Path]]:
    if isinstance(source, (list, tuple)):
        return None, [Path(p) for p in source]
    root = Path(source)
    if root.is_file():
        return root.parent, [root]
    if not root.is_dir():
        raise FileNotFoundError(f"corpus not found: {root}")
    files = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return root, files


def ingest(
    source: Path | list[Path],
    chunking: ChunkingConfig,
    token_spans: TokenSpans,
    *,
    max_file_bytes: int = 50_000_000,
    fingerprint_extra: dict[str, Any] | None = None,
) -> Corpus:
    """Read a folder (recursively) or a list of files into a chunked, fingerprinted Corpus.

    Never raises for a bad file: it becomes an IngestError and the others are still used.
    A missing folder raises FileNotFoundError.
    """
    root, files = _list_files(source)
    documents: list[Document] = []
    errors: list[IngestError] = []
    for path in files:
        name = path.relative_to(root).as_posix() if root else path.name
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            errors.append(IngestError(name, f"unsupported file type {path.suffix or '(none)'}"))
            continue
        size = path.stat().st_size
        if size > max_file_bytes:
            errors.append(
                IngestError(
                    name, f"file too large ({size / 1e6:.1f} MB > {max_file_bytes / 1e6:.0f} MB)"
                )
            )
            continue
        try:
            text = normalise(reader(path))
        except Unreadable as e:
            errors.append(IngestError(name, str(e)))
            continue
        except Exception as e:  # a parser bug on one odd file must not sink the corpus
            errors.append(IngestError(name, f"could not be read ({type(e).__name__}: {e})"))
            continue
        if not text:
            errors.append(IngestError(name, "no extractable text"))
            continue
        documents.append(Document(name, text))

    chunks = [c for d in documents for c in chunk_document(d, chunking, token_spans)]
    settings = {**chunking.to_dict(), **(fingerprint_extra or {})}
    return Corpus(documents, chunks, errors, fingerprint(documents, settings))
