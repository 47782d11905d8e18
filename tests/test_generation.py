"""The Generator contract (core.engines.base): every registered engine meets it, engines are found
by name, and the two built-in engines do not import each other."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from core.config import ENGINES, ModelConfig
from core.engines.base import (
    _ENGINES,
    Generator,
    UnknownEngineError,
    engine_class,
    engine_names,
    load_generator,
    register_engine,
)

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = [n for n in dir(Generator) if not n.startswith("_")] + list(Generator.__annotations__)


def test_the_config_offers_exactly_the_registered_engines():
    assert set(engine_names()) == set(ENGINES)


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_meets_the_contract(name):
    cls = engine_class(name)
    assert isinstance(cls.in_process, bool)
    instance_attrs = {"name", "device", "tokenizer", "lock"}  # set in __init__ or properties
    missing = [m for m in CONTRACT if m not in instance_attrs and not hasattr(cls, m)]
    assert not missing, f"{name} lacks {missing}"
    for method in ("generate", "render", "attach_adapter", "load_adapter", "using"):
        want = list(inspect.signature(getattr(Generator, method)).parameters)
        assert list(inspect.signature(getattr(cls, method)).parameters) == want, method


def test_in_process_generator_answers_the_contract(tiny_models):
    gen = load_generator(tiny_models)
    assert isinstance(gen, Generator) and type(gen).in_process
    assert gen.parameter_count() > 0
    assert gen.server_details() is None and gen.adapter_problem() is None
    assert gen is engine_class("transformers").load(tiny_models)


def test_a_registered_engine_is_built_by_name():
    @register_engine("echo-test")
    class Echo:
        in_process = True

        @classmethod
        def load(cls, config):
            return cls()

    try:
        assert isinstance(engine_class("echo-test").load(ModelConfig()), Echo)
        with pytest.raises(ValueError, match="already registered"):
            register_engine("echo-test")(type("Other", (), {}))
    finally:
        _ENGINES.pop("echo-test")
    with pytest.raises(UnknownEngineError, match="known: transformers, openai"):
        engine_class("echo-test")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }


def test_the_engines_do_not_import_each_other_or_probe_roles():
    assert "core.engines.server" not in _imports(ROOT / "core" / "engines" / "in_process.py")
    assert not {"core.engines.in_process", "core.engines.server"} & _imports(
        ROOT / "core" / "engines" / "base.py"
    )
    for folder in ("core", "strategies", "eval", "service", "cli", "ui"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert '"in_process", True' not in text, path
            assert "import BUNDLED_GENERATORS, _resolve" not in text, path
