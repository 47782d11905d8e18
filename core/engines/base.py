"""The `Generator` contract every generation engine meets, and the registry of engines by name.

An engine is a class registered with `@register_engine("name")` (as strategies register); it
says what it is through class attributes (`in_process`) and builds its shared instance with
`load(config)`. `ModelConfig.engine` names the one a run uses, and `load_generator` builds it:
no caller dispatches on engine names. The built-in engines (`transformers` in
core.engines.in_process,
`openai` in core.engines.server) register when their module is first imported, which `engine_class`
does on first use, so this module imports neither and neither imports the other's loader.
"""

from __future__ import annotations

import importlib
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from core.registry import Registry, UnknownName

if TYPE_CHECKING:
    from pathlib import Path


# Modules whose import registers the built-in engines, in the order users see them.
BUILTIN_ENGINE_MODULES = ("core.engines.in_process", "core.engines.server")


@dataclass
class Generation:
    """One generated completion and its token counts (and its own latency when measured)."""

    text: str
    prompt_tokens: int
    output_tokens: int
    latency_s: float | None = None  # per request on a server engine; None in a local batch
    truncated: bool = False  # stopped by max_new_tokens before any stop token


@runtime_checkable
class Generator(Protocol):
    """A chat model strategies share: conversations in, greedy completions out, LoRA adapters
    attached by name. Every engine implements all of it; the docstrings are the spec."""

    in_process: ClassVar[bool]
    """True when the weights live in this process (parameters can be counted, generation uses
    this process's CPU/GPU); False for a model server, which needs `ModelConfig.base_url`."""

    name: str
    """The model's name as runs record it (a server's: the model id it answers with)."""

    device: str
    """Where in-process work runs ("cpu", "cuda"): generation, or training an adapter."""

    tokenizer: Any
    """The local Hugging Face tokenizer, or None (a server engine without a local model)."""

    lock: threading.RLock
    """Held around one generation or training step: the model is shared between threads."""

    @classmethod
    def load(cls, config: Any) -> Generator:
        """The shared instance for `config` (built on first use); raises ModelLoadError."""
        ...

    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        max_new_tokens: int = 32,
        adapter: str | None = None,
    ) -> list[Generation]:
        """Greedy completions for chat conversations, in the order given; `adapter=None`
        always answers with the plain base model."""
        ...

    def render(self, messages: list[dict[str, str]], answer: str | None = None) -> str:
        """`messages` chat-templated into a prompt ending where the assistant speaks; with
        `answer`, the assistant turn included and closed (training data)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without special tokens (an estimate where no tokenizer exists)."""
        ...

    def parameter_count(self) -> int | None:
        """Weights of the base model held in this process, or None when it holds none."""
        ...

    def server_details(self) -> dict[str, Any] | None:
        """What a model server says about itself (URL, model id, version), or None in process."""
        ...

    def adapter_problem(self) -> str | None:
        """Why a trained LoRA adapter cannot be used with this engine, or None when it can."""
        ...

    def attach_adapter(self, name: str, peft_config: Any) -> Any:
        """A fresh trainable adapter `name` on the local base model; returns the peft model."""
        ...

    def load_adapter(self, name: str, path: str | Path) -> None:
        """A saved peft adapter loaded under `name`, ready for `generate(adapter=name)`."""
        ...

    def detach_adapter(self, name: str) -> None:
        """Adapter `name` dropped; the base model is left as it was before it was attached."""
        ...

    def using(self, adapter: str | None) -> AbstractContextManager[Any]:
        """A context giving the local model with `adapter` active (None: the base model)."""
        ...


class UnknownEngineError(UnknownName):
    """No engine is registered under the name; the message lists those that are."""


_ENGINES: Registry[type[Generator]] = Registry("engine", UnknownEngineError)


def register_engine(name: str):
    """Class decorator: make a Generator implementation available under `name`."""

    def deco(cls: type[Generator]) -> type[Generator]:
        cls.engine_name = name  # type: ignore[attr-defined]
        return _ENGINES.add(name, cls)

    return deco


def engine_names() -> list[str]:
    """Registered engine names, built-in ones first."""
    for module in BUILTIN_ENGINE_MODULES:  # cached by Python after the first time
        importlib.import_module(module)
    return list(_ENGINES)


def engine_class(name: str) -> type[Generator]:
    """The engine registered under `name` (raises UnknownEngineError)."""
    engine_names()  # the built-in engines registered first
    return _ENGINES[name]


def load_generator(config: Any) -> Generator:
    """The shared generator of the engine `config.engine` names, for `config`."""
    return engine_class(config.engine).load(config)
