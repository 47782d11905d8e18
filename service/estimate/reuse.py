"""Probe measurements kept for the next estimate: what one strategy measured on this machine,
with these models, these settings and these input files, so an estimate probes only what is new.

A measurement is the raw probe (seconds per question on one batch, preparation seconds, one
training step); what a run would take is derived from it again for each config (questions,
general set, learning curve, re-splits, tuning budget), so changing those needs no new probe.
The cache is a JSON file beside the store, written by the worker only (one per store).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.files import write_text_atomic
from eval.config import RunConfig

CACHE_FILE = "probe_cache.json"
MAX_ENTRIES = 500  # oldest forgotten first: a cache, not a record


@dataclass
class ProbeMeasure:
    """One strategy's probe, before the config's counts turn it into seconds for a run.

    `prepare_s` is the measured preparation (scaled from a sample) for a strategy that does not
    train; for one that trains, `step_s` and `eval_s` are one training step and one validation
    pass, and `examples` the examples its training log counted."""

    per_q: float = 0.0
    prepare_s: float = 0.0
    prompt_tokens_mean: float = 0.0
    scale: float = 1.0
    step_s: float = 0.0
    eval_s: float = 0.0
    examples: int = 0
    measured_at: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeMeasure:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def _machine() -> dict[str, Any]:
    return {"host": platform.node(), "cpus": os.cpu_count(), "arch": platform.machine()}


def _files(path: str) -> list[Any]:
    """Names, sizes and modification times of the files at `path` (a folder or a file): a new
    or edited document changes the identity without reading a byte."""
    p = Path(path)
    if p.is_file():
        st = p.stat()
        return [[p.name, st.st_size, st.st_mtime_ns]]
    if not p.is_dir():
        return [str(path)]
    out = []
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        st = f.stat()
        out.append([f.relative_to(p).as_posix(), st.st_size, st.st_mtime_ns])
    return out


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


def models_key(config: RunConfig) -> str:
    """This machine, device and models (what loading them costs)."""
    m = config.models.to_dict()
    m.pop("cache_dir", None)
    return _digest({"machine": _machine(), "models": m})


def probe_key(config: RunConfig, name: str, settings: dict[str, Any]) -> str:
    """What a probe of strategy `name` with `settings` depends on: the machine, the models, the
    run's batch size, chunking and split, and the input files (not the counts derived later)."""
    return _digest(
        {
            "models": models_key(config),
            "strategy": name,
            "settings": settings,
            "batch_size": config.batch_size,
            "chunking": config.chunking.to_dict(),
            "split": config.split.to_dict(),
            "corpus": _files(config.corpus),
            "qa": _files(config.qa),
        }
    )


class ProbeCache:
    """Probe measurements by `probe_key`, and model loading times by `models_key`."""

    def __init__(self, store_path: str | Path):
        self.path = Path(store_path).resolve().parent / CACHE_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or damaged: measure again
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> ProbeMeasure | None:
        entry = self._read().get(key)
        return ProbeMeasure.from_dict(entry) if isinstance(entry, dict) else None

    def load_s(self, key: str) -> float | None:
        value = self._read().get(f"load:{key}")
        return float(value) if isinstance(value, (int, float)) else None

    def put(self, entries: dict[str, ProbeMeasure], load: tuple[str, float] | None = None) -> None:
        data = self._read()
        for key, measure in entries.items():
            data[key] = asdict(measure)
        if load is not None:
            data[f"load:{load[0]}"] = load[1]
        probes = [(k, v) for k, v in data.items() if isinstance(v, dict)]
        if len(probes) > MAX_ENTRIES:
            probes.sort(key=lambda kv: kv[1].get("measured_at", 0.0))
            for k, _ in probes[: len(probes) - MAX_ENTRIES]:
                del data[k]
        write_text_atomic(self.path, json.dumps(data))
