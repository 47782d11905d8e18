"""Writing files that other processes read while they are being replaced."""

from __future__ import annotations

from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file beside it, then rename: a reader
    (the page, the worker, another session) sees the old file or the new one, never half of
    one. Creates the parent folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
