"""A library of saved corpora: documents (and an optional Q/A file) uploaded once, picked later.

Layout under the root (the app uses `.adaptlab/corpora`):
    <id>/corpus.json        metadata: id, name, created, documents, qa files, refused files
    <id>/docs/              the saved documents (names made safe by service.uploads)
    <id>/qa/<uploaded>      the uploaded Q/A file, if any
    <id>/qa_generated.jsonl generated or edited pairs attached with `set_qa`
    <id>/qa_format.jsonl    format-task pairs made from the Q/A pairs (`set_format_task`)
    <id>/format_schema.json the JSON Schema their answers validate against

The id is a hash of the owner and of the saved documents' names and bytes (and the Q/A file's),
so one owner saving the same files twice gets the same entry and two owners never share one.
Each entry records its owner (core.access); listing, opening and deleting take an `Access`. The
bundled sample is registered by reference (`sample()`), without copying: everyone sees it and
nobody changes it (no deleting, no attached pairs).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.access import Access, AccessDenied
from core.bundled import SAMPLE_DIR
from core.files import write_text_atomic
from core.qa import load_qa_bounded
from core.qagen import save_qa_jsonl
from core.types import IngestError, QAPair
from service.uploads import UploadLimits, save_documents, save_qa

META = "corpus.json"
GENERATED_QA = "qa_generated.jsonl"
FORMAT_QA = "qa_format.jsonl"
FORMAT_SCHEMA = "format_schema.json"
SAMPLE_ID = "sample"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SAMPLE_DIR = SAMPLE_DIR


class CorpusNotFound(KeyError):
    """No saved corpus has this id."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else "corpus not found"


@dataclass
class SavedCorpus:
    """One library entry. `docs_path` is what `ingest` reads; `qa_path` is the Q/A file to use
    (generated/edited pairs when attached, else the uploaded file, else None)."""

    id: str
    name: str
    created: float
    n_docs: int
    documents: list[str]
    docs_path: str
    qa_path: str | None = None
    uploaded_qa: str | None = None
    generated_qa: str | None = None
    refused: list[dict[str, str]] = field(default_factory=list)  # IngestError as dicts
    builtin: bool = False  # the bundled sample: registered by reference, read-only
    owner: str = ""  # core.access token of whoever saved it
    # Documents with usable text, once read (`set_usable`): saved files can still be skipped
    # when read (a scanned PDF, an empty page), and a count of files would overstate them.
    n_usable: int | None = None
    # The format task made from the pairs (core.format_pairs): its Q/A file and its schema.
    format_qa: str | None = None
    format_schema: str | None = None

    @property
    def usable_docs(self) -> int:
        """Documents with text when that was counted, else the saved files."""
        return self.n_docs if self.n_usable is None else self.n_usable

    @property
    def has_qa(self) -> bool:
        return self.qa_path is not None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "has_qa": self.has_qa}


def _clean_name(name: str) -> str:
    """A display name: one line, printable, at most 100 characters."""
    name = " ".join(str(name or "").split())
    name = "".join(ch for ch in name if ch.isprintable())[:100]
    return name or "corpus"


class CorpusLibrary:
    """Saved corpora under `root`. Every method takes ids, never paths, so a name cannot
    point outside the library."""

    def __init__(self, root: str | Path = ".adaptlab/corpora"):
        self.root = Path(root)

    # --- paths ---------------------------------------------------------------------------------
    def _dir(self, corpus_id: str) -> Path:
        if not isinstance(corpus_id, str) or not _ID.match(corpus_id):
            raise CorpusNotFound(f"no saved corpus with id {corpus_id!r}")
        return self.root / corpus_id

    def _read_meta(self, folder: Path) -> dict[str, Any]:
        return json.loads((folder / META).read_text(encoding="utf-8"))

    def _write_meta(self, folder: Path, meta: dict[str, Any]) -> None:
        write_text_atomic(folder / META, json.dumps(meta, indent=2, ensure_ascii=False))

    def _entry(self, folder: Path, meta: dict[str, Any]) -> SavedCorpus:
        base = Path(meta["base"]) if meta.get("base") else folder
        uploaded = str(base / meta["uploaded_qa"]) if meta.get("uploaded_qa") else None
        generated = folder / GENERATED_QA
        gen = str(generated) if generated.is_file() else None
        made = all((folder / f).is_file() for f in (FORMAT_QA, FORMAT_SCHEMA))
        return SavedCorpus(
            id=meta["id"],
            name=meta["name"],
            created=float(meta["created"]),
            n_docs=len(meta["documents"]),
            documents=list(meta["documents"]),
            docs_path=str(base / meta["docs"]),
            qa_path=gen or uploaded,
            uploaded_qa=uploaded,
            generated_qa=gen,
            refused=list(meta.get("refused", [])),
            builtin=bool(meta.get("builtin")),
            owner=str(meta.get("owner") or ""),
            n_usable=meta.get("usable_documents"),
            format_qa=str(folder / FORMAT_QA) if made else None,
            format_schema=str(folder / FORMAT_SCHEMA) if made else None,
        )

    # --- public --------------------------------------------------------------------------------
    def save(
        self,
        name: str,
        documents: list[Any],
        qa: Any = None,
        limits: UploadLimits | None = None,
        owner: str = "",
    ) -> SavedCorpus:
        """Save uploaded documents and an optional Q/A file as one entry of `owner`: (file
        name, bytes) pairs or upload objects with `name`, `size` and `getvalue()`
        (service.uploads.Upload), whose bytes are read only once their sizes pass the limits.

        Files over the limits or of unsupported types are refused and listed in
        `.refused` (name, reason); the rest are kept. Saving the same accepted files again
        returns the existing entry (its name is updated). Raises ValueError when no document
        is accepted or the Q/A file is refused (the message gives the reason).
        """
        limits = limits or UploadLimits()
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=self.root))
        try:
            saved, refused = save_documents(documents, staging / "docs", limits)
            if not saved:
                reasons = "; ".join(f"{e.name}: {e.reason}" for e in refused) or "no files given"
                raise ValueError(f"no document could be saved ({reasons})")
            qa_name = None
            if qa is not None:
                qa_name = save_qa(qa, staging / "qa", limits).name
            corpus_id = self._content_id(staging, owner)
            folder = self.root / corpus_id
            if (folder / META).is_file():
                meta = self._read_meta(folder)
                meta["name"] = _clean_name(name)
                self._write_meta(folder, meta)
                entry = self._entry(folder, meta)
                entry.refused = [asdict(e) for e in refused]
                return entry
            meta = {
                "id": corpus_id,
                "name": _clean_name(name),
                "created": time.time(),
                "docs": "docs",
                "documents": sorted(p.name for p in saved),
                "uploaded_qa": f"qa/{qa_name}" if qa_name else None,
                "refused": [asdict(e) for e in refused],
                "owner": owner,
            }
            self._write_meta(staging, meta)
            shutil.rmtree(folder, ignore_errors=True)  # a half-saved leftover without metadata
            staging.rename(folder)
            return self._entry(folder, meta)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _content_id(staging: Path, owner: str = "") -> str:
        h = hashlib.sha256()
        if owner:  # the operator's ids stay what they were before owners existed
            h.update(owner.encode() + b"\0")
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            h.update(path.relative_to(staging).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
        return h.hexdigest()[:16]

    def list(self, access: Access = Access()) -> list[SavedCorpus]:
        """The entries `access` sees (every one by default) and the sample once `sample()`
        registered it, newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for folder in self.root.iterdir():
            if folder.is_dir() and _ID.match(folder.name) and (folder / META).is_file():
                try:
                    entry = self._entry(folder, self._read_meta(folder))
                except (OSError, ValueError, KeyError):
                    continue  # a damaged entry must not hide the others
                if entry.builtin or access.sees(entry.owner):
                    out.append(entry)
        return sorted(out, key=lambda e: (-e.created, e.name))

    def get(self, corpus_id: str, access: Access = Access()) -> SavedCorpus:
        """The entry with this id; raises CorpusNotFound (also for one `access` does not see)."""
        folder = self._dir(corpus_id)
        if not (folder / META).is_file():
            raise CorpusNotFound(f"no saved corpus with id {corpus_id!r}")
        entry = self._entry(folder, self._read_meta(folder))
        if not (entry.builtin or access.sees(entry.owner)):
            raise CorpusNotFound(f"no saved corpus with id {corpus_id!r}")
        return entry

    def _changeable(self, corpus_id: str, access: Access) -> SavedCorpus:
        entry = self.get(corpus_id, access)
        if entry.builtin:
            raise AccessDenied(f"{entry.name} is shared by everyone and read-only")
        return entry

    def delete(
        self, corpus_id: str, access: Access = Access(), in_use: set[Path] = frozenset()
    ) -> None:
        """Remove an entry and its files. `in_use`: paths that queued or running jobs read
        (service.jobs `inputs_in_use()`); an entry holding one of them is kept. Raises
        CorpusNotFound, AccessDenied for the sample, and ValueError while a job uses it."""
        entry = self._changeable(corpus_id, access)
        folder = self._dir(corpus_id).resolve()
        if any(p == folder or folder in p.parents for p in in_use):
            raise ValueError(
                f"{entry.name} is used by a queued or running job: cancel it or wait for it, "
                "then delete the corpus"
            )
        shutil.rmtree(folder)

    def set_usable(self, corpus_id: str, n: int, access: Access = Access()) -> SavedCorpus:
        """Record how many of the entry's documents have usable text (read by the caller)."""
        self._changeable(corpus_id, access)
        folder = self._dir(corpus_id)
        meta = self._read_meta(folder)
        meta["usable_documents"] = int(n)
        self._write_meta(folder, meta)
        return self._entry(folder, meta)

    def set_qa(
        self, corpus_id: str, qa: list[QAPair] | str | Path | None, access: Access = Access()
    ) -> SavedCorpus:
        """Attach Q/A pairs (a list, or a Q/A file to validate and copy) as
        `qa_generated.jsonl`; an uploaded Q/A file is kept. None removes the attached pairs.
        Raises ValueError for an empty list, core.qa.QAFormatError for a bad file,
        AccessDenied for the sample (shared: save your own copy to attach pairs)."""

        entry = self._changeable(corpus_id, access)
        target = self._dir(corpus_id) / GENERATED_QA
        if qa is None:
            target.unlink(missing_ok=True)
            return self.get(corpus_id)
        # An uploaded file is parsed in the bounded child (core.untrusted.sandbox), not this
        # process.
        pairs = load_qa_bounded(qa) if isinstance(qa, (str, Path)) else list(qa)
        if not pairs:
            raise ValueError(f"{entry.name}: no Q/A pairs to attach")
        save_qa_jsonl(pairs, target)
        return self.get(corpus_id)

    def set_format_task(
        self,
        corpus_id: str,
        records: list[dict[str, Any]],
        schema: dict[str, Any],
        access: Access = Access(),
    ) -> SavedCorpus:
        """Keep format-task pairs (Q/A records with JSON answers, core.format_pairs) and their
        schema beside the entry's other Q/A files, replacing earlier ones; the pairs in use
        stay. Raises ValueError for no records, AccessDenied for the sample (it ships its own)."""
        entry = self._changeable(corpus_id, access)
        if not records:
            raise ValueError(f"{entry.name}: no Q/A pairs to make format pairs from")
        folder = self._dir(corpus_id)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        # The schema first: an entry lists the pair only when both files are there.
        write_text_atomic(folder / FORMAT_SCHEMA, json.dumps(schema, indent=2, ensure_ascii=False))
        write_text_atomic(folder / FORMAT_QA, lines)
        return self.get(corpus_id)

    def sample(self) -> SavedCorpus:
        """Register the bundled sample (sample_data/corpus and qa.jsonl) by reference, without
        copying, and return its entry (id 'sample')."""
        folder = self.root / SAMPLE_ID
        if (folder / META).is_file():
            return self.get(SAMPLE_ID)
        docs = sorted(
            p.name for p in (_SAMPLE_DIR / "corpus").iterdir() if p.is_file() and p.name[0] != "."
        )
        meta = {
            "id": SAMPLE_ID,
            "name": "Sample: Wikipedia health articles",
            "created": 0.0,  # sorts last: the user's own corpora come first
            "base": str(_SAMPLE_DIR),
            "docs": "corpus",
            "documents": docs,
            "uploaded_qa": "qa.jsonl",
            "refused": [],
            "builtin": True,
        }
        self._write_meta(folder, meta)
        return self._entry(folder, meta)


def refused_errors(entry: SavedCorpus) -> list[IngestError]:
    """The files refused when `entry` was saved, as IngestErrors (name, reason)."""
    return [IngestError(r["name"], r["reason"]) for r in entry.refused]
