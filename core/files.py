"""Writing files that other processes read while they are being replaced, and safe CSV cells."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory: the rename still happened
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a uniquely named temporary file beside it (two writers
    never share one), fsync it, rename it over `path`, then fsync the folder: a reader sees
    the old file or the new one, never half of one, even after a crash. Creates the parent
    folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`write_bytes_atomic` of `text` in UTF-8. Returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


# A spreadsheet treats a cell starting with one of these as a formula (or, for tab and CR, as a
# cell boundary that a formula may follow): "=HYPERLINK(...)" in an exported answer would run.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def csv_safe(cell: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a string starting with = + - @, tab or CR
    gets a leading apostrophe (the OWASP advice), unless it is a plain number such as "-3";
    other values are returned unchanged."""
    if (
        isinstance(cell, str)
        and cell.startswith(_FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(cell)
    ):
        return "'" + cell
    return cell
