"""Each run's files on disk: one folder per run id, built in temporary folders and renamed into
place, deleted with the run, and measured for the History page.

Layout under a run config's `workdir`:
    runs/<run id>/<strategy label>/   what that strategy's prepare() wrote (adapters, indexes)
    runs/<run id>/merged/<label>/     a merged full model exported from a trained adapter
Nothing is shared between runs, so deleting one run, or a second run with the same settings,
never removes or overwrites another's adapter or index. A folder being built is
`.<name>.building-<random>` beside its final place; a reader (the playground, an export) only
ever sees finished folders, and a crash leaves a hidden leftover that `clean_leftovers` removes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

RUNS = "runs"
MERGED = "merged"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_BUILDING = ".building-"


def run_dir(workdir: str | Path, run_id: str) -> Path:
    """The folder holding run `run_id`'s files (not created). Raises ValueError for an id that
    is not a plain name, so no id can point outside `workdir`/runs."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or run_id.strip(".") == "":
        raise ValueError(f"not a run id: {run_id!r}")
    return Path(workdir).resolve() / RUNS / run_id


def merged_dir(workdir: str | Path, run_id: str, label: str) -> Path:
    """Where the merged full model of run `run_id`'s strategy `label` is kept (not created)."""
    return run_dir(workdir, run_id) / MERGED / label_folder(label)


def label_folder(label: str) -> str:
    """A folder name for a strategy label ("lora@50%" -> "lora_50_"), never empty."""
    return _UNSAFE.sub("_", label).strip(".") or "_"


class Staged:
    """A temporary folder beside `final`, renamed to `final` by `publish()` or removed by
    `discard()`. Usable as a context manager: leaving it without `publish()` discards."""

    def __init__(self, final: str | Path):
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(
            tempfile.mkdtemp(prefix=f".{self.final.name}{_BUILDING}", dir=self.final.parent)
        )
        self.done = False

    def publish(self) -> Path:
        """Move the built folder to `final`, replacing an older one; returns `final`."""
        old = None
        if self.final.exists():
            # rename() cannot replace a non-empty folder: move the old one aside first, so the
            # final name is never a half-copied mixture of both.
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}-{id(self)}")
            self.final.rename(old)
        self.path.rename(self.final)
        self.done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        if not self.done:
            shutil.rmtree(self.path, ignore_errors=True)
            self.done = True

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def relocate(value: Any, old: str | Path, new: str | Path) -> Any:
    """`value` (a report: dicts, lists, strings) with every path under `old` moved to `new`,
    so what a strategy reported while building points at the published folder."""
    old_s, new_s = str(old), str(new)
    if isinstance(value, str):
        if value == old_s or value.startswith(old_s + os.sep):
            return new_s + value[len(old_s) :]
        return value
    if isinstance(value, dict):
        return {k: relocate(v, old_s, new_s) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(relocate(v, old_s, new_s) for v in value)
    return value


def folder_bytes(path: str | Path) -> int:
    """Bytes of every file under `path` (links not followed; 0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_size
    return total


def delete_run_files(workdir: str | Path, run_id: str) -> int:
    """Remove run `run_id`'s folder; returns the bytes freed (0 when it had none)."""
    folder = run_dir(workdir, run_id)
    freed = folder_bytes(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return freed


def clean_leftovers(folder: str | Path) -> int:
    """Remove folders a crashed build left (`.<name>.building-*`, `.<name>.old-*`) directly in
    `folder`; returns how many. Only called where no build can be going on (a run's own
    folder before it starts or resumes)."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and (_BUILDING in entry.name or ".old-" in entry.name):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    return removed


def disk_usage(folders: list[Path]) -> int:
    """Bytes used by these run folders together."""
    return sum(folder_bytes(f) for f in folders)


def human_bytes(n: float) -> str:
    """1536 -> "1.5 KB" (powers of 1024, one decimal)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
