"""The strategy registry: strategies register by short name and are built by name everywhere."""

from __future__ import annotations

from typing import Any

from core.config import ConfigBase
from core.engines.base import engine_class
from core.engines.in_process import ModelLoadError
from core.registry import Registry, UnknownName
from strategies.base import Strategy, StrategyContext


class UnknownStrategyError(UnknownName):
    """No strategy is registered under the name; the message lists those that are."""


_REGISTRY: Registry[type[Strategy]] = Registry("strategy", UnknownStrategyError)


def register_strategy(name: str):
    """Class decorator: make a Strategy subclass available under `name`."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return _REGISTRY.add(name, cls)

    return deco


def get_strategy_class(name: str) -> type[Strategy]:
    return _REGISTRY[name]


def strategy_names(include_hidden: bool = False) -> list[str]:
    """Registered names in registration order; hidden (test-only) ones on request."""
    return [n for n, c in _REGISTRY.items() if include_hidden or not c.hidden]


def strategies_with(role: str, include_hidden: bool = True) -> list[str]:
    """Registered names whose class has the role attribute `role` set (e.g. "trains")."""
    return [n for n in strategy_names(include_hidden) if getattr(_REGISTRY[n], role, False)]


def default_strategies() -> list[str]:
    """The strategies a run compares when none are named (their `default` role)."""
    return strategies_with("default", include_hidden=False)


def baseline_strategy() -> str | None:
    """The closed-book reference strategy (its `baseline` role), or None if none registered."""
    found = strategies_with("baseline")
    return found[0] if found else None


def unservable_strategies(models: Any, names: list[str]) -> str | None:
    """A message naming the strategies among `names` that train (role `trains`) but that the
    configured engine cannot serve an adapter for, or None. Called before a run starts, by the
    run, the estimate and the Run page; contacts the server only when a trained one is chosen.
    """
    trained = [n for n in names if get_strategy_class(n).trains]
    engine = engine_class(models.engine)
    if not trained or engine.in_process:  # nothing to ask: adapters train where they answer
        return None
    try:
        problem = engine.load(models).adapter_problem()
    except ModelLoadError as e:
        problem = str(e)
    if problem is None:
        return None
    return f"{', '.join(trained)} cannot run on engine {models.engine!r}: {problem}"


def make_config(name: str, data: dict[str, Any] | ConfigBase | None) -> ConfigBase:
    """The strategy's config dataclass from a dict (validated), or its defaults."""
    cls = get_strategy_class(name).config_class
    if isinstance(data, cls):
        return data
    return cls.from_dict(data or {})


def create_strategy(
    name: str, config: dict[str, Any] | ConfigBase | None, ctx: StrategyContext
) -> Strategy:
    """Build a registered strategy by name (cheap: heavy work waits for prepare())."""
    return get_strategy_class(name)(make_config(name, config), ctx)
