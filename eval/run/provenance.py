"""Where a run's figures came from: package versions and the code's git commit."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "sentence-transformers",
    "faiss-cpu",
    "chromadb",
    "streamlit",
)


def package_versions() -> dict[str, str]:
    """Python's version and each installed package of PACKAGES, by name."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def git_hash() -> str | None:
    """The commit the code runs from, or None outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
