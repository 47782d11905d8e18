"""Deploying a trained LoRA adapter: a zip to download, a merged full model, sizes on disk.

An adapter folder is what peft's `save_pretrained` writes (adapter_config.json and the adapter
weights). A merged model folds the adapter into the base weights: no peft needed to serve it,
at the price of a full copy of the model; `ModelConfig(generator=str(folder))` loads it.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from core.config import ModelConfig
from core.engines.in_process import generator_path, resolve_device, torch_dtype
from core.untrusted.paths import UnsafePath, confined, find_file

MAX_ADAPTER_ZIP_BYTES = 512 * 1024 * 1024  # unpacked size; a LoRA adapter is a few MB
MAX_ADAPTER_ZIP_RATIO = 100  # unpacked : packed, for members over 1 MB
MAX_ADAPTER_ZIP_MEMBERS = 200  # a peft adapter is a handful of files (config, weights, readme)
ADAPTER_SEARCH_DEPTH = 3  # peft puts a named adapter one folder down; never walk a whole disk


def adapter_folder(adapter_dir: str | Path) -> Path:
    """The folder holding adapter_config.json: `adapter_dir` or one at most
    ADAPTER_SEARCH_DEPTH folders below it. Raises ValueError."""
    root = Path(adapter_dir).expanduser()
    found = find_file(root, "adapter_config.json", ADAPTER_SEARCH_DEPTH) if root.is_dir() else None
    if found is None:
        raise ValueError(f"{str(root)!r} holds no peft adapter (no adapter_config.json)")
    return found.parent


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def export_adapter_zip(adapter_dir: str | Path) -> bytes:
    """The adapter folder (peft format) zipped, files at the zip's root.

    Raises ValueError when the folder holds no adapter.
    """
    folder = adapter_folder(adapter_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    return buf.getvalue()


def _checked_members(
    infos: list[zipfile.ZipInfo], max_members: int, max_bytes: int
) -> list[zipfile.ZipInfo]:
    """The adapter_config.json entries of a zip whose central directory passed the checks (no
    unsafe names or links, entry, size and compression-ratio limits); raises ValueError naming
    the first problem."""
    if len(infos) > max_members:
        raise ValueError(f"the adapter zip has {len(infos)} entries (at most {max_members})")
    total = 0
    for info in infos:
        name = PurePosixPath(info.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or ":" in info.filename:
            raise ValueError(f"the adapter zip has an unsafe path: {info.filename!r}")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise ValueError(f"the adapter zip holds a symbolic link: {info.filename!r}")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)  # weights barely compress
        if info.file_size > 1 << 20 and ratio > MAX_ADAPTER_ZIP_RATIO:
            raise ValueError(f"{info.filename!r} is compressed {ratio:.0f}:1 (a zip bomb?)")
    if total > max_bytes:
        raise ValueError(
            f"the adapter zip unpacks to {total / 1e6:.1f} MB, more than the "
            f"{max_bytes / 1e6:.0f} MB allowed"
        )
    configs = [i for i in infos if PurePosixPath(i.filename).name == "adapter_config.json"]
    if not configs:
        raise ValueError("the zip holds no adapter_config.json: not a peft adapter")
    return configs


def unpack_adapter_zip(
    data: bytes,
    dest: str | Path,
    max_bytes: int = MAX_ADAPTER_ZIP_BYTES,
    *,
    root: str | Path | None = None,
    max_members: int = MAX_ADAPTER_ZIP_MEMBERS,
) -> Path:
    """Unpack an uploaded adapter zip into `dest`; returns the folder holding
    adapter_config.json (usable as the LoRA `adapter_path`).

    `dest` itself must lie inside `root` when given (the caller's data folder). The zip is
    checked from its central directory before anything is written: no absolute or `..` names,
    drive letters or links, at most `max_members` entries and `max_bytes` unpacked. It is then
    unpacked into a fresh temporary folder beside `dest` and renamed into place, so `dest` is
    never half-written and a failed upload leaves nothing behind. Raises ValueError.
    """
    dest = Path(dest)
    if root is not None:
        try:
            dest = confined(root, dest.resolve().relative_to(Path(root).resolve()))
        except (ValueError, UnsafePath) as e:
            raise ValueError(f"the adapter destination {str(dest)!r} is outside {root}") from e
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise ValueError(f"the adapter upload is not a zip file ({e})") from e
    with zf:
        infos = zf.infolist()
        if any(i.flag_bits & 0x1 for i in infos):  # bit 0: the member is encrypted
            raise ValueError("the adapter zip is password-protected; upload it without a password")
        configs = _checked_members(infos, max_members, max_bytes)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=dest.parent))
        try:
            for info in infos:
                target = confined(staging, info.filename.replace("\\", "/"))  # belt and braces
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    # zipfile stops at the declared size, which the total above bounds.
                    shutil.copyfileobj(src, out, 1 << 20)
            if dest.exists():  # replace an earlier upload under the same name as a whole
                old = Path(tempfile.mkdtemp(prefix=".replaced-", dir=dest.parent))
                dest.rename(old / "adapter")
                shutil.rmtree(old, ignore_errors=True)
            staging.rename(dest)
        except UnsafePath as e:
            raise ValueError(f"the adapter zip has an unsafe path: {e}") from e
        # What zipfile raises for a damaged archive: a bad CRC, a truncated or corrupt member,
        # a compression it cannot read, or (RuntimeError) an encryption the check above missed.
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
            raise ValueError(
                f"the adapter zip is damaged or unreadable ({type(e).__name__}: {e}); "
                "nothing was saved"
            ) from e
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return (dest / configs[0].filename.replace("\\", "/")).parent


def _base_path(models: ModelConfig) -> str:

    return generator_path(models)


def merge_adapter(models: ModelConfig, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Fold the adapter into a fresh copy of the base generator and save it (weights,
    config, tokenizer) to `out_dir`; returns `out_dir`. The shared generator is not touched.

    Raises ValueError when the folder holds no adapter or it does not fit the base model.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = adapter_folder(adapter_dir)
    base_path = _base_path(models)
    dtype = torch_dtype(resolve_device(models.device))
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    try:
        merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    except Exception as e:  # peft raises many kinds for an adapter that does not fit
        raise ValueError(
            f"adapter {str(folder)!r} does not fit generator {models.generator!r}: {e}"
        ) from e
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(base_path).save_pretrained(str(out))
    return out


def sizes(
    models: ModelConfig, adapter_dir: str | Path, merged_dir: str | Path | None = None
) -> dict[str, int | None]:
    """Bytes on disk: {"base_bytes", "adapter_bytes", "merged_bytes"}; every file of each
    folder counts (weights, config, tokenizer). base_bytes is None for a hub model that is not
    a local folder; merged_bytes is None without `merged_dir`.
    """
    base = Path(_base_path(models))
    return {
        "base_bytes": _folder_bytes(base) if base.is_dir() else None,
        "adapter_bytes": _folder_bytes(adapter_folder(adapter_dir)),
        "merged_bytes": _folder_bytes(Path(merged_dir)) if merged_dir else None,
    }
