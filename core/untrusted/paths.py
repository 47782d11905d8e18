"""Names from a browser made safe as file names, and destinations confined under their root.

A name is untrusted text: it may hold separators, `..`, control characters, decomposed unicode
or more bytes than a file system allows in one name (ENAMETOOLONG). `safe_filename` makes one
usable component of it; `confined` builds a path from parts and refuses one that resolves
(symbolic links followed) outside its root.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

# Linux allows 255 bytes per name; leave room for the "-1" a caller adds to keep duplicates and
# for the ".tmp..." suffix of an atomic write.
MAX_NAME_BYTES = 200
# Characters kept: letters and digits of any script, and . - _ and space. Everything else
# (separators, quotes, shell and Markdown punctuation, control characters) becomes "_".
_UNSAFE = re.compile(r"[^\w.\- ]")


class UnsafePath(ValueError):
    """A destination that would leave its root; the message names it."""


def _cap_bytes(text: str, limit: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `limit` bytes."""
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", errors="ignore")  # drops a character cut in half


def safe_filename(name: object, default: str = "file", max_bytes: int = MAX_NAME_BYTES) -> str:
    """One safe path component from an untrusted name: the base name only (after / or \\),
    NFC, no control characters or punctuation beyond `. - _ space`, no leading dot (hidden
    files), not `.` or `..`, at most `max_bytes` UTF-8 bytes with the extension kept, and
    never empty (`default` then)."""
    text = unicodedata.normalize("NFC", str(name or ""))
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text).strip(" .")
    if not text:
        return default
    if len(text.encode("utf-8")) > max_bytes:
        stem, dot, ext = text.rpartition(".")
        if dot and stem and len(ext.encode("utf-8")) <= 16:
            ext = "." + ext
            text = _cap_bytes(stem, max_bytes - len(ext.encode("utf-8"))).rstrip(" .") + ext
        else:
            text = _cap_bytes(text, max_bytes).rstrip(" .")
    return text or default


def is_within(path: str | Path, root: str | Path) -> bool:
    """Whether `path` resolves (links followed) to `root` or somewhere under it."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == base or base in real.parents


def confined(root: str | Path, *parts: str | Path) -> Path:
    """`root / parts...`, resolved; raises UnsafePath when that lands outside `root` (an
    absolute part, `..`, or a symbolic link pointing out). The root need not exist yet."""
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base.joinpath(*[str(p) for p in parts])))
    if target != base and base not in target.parents:
        shown = "/".join(str(p) for p in parts)
        raise UnsafePath(f"{shown!r} would be written outside {str(root)!r}")
    return target


def find_file(root: str | Path, name: str, max_depth: int = 3) -> Path | None:
    """The first file called `name` at `root` or at most `max_depth` folders below it
    (breadth first, sorted, links to folders not followed); None if there is none.

    Bounded where `rglob` is not: a root of `/` must not walk the whole file system.
    """
    level = [Path(root)]
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for folder in level:
            candidate = folder / name
            if candidate.is_file():
                return candidate
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:  # unreadable or vanished: skip it, not the search
                continue
            nxt.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
        level = nxt[:1000]  # a bounded breadth too: a folder of a million folders is not an adapter
        if not level:
            break
    return None
