"""Search spaces declared on config fields (`option(..., tune=...)`), found by walking configs.

A space is a small frozen dataclass: `Categorical`, `IntRange` or `FloatRange`. It knows how to
ask an Optuna-style trial for a value (`suggest`, duck-typed so core never imports optuna) and
how to describe itself for the CLI and the app. `spaces_of` walks a config class, nested
sections included (a combination's parts), and returns each tunable field under its dotted path;
`with_values` builds a validated config with some of those paths changed.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, fields
from typing import Any

from core.config import ConfigBase, ConfigError, _config_class


def _key(value: Any) -> str:
    """A categorical value as the string Optuna stores (lists are not storable as choices)."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Categorical:
    """One of a fixed set of values (any JSON values; lists are fine)."""

    values: tuple[Any, ...]

    def suggest(self, trial: Any, name: str, extra: tuple[Any, ...] = ()) -> Any:
        """A value drawn by `trial` among the values (and `extra` ones, e.g. the default)."""
        options = {_key(v): v for v in (*self.values, *extra)}
        return options[trial.suggest_categorical(name, list(options))]

    def param(self, value: Any) -> Any:
        """The trial parameter standing for `value` (what enqueue_trial takes)."""
        return _key(value)

    def count(self, extra: tuple[Any, ...] = ()) -> int | None:
        """How many distinct settings the space holds (with `extra` ones)."""
        return len({_key(v) for v in (*self.values, *extra)})

    def contains(self, value: Any) -> bool:
        return _key(value) in {_key(v) for v in self.values}

    def nearest(self, value: Any) -> Any:
        """The setting of the space standing for `value` (the default is always one)."""
        return value

    def describe(self) -> str:
        shown = [v if isinstance(v, str) and len(v) <= 40 else _short(v) for v in self.values]
        return "one of " + ", ".join(map(str, shown))


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high], by `step`; `log` samples evenly on a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: Any, name: str, extra: tuple[Any, ...] = ()) -> int:
        return int(trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log))

    def param(self, value: Any) -> int:
        return int(value)

    def count(self, extra: tuple[Any, ...] = ()) -> int | None:
        return len(range(self.low, self.high + 1, self.step))

    def contains(self, value: Any) -> bool:
        return self.low <= int(value) <= self.high

    def nearest(self, value: Any) -> int:
        """The grid point nearest `value` (an off-grid default such as epochs 1.5)."""
        steps = round((min(max(float(value), self.low), self.high) - self.low) / self.step)
        return min(self.low + int(steps) * self.step, self.high)

    def describe(self) -> str:
        by = f" step {self.step}" if self.step != 1 else ""
        return f"integer {self.low}..{self.high}{by}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class FloatRange:
    """A float in [low, high], sampled on a log scale by default (learning rates)."""

    low: float
    high: float
    log: bool = True

    def suggest(self, trial: Any, name: str, extra: tuple[Any, ...] = ()) -> float:
        return float(trial.suggest_float(name, self.low, self.high, log=self.log))

    def param(self, value: Any) -> float:
        return float(value)

    def count(self, extra: tuple[Any, ...] = ()) -> int | None:
        return None  # a continuum: never exhausted

    def contains(self, value: Any) -> bool:
        return self.low <= float(value) <= self.high

    def nearest(self, value: Any) -> float:
        """`value` within the range."""
        return min(max(float(value), self.low), self.high)

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}{' (log scale)' if self.log else ''}"


Space = Categorical | IntRange | FloatRange


def _short(value: Any) -> str:
    text = _key(value)
    return text if len(text) <= 40 else text[:37] + "..."


def spaces_of(config_class: type[ConfigBase], prefix: str = "") -> dict[str, Space]:
    """Every tunable field of `config_class` by dotted path, nested config sections included
    (a combination inherits its parts' spaces as `part.field`)."""
    hints = typing.get_type_hints(config_class)
    out: dict[str, Space] = {}
    for f in fields(config_class):
        sub = _config_class(hints.get(f.name))
        if sub is not None:
            out.update(spaces_of(sub, f"{prefix}{f.name}."))
        elif f.metadata.get("tune") is not None:
            out[prefix + f.name] = f.metadata["tune"]
    return out


def value_at(config: ConfigBase, path: str) -> Any:
    """The value of dotted field `path` in `config`."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def with_values(config: ConfigBase, values: dict[str, Any]) -> ConfigBase:
    """A copy of `config` with dotted paths set to `values`, validated like any config.

    Raises ConfigError for an unknown path or a value the config refuses."""
    data = config.to_dict()
    for path, value in values.items():
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"no config section {part!r} in {path!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"no config field {path!r}")
        node[leaf] = value
    return type(config).from_dict(data)


def describe_spaces(config_class: type[ConfigBase]) -> list[dict[str, str]]:
    """Rows (field, default, space) for the CLI and the app, in field order."""
    default = config_class()
    return [
        {"field": path, "default": _short(value_at(default, path)), "space": space.describe()}
        for path, space in spaces_of(config_class).items()
    ]
