"""Strategies: every way of adapting the model, registered by short name (strategies.registry).
Importing this package imports every built-in strategy module so they register themselves.
"""

# Built-in strategies register on import; the order here is the order shown to users.
# isort: off
from strategies import system_prompt, few_shot, rag, lora, combos, fake  # noqa: F401

# isort: on
from strategies.base import GenerativeStrategy, Strategy, StrategyContext
from strategies.registry import (
    UnknownStrategyError,
    baseline_strategy,
    create_strategy,
    default_strategies,
    get_strategy_class,
    make_config,
    register_strategy,
    strategies_with,
    strategy_names,
    unservable_strategies,
)

__all__ = [
    "UnknownStrategyError",
    "GenerativeStrategy",
    "baseline_strategy",
    "default_strategies",
    "strategies_with",
    "Strategy",
    "StrategyContext",
    "create_strategy",
    "get_strategy_class",
    "make_config",
    "register_strategy",
    "strategy_names",
    "unservable_strategies",
]
