"""Where the bundled sample and data files live, in a checkout or an installed package.

The packages (`core`, `strategies`, `eval`, `ui`) and `sample_data/` sit side by side both in a
checkout and in site-packages (pyproject.toml installs the sample as package data), so one
folder, found from this file, serves both.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = PACKAGE_ROOT / "sample_data"


def bundled_fallback(path: str | Path) -> Path:
    """`path` as given when it exists (relative to the current folder) or is absolute; else the
    same relative path under the package root when that exists there (so the default
    `sample_data/corpus` is found from any folder); else `path` unchanged, for the caller's own
    "not found" error."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given
    packaged = PACKAGE_ROOT / given
    return packaged if packaged.exists() else given


def sample_task_files(task: str) -> dict[str, str]:
    """The RunConfig settings that give the bundled sample's `task` its files: the format
    task's Q/A file with JSON answers and its schema, the style task's rules ({} for qa)."""
    files = {
        "format": {"qa": "format/qa.jsonl", "schema": "format/schema.json"},
        "style": {"style": "style/style.yaml"},
    }.get(task, {})
    return {key: str(SAMPLE_DIR / rel) for key, rel in files.items()}


def is_sample_qa(path: str | Path | None) -> bool:
    """Whether `path` is the bundled sample's Q/A file."""
    return path is not None and Path(path).resolve() == (SAMPLE_DIR / "qa.jsonl").resolve()
