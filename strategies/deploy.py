"""Deploying a trained LoRA adapter: a zip to download, a merged full model, sizes on disk.

An adapter folder is what peft's `save_pretrained` writes (adapter_config.json and the adapter
weights). A merged model folds the adapter into the base weights: no peft needed to serve it,
at the price of a full copy of the model; `ModelConfig(generator=str(folder))` loads it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

from core.config import ModelConfig

MAX_ADAPTER_ZIP_BYTES = 512 * 1024 * 1024  # unpacked size; a LoRA adapter is a few MB


def _adapter_folder(adapter_dir: str | Path) -> Path:
    root = Path(adapter_dir).expanduser()
    if (root / "adapter_config.json").is_file():
        return root
    found = sorted(root.rglob("adapter_config.json")) if root.is_dir() else []
    if not found:
        raise ValueError(f"{str(root)!r} holds no peft adapter (no adapter_config.json)")
    return found[0].parent


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def export_adapter_zip(adapter_dir: str | Path) -> bytes:
    """The adapter folder (peft format) zipped, files at the zip's root.

    Raises ValueError when the folder holds no adapter.
    """
    folder = _adapter_folder(adapter_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    return buf.getvalue()


def unpack_adapter_zip(
    data: bytes, dest: str | Path, max_bytes: int = MAX_ADAPTER_ZIP_BYTES
) -> Path:
    """Unpack an uploaded adapter zip into `dest`; returns the folder holding
    adapter_config.json (usable as the LoRA `adapter_path`).

    Raises ValueError for a file that is not a zip, entries that would land outside `dest`
    (absolute or `..` paths, links), more than `max_bytes` unpacked, or no adapter_config.json.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ValueError(f"the adapter upload is not a zip file ({e})") from e
    dest = Path(dest)
    with zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or ":" in info.filename:
                raise ValueError(f"the adapter zip has an unsafe path: {info.filename!r}")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"the adapter zip holds a symbolic link: {info.filename!r}")
            total += info.file_size
        if total > max_bytes:
            raise ValueError(
                f"the adapter zip unpacks to {total / 1e6:.1f} MB, more than the "
                f"{max_bytes / 1e6:.0f} MB allowed"
            )
        configs = [i for i in infos if PurePosixPath(i.filename).name == "adapter_config.json"]
        if not configs:
            raise ValueError("the zip holds no adapter_config.json: not a peft adapter")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in infos:
            target = (dest / info.filename).resolve()
            if root not in target.parents and target != root:  # belt and braces
                raise ValueError(f"the adapter zip has an unsafe path: {info.filename!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                out.write(src.read(max_bytes + 1))
    return (dest / configs[0].filename).parent


def _base_path(models: ModelConfig) -> str:
    from core.models import BUNDLED_GENERATORS, _resolve

    return _resolve(models.generator, BUNDLED_GENERATORS, Path(models.cache_dir))


def merge_adapter(models: ModelConfig, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Fold the adapter into a fresh copy of the base generator and save it (weights,
    config, tokenizer) to `out_dir`; returns `out_dir`. The shared generator is not touched.

    Raises ValueError when the folder holds no adapter or it does not fit the base model.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.models import resolve_device, torch_dtype

    folder = _adapter_folder(adapter_dir)
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
        "adapter_bytes": _folder_bytes(_adapter_folder(adapter_dir)),
        "merged_bytes": _folder_bytes(Path(merged_dir)) if merged_dir else None,
    }
