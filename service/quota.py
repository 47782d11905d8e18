"""Each owner's share of the server's disk: what their runs' files, adapter uploads and saved
corpora take, against the operator's per-owner quota (`owner_disk_mb` in
`<home>/worker_limits.yaml`). Checked before an upload is unpacked and before a run is queued.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.access import Access
from core.format_pairs import FormatTask
from core.untrusted.paths import confined
from eval.store.artifacts import disk_usage, folder_bytes, human_bytes
from eval.store.runs import RunStore
from service.corpus_library import CorpusLibrary, SavedCorpus
from service.limits import load_worker_limits
from service.owners import upload_folder, upload_roots
from service.uploads import UploadLimits, save_task_file
from strategies.lora.deploy import MAX_ADAPTER_ZIP_BYTES, unpack_adapter_zip


class QuotaExceeded(ValueError):
    """An upload or run that would take an owner past their disk quota."""


@dataclass(frozen=True)
class DiskUse:
    """Bytes one owner uses and may use."""

    used: int
    quota: int

    @property
    def left(self) -> int:
        """Bytes still free under the quota (0 when over it)."""
        return max(0, self.quota - self.used)

    def check(self, adding: int = 0, what: str = "this") -> None:
        """Raise QuotaExceeded when `adding` more bytes would go past the quota."""
        if self.used + adding > self.quota:
            raise QuotaExceeded(
                f"{what} would take your files past your disk quota of "
                f"{human_bytes(self.quota)} ({human_bytes(self.used)} used): delete runs, "
                "corpora or adapters on History and Corpus first"
            )

    def describe(self) -> str:
        """ "1.2 GB of your 2.0 GB quota" for a caption."""
        return f"{human_bytes(self.used)} of your {human_bytes(self.quota)} quota"


def adapter_uploads_dir(home: str | Path, owner: str) -> Path:
    """The folder holding `owner`'s uploaded adapters (one subfolder per adapter name), named
    by a hash of the token, never the token (service.owners.upload_folder)."""
    return upload_folder(home, owner)


def owner_disk_use(
    home: str | Path, owner: str, store: RunStore, folders: Iterable[Path] = ()
) -> DiskUse:
    """`owner`'s disk use: their runs' folders, their saved corpora, their adapter uploads
    and `folders`, against the quota of `<home>/worker_limits.yaml`."""
    quota = int(float(load_worker_limits(home).owner_disk_mb) * 2**20)
    mine = Access(owner=owner)  # their own items only, even in a team workspace
    used = disk_usage(store.run_folders(mine))
    library = CorpusLibrary(Path(home) / "corpora")
    used += sum(
        folder_bytes(library.root / c.id)
        for c in library.list(mine)
        if not c.builtin and c.owner == owner
    )
    # Their upload folder, and the one named after the raw token where uploads were kept before.
    used += sum(folder_bytes(f) for f in upload_roots(home, mine))
    used += sum(folder_bytes(f) for f in folders)
    return DiskUse(used, quota)


def _declared_size(item: Any) -> int:
    """Bytes of one upload from what it declares (an upload object's `size`, or the length of
    a (name, bytes) pair's bytes), before anything is copied."""
    if isinstance(item, tuple):
        return len(item[1])
    return int(getattr(item, "size", 0) or 0)


def save_corpus_upload(
    home: str | Path,
    owner: str,
    store: RunStore,
    name: str,
    documents: list[Any],
    qa: Any = None,
    limits: UploadLimits | None = None,
) -> SavedCorpus:
    """Save an uploaded corpus as `owner`'s (CorpusLibrary.save) once its declared size fits
    what is left of the owner's disk quota: corpora count against it like runs and adapters.
    Raises QuotaExceeded (a ValueError) before any byte is written, ValueError as save does."""
    size = sum(_declared_size(d) for d in documents)
    if qa is not None:
        size += _declared_size(qa)
    owner_disk_use(home, owner, store).check(size, "this corpus")
    return CorpusLibrary(Path(home) / "corpora").save(name, documents, qa, limits, owner=owner)


# Beside an owner's adapters, under a name an adapter upload cannot take (safe names never
# start with a dot), so uploading an adapter never replaces these files.
TASK_FILES = ".task-files"


def task_files_dir(home: str | Path, owner: str) -> Path:
    """Where `owner`'s uploaded schemas and style files are kept: inside their upload folder,
    so the Run page's confinement (my_folders) accepts them and the quota counts them."""
    return upload_folder(home, owner) / TASK_FILES


def save_task_upload(home: str | Path, owner: str, store: RunStore, upload: Any, kind: str) -> Path:
    """Save an uploaded schema or style file as `owner`'s (service.uploads.save_task_file)
    once its declared size fits their disk quota. Raises ValueError (QuotaExceeded too)."""
    owner_disk_use(home, owner, store).check(_declared_size(upload), "this file")
    return save_task_file(upload, kind, task_files_dir(home, owner))


def save_format_task(
    home: str | Path,
    owner: str,
    store: RunStore,
    corpus_id: str,
    made: FormatTask,
    access: Access,
) -> SavedCorpus:
    """Keep a corpus's format pairs and schema (eval.run.inputs.format_pairs_bounded) in the
    library once their size fits `owner`'s disk quota. Raises ValueError."""
    size = len(json.dumps(made.records, ensure_ascii=False).encode()) + 4096
    owner_disk_use(home, owner, store).check(size, "these format pairs")
    library = CorpusLibrary(Path(home) / "corpora")
    return library.set_format_task(corpus_id, made.records, made.schema, access)


def save_adapter_upload(
    home: str | Path, owner: str, store: RunStore, name: str, data: bytes
) -> Path:
    """Unpack an uploaded adapter zip as `owner`'s adapter `name` (a safe file name) and return
    the folder holding its adapter_config.json. A new upload of the same name replaces and
    deletes the old one, so re-uploading never piles up copies; the zip is refused from its
    central directory when it would unpack past the owner's quota or MAX_ADAPTER_ZIP_BYTES, or
    is a zip bomb (strategies.lora.deploy.unpack_adapter_zip). Raises ValueError."""

    root = adapter_uploads_dir(home, owner)
    dest = confined(root, name)
    use = owner_disk_use(home, owner, store)
    replaced = folder_bytes(dest)  # its space comes back when the new one lands
    use.check(len(data) - replaced, "this adapter")
    room = use.left + replaced
    try:
        return unpack_adapter_zip(data, dest, min(MAX_ADAPTER_ZIP_BYTES, room), root=root)
    except ValueError as e:
        if "more than" in str(e) and room < MAX_ADAPTER_ZIP_BYTES:
            raise QuotaExceeded(f"{e}: your disk quota has {human_bytes(room)} left") from e
        raise
