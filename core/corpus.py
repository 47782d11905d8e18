"""Corpus ingestion: files -> plain text -> token-bounded chunks, plus a fingerprint.

Parsing is left to maintained libraries (pypdf, python-docx, lxml's streaming HTML parser) and
runs in a bounded child process (core.untrusted.sandbox); every file that cannot be used is reported
by
name with the reason, and the rest of the corpus is still used.
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.config import ChunkingConfig
from core.registry import Registry
from core.types import Chunk, Corpus, Document, IngestError
from core.untrusted.sandbox import FileParser, ParseLimits, ParseRefused

TokenSpans = Callable[[str], list[tuple[int, int]]]
Reader = Callable[[Path], str]

READERS: Registry[Reader] = Registry("reader", unique=False)  # by file extension
# Part of every fingerprint: bump it when chunking changes, so cached artifacts are rebuilt.
CHUNKER_VERSION = 2


# Characters of text one corpus may hold (~2.5M tokens): far beyond what a comparison on this
# kind of machine can use, and what the web process can chunk and preview in a few hundred MB.
MAX_CORPUS_CHARS = 10_000_000


class CorpusTooLarge(ValueError):
    """A corpus with more text than MAX_CORPUS_CHARS; the message says so and where."""


class Unreadable(Exception):
    """A reader's verdict that a file cannot be used; the message is shown to the user."""


def register_reader(*exts: str) -> Callable[[Reader], Reader]:
    """Decorator: use `fn(path) -> text` for files with these extensions ('.pdf', ...)."""

    return READERS.register(*(ext.lower() for ext in exts))


# Share of characters no text holds (controls other than whitespace, unassigned and private-use
# code points, U+FFFD from undecodable bytes) above which a "text" file is binary data: real
# text has next to none; a binary decoded as cp1252 or UTF-16 has 5-15%.
_BINARY_SHARE = 0.02


def _refuse_binary(text: str) -> str:
    sample = text[:65536]
    odd = sum(
        1
        for ch in sample
        if ch == "\ufffd"
        or (unicodedata.category(ch) in ("Cc", "Cn", "Co", "Cs") and ch not in "\t\n\r\f")
    )
    if sample and (odd / len(sample) > _BINARY_SHARE or "\x00" in sample):
        raise Unreadable("binary data, not text")
    return text


@register_reader(".txt", ".md", ".markdown")
def read_text(path: Path) -> str | tuple[str, str]:
    """UTF-8 text (UTF-16 with a BOM; lines that are not UTF-8 read as cp1252, with a warning
    returned beside the text); refuses binaries."""
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _refuse_binary(data.decode("utf-16", errors="replace"))
    if b"\x00" in data:  # never in real UTF-8/cp1252 text, always in executables and images
        raise Unreadable("binary data, not text")
    try:
        return _refuse_binary(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    # Line by line: UTF-8 where a line is UTF-8, cp1252 (common in exported notes; it maps
    # nearly every byte) where it is not, so one legacy paragraph does not garble the rest.
    lines, legacy = [], 0
    for line in data.removeprefix(codecs.BOM_UTF8).split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("cp1252", errors="replace"))
            legacy += 1
    text = _refuse_binary("\n".join(lines))
    if legacy == len(lines):
        return text, "not UTF-8: read as Windows-1252 (cp1252); check its accents"
    return text, (
        f"mixed encodings: {legacy} of {len(lines)} lines are not UTF-8 and were read as "
        "Windows-1252 (cp1252); check their accents"
    )


@register_reader(".pdf")
def read_pdf(path: Path) -> str:
    """Text of every page, pages separated by a blank line. An encrypted PDF is opened when its
    user password is empty (common for 'no copying' PDFs), else refused."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as e:
                raise Unreadable(f"PDF is encrypted and cannot be opened here ({e})") from e
            if not opened:
                raise Unreadable("PDF is encrypted with a password")
        return "\n\n".join((page.extract_text() or "") for page in reader.pages)
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        raise Unreadable(f"not a readable PDF ({type(e).__name__}: {e})") from e


@register_reader(".docx")
def read_docx(path: Path) -> str:
    """Paragraphs and table rows (cells joined by ' | ') in document order."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise Unreadable("not a valid .docx file") from e
    parts = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            parts.extend(" | ".join(cell.text for cell in row.cells) for row in block.rows)
        else:
            parts.append(block.text)
    return "\n\n".join(parts)


# Tag lists read better as words.
_HTML_DROP = frozenset("script style nav noscript template svg title".split())  # noqa: SIM905
_HTML_BLOCKS = frozenset(
    (  # noqa: SIM905
        "p div br hr li dt dd tr td th table ul ol dl pre blockquote section article header "
        "footer main aside figure figcaption form fieldset address h1 h2 h3 h4 h5 h6"
    ).split()
)


class _HtmlText:
    """lxml parser target: collects visible text as the parser streams events, without building
    a tree (time linear in the input, memory that of the text), a newline around each block."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.dropped = 0  # depth inside elements whose text is not shown

    def start(self, tag: str, attrib: dict) -> None:
        if tag in _HTML_DROP:
            self.dropped += 1
        elif tag in _HTML_BLOCKS:
            self.parts.append("\n")

    def end(self, tag: str) -> None:
        if tag in _HTML_DROP:
            self.dropped = max(0, self.dropped - 1)
        elif tag in _HTML_BLOCKS:
            self.parts.append("\n")

    def data(self, text: str) -> None:
        if not self.dropped:
            self.parts.append(text)

    def comment(self, text: str) -> None:
        pass

    def close(self) -> str:
        return "".join(self.parts)


@register_reader(".html", ".htm")
def read_html(path: Path) -> str:
    """Visible text, one line per block element; scripts, styles, menus and the title dropped."""
    from lxml import etree

    # Bytes: libxml2 honours a BOM and the declared <meta charset>. No tree is built, so deep
    # nesting costs no more than flat markup (a tree library took minutes on 1 MB of <div>s).
    parser = etree.HTMLParser(target=_HtmlText(), recover=True, no_network=True)
    parser.feed(path.read_bytes())
    return _refuse_binary(parser.close())


def whitespace_token_spans(text: str) -> list[tuple[int, int]]:
    """Spans of whitespace-separated words: a model-free token counter."""
    return [m.span() for m in re.finditer(r"\S+", text)]


def hf_token_spans(tokenizer: Any) -> TokenSpans:
    """Token spans from a Hugging Face fast tokenizer's offset mapping (empty spans dropped)."""

    def spans(text: str) -> list[tuple[int, int]]:
        # verbose=False: whole documents exceed the model length on purpose, no warning wanted.
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(a, b) for a, b in enc["offset_mapping"] if b > a]

    return spans


# Where a sentence ends: after . ! ? (and any closing quote/bracket) before a space, or at a
# blank line. Abbreviations give extra cut points, which only makes chunks a little smaller.
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+|\n\s*\n")


def _token_ranges(
    bounds: list[int], solid: list[int], limit: int, overlap: int
) -> list[tuple[int, int]]:
    """Chunks as [start, end) token ranges.

    `bounds`: sorted token indices where a sentence starts (0 and n included). `solid[i]`: the
    first token at or after i that is not whitespace only (n if none), so that no chunk starts
    on a newline token and, once stripped, repeats its predecessor's start.
    """
    n = bounds[-1]
    is_bound = set(bounds)
    out: list[tuple[int, int]] = []
    start = solid[0]
    while start < n:
        i = bisect.bisect_right(bounds, start + limit) - 1
        end = bounds[i]
        # No whole sentence fits, or the next one must be windowed anyway: fill up to the limit.
        if end <= start or (end < n and bounds[i + 1] - end > limit):
            end = min(start + limit, n)
        out.append((start, end))
        if end == n:
            break
        if end in is_bound:
            # Repeat the trailing whole sentences worth at most `overlap` tokens, but fewer if
            # needed for the next sentence to fit, or the next chunk would end where this one
            # did. `end` is itself a bound > `start`, so `start` moves on.
            lo = max(start + 1, end - overlap)
            following = bounds[bisect.bisect_right(bounds, end)]
            if following - end <= limit:
                lo = max(lo, following - limit)
            start = bounds[bisect.bisect_left(bounds, lo)]
        else:
            start = end - overlap  # cut inside a sentence: overlap by tokens (overlap < limit)
        start = solid[start]
    return out


def chunk_document(doc: Document, chunking: ChunkingConfig, token_spans: TokenSpans) -> list[Chunk]:
    """Cut a document into chunks of at most `chunk_tokens` tokens, whole sentences where
    possible, each next chunk repeating up to `overlap_tokens` tokens of the previous one.

    Chunk text is an exact slice of the document text; `n_tokens` is the chunk's own count.
    """
    text = doc.text
    spans = sorted(token_spans(text))
    n = len(spans)
    starts = [a for a, _ in spans]
    # A token starting exactly at the break (GPT-2 style " word") belongs to the next sentence.
    bounds = sorted(
        {0, n} | {bisect.bisect_left(starts, m.start()) for m in _SENTENCE_BREAK.finditer(text)}
    )
    solid = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        solid[i] = solid[i + 1] if text[spans[i][0] : spans[i][1]].isspace() else i
    # Packing uses the whole document's tokens; a chunk tokenised alone can count a token or
    # two more at its edges (BPE merges differ), so pack tighter until every chunk fits.
    limit, overlap = chunking.chunk_tokens, chunking.overlap_tokens
    while True:
        pieces, last_end = [], -1
        for s, e in _token_ranges(bounds, solid, limit, min(overlap, limit - 1)):
            a, b = spans[s][0], spans[e - 1][1]
            b = a + len(text[a:b].rstrip())
            if b <= last_end:  # a window that only added "\n" tokens lies inside the previous
                continue
            last_end = b
            piece = text[a:b].lstrip()  # offsets may include the leading space
            pieces.append((piece, len(token_spans(piece))))
        excess = max((k for _, k in pieces), default=0) - chunking.chunk_tokens
        if excess <= 0 or limit == 1:
            break
        limit = max(1, limit - excess)
    return [Chunk(f"{doc.name}#{i}", doc.name, p, k) for i, (p, k) in enumerate(pieces)]


def fingerprint(documents: Iterable[Document], settings: dict[str, Any]) -> str:
    """A 16-hex-digit sha256 of the texts (with names, sorted) and the settings shaping chunks."""
    h = hashlib.sha256()
    for d in sorted(documents, key=lambda d: d.name):
        h.update(d.name.encode() + b"\0" + d.text.encode() + b"\0")
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _list_files(
    source: str | Path | list[Path],
) -> tuple[Path | None, list[Path], list[IngestError]]:
    """(root, files to read, files not read with the reason): every entry of a folder is one
    or the other, never dropped without a word. Hidden files are named and skipped; a link
    (or a file under a linked folder) that leads outside the folder is refused, not read."""
    if isinstance(source, (list, tuple)):
        return None, [Path(p) for p in source], []
    root = Path(source)
    if root.is_file():
        return root.parent, [root], []
    if not root.is_dir():
        raise FileNotFoundError(f"corpus not found: {root}")
    real_root = root.resolve()
    files, skipped = [], []
    for p in sorted(root.rglob("*")):
        name = p.relative_to(root).as_posix()
        if p.is_dir() and not p.is_symlink():
            continue
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            skipped.append(IngestError(name, "hidden file: skipped"))
        elif p.is_symlink() and not p.exists():
            skipped.append(IngestError(name, "a link to nothing"))
        elif not p.resolve().is_relative_to(real_root):
            skipped.append(IngestError(name, "a link to something outside the corpus folder"))
        elif p.is_dir():
            skipped.append(IngestError(name, "a link to a folder: its files were not read"))
        elif not p.is_file():
            skipped.append(IngestError(name, "not a regular file"))
        else:
            files.append(p)
    return root, files, skipped


def _read(path: Path, max_file_bytes: int, parser: FileParser) -> tuple[str, str]:
    """(normalised text, warning or "") of one file, read in the bounded child, or Unreadable
    with the reason. The size is checked before a byte is read."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise Unreadable(f"unsupported file type {path.suffix.lower() or '(no extension)'}")
    if not path.is_file():
        raise Unreadable("not a file" if path.exists() else "file not found")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise Unreadable(f"file too large ({size / 1e6:.1f} MB > {max_file_bytes / 1e6:g} MB)")
    try:
        text, warning = parser.read_doubt(path, reader)
    except ParseRefused as e:
        raise Unreadable(str(e)) from e
    if not text:
        raise Unreadable("no extractable text")
    return text, warning


def ingest(
    source: str | Path | list[Path],
    chunking: ChunkingConfig,
    token_spans: TokenSpans,
    *,
    max_file_bytes: int = 50_000_000,
    fingerprint_extra: dict[str, Any] | None = None,
    limits: ParseLimits | None = None,
    max_total_chars: int = MAX_CORPUS_CHARS,
) -> Corpus:
    """Read a folder (recursively, hidden files skipped) or a list of files into a chunked,
    fingerprinted Corpus. Names are posix paths relative to the folder, or file names.

    Files are parsed in one bounded child process (core.untrusted.sandbox, `limits`): a bomb or a
    hang
    becomes an IngestError, never a crash here. Never raises for a bad file: it becomes an
    IngestError and the others are still used; a doubtful one (a duplicate, text not all UTF-8)
    is used and listed in `warnings`. A missing folder raises FileNotFoundError, a corpus of more
    than `max_total_chars` characters CorpusTooLarge (checked as files are read, before any
    chunking, so the calling process never holds the chunks of a huge corpus).
    """
    root, files, errors = _list_files(source)
    documents: list[Document] = []
    warnings: list[IngestError] = []
    seen: set[str] = set()
    texts: dict[str, str] = {}  # sha256 of a text -> the first document that had it
    total = 0
    with FileParser(limits) as parser:
        for path in files:
            name = path.relative_to(root).as_posix() if root else path.name
            try:
                if name in seen:  # only possible for a list of files from different folders
                    raise Unreadable("another file with the same name was already read")
                text, warning = _read(path, max_file_bytes, parser)
            except Unreadable as e:
                errors.append(IngestError(name, str(e)))
                continue
            total += len(text)
            if total > max_total_chars:  # before any chunking: the caller stays small
                raise CorpusTooLarge(
                    f"the corpus has more than {max_total_chars:,} characters of text (at "
                    f"{name}); use fewer or shorter documents"
                )
            seen.add(name)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in texts:
                warning = "; ".join(
                    w for w in (warning, f"the same text as {texts[digest]}: read twice") if w
                )
            texts.setdefault(digest, name)
            if warning:
                warnings.append(IngestError(name, warning))
            documents.append(Document(name, text))

    chunks = [c for d in documents for c in chunk_document(d, chunking, token_spans)]
    settings = {**chunking.to_dict(), "chunker": CHUNKER_VERSION, **(fingerprint_extra or {})}
    return Corpus(documents, chunks, errors, fingerprint(documents, settings), warnings)
