"""Configuration dataclasses: validated on creation, documented per field, JSON/YAML round-trip.

Every field is declared with `option(default, help)`, so the CLI and the app read the help text
from the dataclass itself (peft's `LoraConfig` pattern).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.engines.base import engine_class

T = TypeVar("T", bound="ConfigBase")


class ConfigError(ValueError):
    """A configuration value is out of range or of the wrong kind; the message says which."""


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices: list[Any] | tuple[Any, ...] | None = None,
    label: str = "",
    tune: Any = None,
    **kwargs: Any,
) -> Any:
    """A dataclass field carrying its help text. Mutable defaults go through default_factory.

    `choices` declares the only values allowed (checked before `validate()`, drawn as a select
    by the app, offered as choices by the CLI); `label` is the name forms show (default: the
    field name with spaces); `tune` a search space (core.tuning_space) that tuning searches.
    """
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if label:
        meta["label"] = label
    if tune is not None:
        meta["tune"] = tune
    if isinstance(default, (list, dict, set)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta, **kwargs)
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return field(default_factory=default, metadata=meta, **kwargs)
    return field(default=default, metadata=meta, **kwargs)


@dataclass
class ConfigBase:
    """Base for config dataclasses: `validate()` runs after init; (de)serialises recursively."""

    def __post_init__(self) -> None:
        # Nested sections given as plain dicts (from code or widgets) become their dataclass.
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            sub = _config_class(hints.get(f.name))
            value = getattr(self, f.name)
            if sub is not None and isinstance(value, dict):
                setattr(self, f.name, sub.from_dict(value))
            allowed = f.metadata.get("choices")
            if allowed is not None and value not in allowed:
                raise ConfigError(f"{f.name} must be one of {', '.join(map(str, allowed))}")
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for values that make no sense. Subclasses extend."""

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def choices_of(cls, name: str) -> tuple[Any, ...] | None:
        """The values field `name` allows, or None when any value of its type will do."""
        return next(f.metadata.get("choices") for f in fields(cls) if f.name == name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, ConfigBase) else _plain(v)
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown option(s) {', '.join(unknown)}")
        declared = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            sub = _config_class(hints.get(name))
            if sub is not None and isinstance(value, dict):
                value = _over_default(sub.from_dict(value), declared[name], value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as e:  # wrong kinds of value surface as TypeError inside validate()
            raise ConfigError(f"{cls.__name__}: {e}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls: type[T], text: str) -> T:
        data = yaml.safe_load(text)
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        """Read a YAML or JSON file (JSON is valid YAML)."""
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_stored(cls: type[T], data: dict[str, Any] | None) -> T:
        """`from_dict` for a config stored by an older version: options this version no longer
        has are left out at every level (reading a stored run must not fail on them)."""
        return cls.from_dict(_known_options(cls, data or {}))

    @classmethod
    def setting_path(cls, key: str) -> str:
        """Where option `key` lives now: a config whose options moved into a section maps the
        old flat name to its dotted path (its from_dict moves the value the same way)."""
        return key

    @classmethod
    def parse_setting(cls, key: str, text: str) -> Any:
        """The value `text` means for the field at dotted `key` (e.g. "training.epochs"), read
        against the field's declared type, as `--set KEY=VALUE` gives it: a str field takes the
        text as it is ("off", "no"), a bool one yes/no/true/false/on/off/1/0, numbers accept
        "1e-3", a list "[a, b]" or "a,b". ConfigError names an unknown key or a bad value."""
        key = cls.setting_path(key)
        head, dot, rest = key.partition(".")
        if dot:  # a section's option: that section's class reads the rest
            sub = _config_class(typing.get_type_hints(cls).get(head))
            if sub is None:
                raise ConfigError(f"{head} is not a section of {cls.__name__}")
            return sub.parse_setting(rest, text)
        owner, last = cls, key
        hints = typing.get_type_hints(owner)
        if last not in {f.name for f in fields(owner)}:
            known = ", ".join(f.name for f in fields(owner))
            raise ConfigError(f"{owner.__name__} has no option {last!r} (known: {known})")
        try:
            return _parse_typed(hints[last], text.strip())
        except (TypeError, ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"{text!r} is not a valid {_type_name(hints[last])}: {e}") from None


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _over_default(built: ConfigBase, f: dataclasses.Field, given: dict[str, Any]) -> ConfigBase:
    """`built` (a section read from `given`) keeping what its field's own default sets apart
    from the section class's defaults, for every option `given` leaves out.

    lora+rag's LoRA part defaults to RAFT mode with room for passages; a config (or --set)
    changing only its learning rate must not fall back to closed-book LoRA's mode."""
    if f.default_factory is dataclasses.MISSING:
        return built
    own = f.default_factory()
    if type(own) is not type(built):
        return built
    plain = type(built)()
    kept = {
        g.name: getattr(own, g.name)
        for g in fields(built)
        if g.name not in given and getattr(own, g.name) != getattr(plain, g.name)
    }
    return built.replace(**kept) if kept else built


_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _parse_typed(hint: Any, text: str) -> Any:
    """`text` read as a value of type `hint` (str, bool, int, float, list[...], unions, dicts)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option_type in args:
            if option_type is type(None):
                if text.lower() in ("", "none", "null"):
                    return None
                continue
            try:
                return _parse_typed(option_type, text)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors) or f"not a {hint}")
    if hint is str:
        return text
    if hint is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("expected yes/no, true/false, on/off or 1/0")
    if hint is int:
        number = float(text)
        if not number.is_integer():
            raise ValueError("expected a whole number")
        return int(number)
    if hint is float:
        return float(text)
    if origin in (list, tuple) or hint in (list, tuple):
        element = args[0] if args else Any
        if text.startswith("["):
            items = yaml.safe_load(text)
            if not isinstance(items, list):
                raise ValueError("expected a list such as [a, b]")
            items = [str(x) if element is str else x for x in items]
            return [
                x if element in (Any, str) or not isinstance(x, str) else _parse_typed(element, x)
                for x in items
            ]
        return [_parse_typed(element, x.strip()) for x in text.split(",") if x.strip()]
    return yaml.safe_load(text)  # dicts and fields without a declared type


def _known_options(cls: type[ConfigBase], data: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names:
            continue
        sub = _config_class(hints.get(name))
        out[name] = _known_options(sub, value) if sub and isinstance(value, dict) else value
    return out


def _config_class(hint: Any) -> type[ConfigBase] | None:
    for t in (hint, *typing.get_args(hint)):
        if isinstance(t, type) and issubclass(t, ConfigBase):
            return t
    return None


def check(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless cond."""
    if not cond:
        raise ConfigError(message)


DEVICES = ("auto", "cpu", "cuda")
# Generation engines, as registered in core.engines.base (a test checks the two agree).
ENGINES = ("transformers", "openai")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "adaptlab"


@dataclass
class ModelConfig(ConfigBase):
    """Which models every strategy shares, and where they run."""

    generator: str = option(
        "smollm2-135m-instruct",
        "Generator: 'smollm2-135m-instruct' (bundled), 'tiny' (test model), a Hugging Face id "
        "or a local model folder.",
        label="Generator model",
    )
    embedder: str = option(
        "all-minilm-l6-v2",
        "Embedder: 'all-minilm-l6-v2' (bundled), a sentence-transformers id or a local folder.",
        label="Embedding model (for retrieval)",
    )
    device: str = option(
        "auto",
        "'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'.",
        choices=DEVICES,
        label="Device (CPU or GPU)",
    )
    max_new_tokens: int = option(
        32, "Most tokens generated per answer.", label="Longest answer (tokens)"
    )
    cache_dir: str = option(
        str(default_cache_dir()), "Where converted models and other caches are kept."
    )
    engine: str = option(
        "transformers",
        "Where answers are generated: 'transformers' (in this process) or 'openai' (an "
        "OpenAI-compatible server: vLLM, llama.cpp, Ollama, TGI). Every strategy of a run uses "
        "the same engine. With 'openai', `generator` still names the local tokenizer used for "
        "token budgets and the model trained in-process for fine-tuned arms; empty = none "
        "(budgets counted in words, fine-tuned arms unavailable).",
        choices=ENGINES,
        label="Generation engine",
    )
    base_url: str = option(
        "",
        "openai engine: the server's API root, e.g. http://127.0.0.1:8000/v1.",
        label="Server address (URL)",
    )
    api_model: str = option(
        "",
        "openai engine: model name sent to the server (empty = the first one it lists).",
        label="Model name on the server",
    )
    api_key_env: str = option(
        "",
        "openai engine: name of the environment variable holding the API key (the key itself "
        "is never stored; empty = no key sent).",
        label="API key: name of its environment variable",
    )
    concurrency: int = option(
        4, "openai engine: requests in flight at once.", label="Requests at once (server)"
    )
    timeout_s: float = option(
        120.0,
        "openai engine: seconds to wait for one response.",
        label="Time to wait for an answer (s)",
    )
    retries: int = option(
        3,
        "openai engine: retries of a request after a connection error, 429 or 5xx, with "
        "exponential backoff.",
        label="Retries of a failed request",
    )

    def validate(self) -> None:
        remote = not engine_class(self.engine).in_process
        check(bool(self.generator) or remote, "generator must be named")
        check(bool(self.embedder), "embedder must be named")
        check(1 <= int(self.max_new_tokens) <= 2048, "max_new_tokens must be in 1..2048")
        if remote:
            check(
                self.base_url.startswith(("http://", "https://")),
                f"engine {self.engine!r} needs base_url, an http(s):// address of the server",
            )
        check(
            not self.api_key_env or self.api_key_env.replace("_", "").isalnum(),
            "api_key_env must be the NAME of an environment variable (letters, digits, _), "
            "not the key",
        )
        check(1 <= int(self.concurrency) <= 256, "concurrency must be in 1..256")
        check(0 < float(self.timeout_s) <= 3600, "timeout_s must be in (0, 3600]")
        check(0 <= int(self.retries) <= 20, "retries must be in 0..20")


@dataclass
class ChunkingConfig(ConfigBase):
    """How documents are cut into passages (counted in generator tokens)."""

    chunk_tokens: int = option(192, "Most tokens in one chunk.")
    overlap_tokens: int = option(32, "Tokens repeated between neighbouring chunks.")

    def validate(self) -> None:
        check(16 <= int(self.chunk_tokens) <= 8192, "chunk_tokens must be in 16..8192")
        check(
            0 <= int(self.overlap_tokens) < int(self.chunk_tokens),
            "overlap_tokens must be >= 0 and smaller than chunk_tokens",
        )


@dataclass
class SplitConfig(ConfigBase):
    """How Q/A pairs are divided into train (shots, fine-tuning) and test."""

    test_fraction: float = option(0.2, "Share of Q/A pairs held out for testing.")
    seed: int = option(0, "Seed of the split.", label="Seed of the train/test split")
    near_duplicate_jaccard: float = option(
        0.6,
        "Questions whose content-word overlap (Jaccard) reaches this are kept on one side.",
    )

    def validate(self) -> None:
        check(0.0 < float(self.test_fraction) < 1.0, "test_fraction must be between 0 and 1")
        check(
            0.0 < float(self.near_duplicate_jaccard) <= 1.0,
            "near_duplicate_jaccard must be in (0, 1]",
        )


@dataclass
class PriceTable(ConfigBase):
    """Hourly prices used to turn measured time into money. Edit to match your provider."""

    currency: str = option("USD", "Currency label shown next to prices.", label="Currency")
    cpu_per_hour: float = option(
        0.10,
        "Price of one hour of the CPU machine running a job.",
        label="CPU price per hour (USD)",
    )
    gpu_per_hour: float = option(
        2.50,
        "Price of one hour of a GPU machine running a job.",
        label="GPU price per hour (USD)",
    )

    def validate(self) -> None:
        check(float(self.cpu_per_hour) >= 0, "cpu_per_hour must be >= 0")
        check(float(self.gpu_per_hour) >= 0, "gpu_per_hour must be >= 0")

    def per_second(self, device: str) -> float:
        rate = self.gpu_per_hour if device.startswith("cuda") else self.cpu_per_hour
        return float(rate) / 3600.0
