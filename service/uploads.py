"""Saving files uploaded through the browser into a corpus folder, within limits.

Names are reduced to a safe base name (core.untrusted.paths: no paths, no hidden files, bounded
length)
and every destination is confined to its folder; files over the limits are refused by name, and
the rest are kept. Limits are checked from the sizes the browser's upload reports, before the
bytes are copied out of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import ConfigBase, check, option
from core.files import write_bytes_atomic
from core.tasks import MAX_TASK_FILE_BYTES, check_task_file
from core.types import IngestError
from core.untrusted.paths import confined, safe_filename
from core.untrusted.sandbox import FileParser, ParseRefused
from service.operator import load_operator

DOC_TYPES = ("txt", "md", "pdf", "docx", "html", "htm")
QA_TYPES = ("jsonl", "json", "csv")
# A format task's JSON Schema, a style task's rules: the file each task kind takes.
TASK_FILE_TYPES = {"format": ("json",), "style": ("yaml", "yml")}
TASK_FILE_WORDS = {"format": "a JSON Schema", "style": "a style file"}


@dataclass
class UploadLimits(ConfigBase):
    max_file_mb: float = option(50.0, "Largest single uploaded file, in MB.")
    max_total_mb: float = option(200.0, "Largest total upload per corpus, in MB.")
    max_files: int = option(200, "Most documents in one upload.")

    def validate(self) -> None:
        check(float(self.max_file_mb) > 0, "max_file_mb must be > 0")
        check(float(self.max_total_mb) >= float(self.max_file_mb), "max_total_mb < max_file_mb")
        check(int(self.max_files) >= 1, "max_files must be >= 1")


LIMITS_FILE = "upload_limits.yaml"


def load_limits(path: str | Path) -> UploadLimits:
    """The operator's limits from a YAML file of UploadLimits fields (any subset), or the
    defaults when there is no such file. Raises ConfigError for a file that does not parse or
    holds bad values, naming the file and line (service.operator)."""
    path = Path(path)
    return load_operator(path.parent, path.name, UploadLimits)


def safe_name(name: str) -> str:
    """The base name made safe for a file system (see core.untrusted.paths.safe_filename)."""
    return safe_filename(name)


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its name, its size and how to get its bytes (called only once the
    size is accepted)."""

    name: str
    size: int
    read: Callable[[], bytes]

    @classmethod
    def of(cls, item: Any) -> Upload:
        """From a (name, bytes) pair or an object with `name`, `size` and `getvalue()` (a
        Streamlit UploadedFile)."""
        if isinstance(item, Upload):
            return item
        if isinstance(item, tuple):
            name, data = item
            return cls(str(name), len(data), lambda: data)
        return cls(str(item.name), int(item.size), item.getvalue)


def save_documents(
    files: list[Any], dest: Path, limits: UploadLimits
) -> tuple[list[Path], list[IngestError]]:
    """Write uploaded documents ((name, bytes) pairs or Upload-like objects) into `dest`;
    returns the saved paths and the refused files. Count, type, size and total are checked
    before a file's bytes are read."""
    dest.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    refused: list[IngestError] = []
    total = 0.0
    for i, upload in enumerate(map(Upload.of, files)):
        name = upload.name
        mb = upload.size / 2**20
        ext = Path(name).suffix.lower().lstrip(".")
        if i >= limits.max_files:
            unit = "file" if limits.max_files == 1 else "files"
            refused.append(IngestError(name, f"more than {limits.max_files} {unit} in one upload"))
        elif ext not in DOC_TYPES:
            refused.append(IngestError(name, f"unsupported file type .{ext or '?'}"))
        elif mb > limits.max_file_mb:
            refused.append(
                IngestError(name, f"file too large ({mb:.1f} MB > {limits.max_file_mb} MB)")
            )
        elif total + mb > limits.max_total_mb:
            refused.append(IngestError(name, f"upload total over {limits.max_total_mb} MB"))
        else:
            target = first = confined(dest, safe_name(name))
            n = 1
            while target in saved:  # two uploads with the same name keep both
                target = confined(dest, f"{first.stem}-{n}{first.suffix}")
                n += 1
            data = upload.read()
            if len(data) != upload.size:  # the reported size is what the limits were checked on
                refused.append(IngestError(name, "its size changed while it was read"))
                continue
            target.write_bytes(data)
            saved.append(target)
            total += mb
    return saved, refused


def save_qa(upload: Any, dest: Path, limits: UploadLimits) -> Path:
    """Write an uploaded Q/A file ((name, bytes) or Upload-like); raises ValueError with the
    reason when it is refused. The size is checked before the bytes are read."""
    upload = Upload.of(upload)
    name = upload.name
    ext = Path(name).suffix.lower().lstrip(".")
    if ext not in QA_TYPES:
        raise ValueError(f"{name}: Q/A file must be .jsonl, .json or .csv, not .{ext or '?'}")
    if upload.size / 2**20 > limits.max_file_mb:
        raise ValueError(f"{name}: file too large (over {limits.max_file_mb} MB)")
    dest.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(confined(dest, safe_name(name)), upload.read())


def save_task_file(upload: Any, kind: str, dest: Path) -> Path:
    """Check an uploaded schema (`kind` "format") or style file ("style") and keep it in
    `dest` under a name made of its content hash (`format-<hash>.json`), never the browser's
    name. Type and size (at most core.tasks.MAX_TASK_FILE_BYTES) are checked before the bytes
    are read; the file is then read with the code a run uses (core.tasks) in the bounded
    parser child. Raises ValueError naming the file and the reason (line where known); a
    refused file leaves nothing behind."""
    upload = Upload.of(upload)
    name = safe_name(upload.name)
    ext = Path(name).suffix.lower().lstrip(".")
    types = TASK_FILE_TYPES.get(kind)
    if types is None:
        raise ValueError(f"the {kind} task takes no file")
    if ext not in types:
        wanted = " or ".join(f".{t}" for t in types)
        raise ValueError(f"{name}: {TASK_FILE_WORDS[kind]} must be a {wanted} file")
    if upload.size > MAX_TASK_FILE_BYTES:
        raise ValueError(
            f"{name}: file too large ({upload.size:,} bytes > {MAX_TASK_FILE_BYTES:,}); "
            f"{TASK_FILE_WORDS[kind]} is a few hundred bytes"
        )
    data = upload.read()
    if len(data) != upload.size:  # the reported size is what the limit was checked on
        raise ValueError(f"{name}: its size changed while it was read")
    dest.mkdir(parents=True, exist_ok=True)
    # Checked under its own (safe) name, so messages name the file the user chose; kept under
    # its hash, so two uploads of one file are one file and a name never becomes a path.
    staging = Path(tempfile.mkdtemp(prefix=".checking-", dir=dest))
    try:
        path = confined(staging, name)
        path.write_bytes(data)
        with FileParser() as parser:
            try:
                parser.call(check_task_file, path, kind)
            except ParseRefused as e:  # a TaskFileError's message, or the limit it went over
                text = str(e)
                raise ValueError(text if name in text else f"{name}: {text}") from None
        target = confined(dest, f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}.{ext}")
        os.replace(path, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
