"""Storage every node of a cluster reaches: where Ray workers put an arm's files (adapters,
indexes, trial outputs) and where the driver fetches them from.

`executor.storage` is a folder every node mounts (NFS), or `s3://` / `gs://` through
`pyarrow.fs` (as Ray Train's `storage_path`). A worker never reads or writes a path of the
driver's filesystem: it builds the arm in a scratch folder of its own node, under a placeholder
that stands for "the arm's folder", and copies the folder to `<storage>/<key>`; the driver copies
it from there into the run's folder and puts its own path where the placeholder was.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import ConfigError
from eval.store.artifacts import relocate

# What a path inside the arm's folder is written as while it crosses between machines: the
# driver's and the worker's folders differ, and neither may see the other's.
ARM_FOLDER = "@arm-folder@"
MULTI_NODE_REFUSAL = (
    "executor.storage is not set and the Ray cluster has {nodes} nodes: a worker on another "
    "node cannot reach this machine's folders, so adapters, indexes and trial outputs would be "
    "left where the driver cannot read them. Set `storage` (`--storage URI`, `executor: "
    "{{storage: ...}}` in the run's YAML or the operator's cluster.yaml) to a folder every "
    "node mounts, or s3://bucket/prefix, gs://bucket/prefix."
)


def check_reachable(storage: str, nodes: int) -> None:
    """Refuse a multi-node cluster without storage (ConfigError saying why)."""
    if nodes > 1 and not storage:
        raise ConfigError(MULTI_NODE_REFUSAL.format(nodes=nodes))


@dataclass(frozen=True)
class Storage:
    """A storage URI (folder, file://, s3://, gs://) opened through pyarrow.fs."""

    uri: str

    def _fs(self) -> tuple[Any, str]:
        import pyarrow.fs as pafs  # ships with Ray; only runs that set storage need it

        if "://" not in self.uri:  # a plain folder: absolute, so every node reads it alike
            path = os.path.abspath(self.uri)
            return pafs.LocalFileSystem(), path
        fs, path = pafs.FileSystem.from_uri(self.uri)
        return fs, path

    def location(self, key: str) -> str:
        """Where `key` lives, in words (stored with the arm)."""
        return f"{self.uri.rstrip('/')}/{key}"

    def put(self, folder: Path, key: str) -> None:
        """Copy `folder` (recursively) to `<storage>/<key>`, replacing what was there."""
        import pyarrow.fs as pafs

        fs, root = self._fs()
        dest = f"{root.rstrip('/')}/{key}"
        self.delete(key)
        fs.create_dir(dest, recursive=True)
        if any(Path(folder).iterdir()):
            pafs.copy_files(
                str(Path(folder).resolve()),
                dest,
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=fs,
            )

    def get(self, key: str, folder: Path) -> None:
        """Copy `<storage>/<key>` into `folder` (created); nothing when the key is absent."""
        import pyarrow.fs as pafs

        fs, root = self._fs()
        src = f"{root.rstrip('/')}/{key}"
        Path(folder).mkdir(parents=True, exist_ok=True)
        info = fs.get_file_info(src)
        if info.type != pafs.FileType.Directory:
            return
        if not fs.get_file_info(pafs.FileSelector(src, recursive=False)):
            return  # an empty folder: copy_files has nothing to list
        pafs.copy_files(
            src,
            str(Path(folder).resolve()),
            source_filesystem=fs,
            destination_filesystem=pafs.LocalFileSystem(),
        )

    def delete(self, key: str) -> None:
        """Remove `<storage>/<key>` if it is there."""
        import pyarrow.fs as pafs

        fs, root = self._fs()
        dest = f"{root.rstrip('/')}/{key}"
        if fs.get_file_info(dest).type == pafs.FileType.Directory:
            fs.delete_dir(dest)


def to_placeholder(value: Any, folder: str | Path) -> Any:
    """`value` (a record's or config's dict, list or string) with every path under `folder`
    written against ARM_FOLDER instead."""
    return relocate(value, folder, ARM_FOLDER)


def from_placeholder(value: Any, folder: str | Path) -> Any:
    """`value` with ARM_FOLDER replaced by `folder` (this machine's copy of the arm's files)."""
    return relocate(value, ARM_FOLDER, folder)


def clear(folder: Path) -> None:
    """Remove a scratch folder (best effort: it is the worker's own temp)."""
    shutil.rmtree(folder, ignore_errors=True)
