"""The set-up every live use of a config shares: load the models, read the inputs, build the
context strategies run in. Runs, estimates and the playground all start here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.engines.in_process import load_embedder, load_generator, resolve_device
from eval.config import RunConfig
from eval.events import ProgressEvent, ProgressFn
from eval.run.costs import measure
from eval.run.inputs import Inputs, load_inputs, needs_models
from strategies import Strategy, create_strategy, make_config, unservable_strategies
from strategies.base import RunCancelled, StrategyContext


@dataclass
class Workbench:
    """One config's models (loaded once, shared) and inputs, ready to build strategies on.

    `models` describes what was loaded (names, load time, base parameters); None when no
    strategy needed a model.
    """

    config: RunConfig
    inputs: Inputs
    device: str
    load_s: float = 0.0
    models: dict[str, Any] | None = None

    @classmethod
    def open(
        cls,
        config: RunConfig,
        strategies: list[str] | None = None,
        emit: ProgressFn | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Workbench:
        """Load the models `strategies` (default: the config's) need, then read the inputs.

        Models are loaded and timed apart, so no strategy's preparation time includes loading
        the base model. Raises ValueError when the corpus or Q/A file cannot be used.
        """
        emit = emit or (lambda event: None)
        names = list(config.strategies if strategies is None else strategies)
        device = resolve_device(config.models.device)
        tokenizer, models, load_s = None, None, 0.0
        # A server that cannot serve adapters refuses the trained arms now, not halfway through.
        problem = unservable_strategies(config.models, names)
        if problem:
            raise ValueError(problem)
        if needs_models(names):
            emit(ProgressEvent("load_models"))
            with measure(device) as m:
                generator = load_generator(config.models)
                load_embedder(config.models)
            tokenizer, load_s = generator.tokenizer, m.seconds
            models = {
                "generator": config.models.generator,
                "embedder": config.models.embedder,
                "load_s": m.seconds,
                "engine": config.models.engine,
                "base_params": generator.parameter_count(),
            }
            server = generator.server_details()
            if server is not None:
                models["server"] = server
        emit(ProgressEvent("ingest"))

        def check() -> None:  # a cancel reaches into the near-duplicate grouping of big files
            if cancelled is not None and cancelled():
                raise RunCancelled

        return cls(config, load_inputs(config, tokenizer, check), device, load_s, models)

    def context(self, workdir: Path | None = None, **hooks: Any) -> StrategyContext:
        """A StrategyContext on the config's models, work folder (or `workdir`) and seed;
        `hooks` are `progress` and `cancelled` where the caller has them."""
        return StrategyContext(
            models=self.config.models,
            workdir=Path(self.config.workdir) if workdir is None else workdir,
            seed=self.config.split.seed,
            task=self.inputs.task,
            **hooks,
        )

    def strategy(self, name: str, settings: Any, ctx: StrategyContext | None = None) -> Strategy:
        """Strategy `name` built from `settings` (a dict, a config, or None: the run's own)."""
        if settings is None:
            settings = self.config.strategy_configs.get(name)
        return create_strategy(name, make_config(name, settings), ctx or self.context())
