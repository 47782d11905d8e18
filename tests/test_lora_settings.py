"""LoRA's training settings: one nested section the loop takes as it is, older flat configs
(stored runs, YAML files, --set lora.epochs=...) still load, and the Run page draws the section."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.config import ConfigError
from service.estimate.probe import _one_step, _planned_steps
from strategies import get_strategy_class, make_config
from strategies.lora import LoraStrategyConfig, TrainingSettings

# A lora config as runs stored it before the section existed (flat training keys).
FLAT = {
    "r": 4,
    "mode": "qa",
    "epochs": 2.0,
    "learning_rate": 0.002,
    "batch_size": 4,
    "max_steps": 7,
    "eval_every": 10,
    "patience": 1,
    "gradient_checkpointing": False,
    "memory_budget_gb": 0.5,
    "seed": 3,
    "val_fraction": 0.2,
}


def test_a_flat_stored_config_loads_into_the_section():
    cfg = make_config("lora", json.loads(json.dumps(FLAT)))
    assert cfg.training == TrainingSettings(
        epochs=2.0,
        learning_rate=0.002,
        batch_size=4,
        max_steps=7,
        eval_every=10,
        patience=1,
        gradient_checkpointing=False,
        memory_budget_gb=0.5,
        seed=3,
    )
    assert (cfg.r, cfg.val_fraction) == (4, 0.2)
    nested = cfg.to_dict()
    assert "epochs" not in nested and nested["training"]["max_steps"] == 7
    assert LoraStrategyConfig.from_yaml(cfg.to_yaml()) == cfg  # the new form round-trips


def test_a_flat_yaml_file_and_a_combination_load():
    text = "r: 8\nepochs: 1\nbatch_size: 2\n"
    assert LoraStrategyConfig.from_yaml(text).training.batch_size == 2
    combo = make_config("lora+rag", {"lora": {"epochs": 1, "batch_size": 4}, "rag": {}})
    assert (combo.lora.training.epochs, combo.lora.training.batch_size) == (1.0, 4)


def test_set_flags_reach_the_section_nested_or_flat():
    from cli.args import parser
    from cli.main import build_config

    flags = ["--set", "lora.training.epochs=1", "--set", "lora.batch_size=2", "--set", "lora.r=4"]
    run = build_config(parser().parse_args(["run", *flags]))
    cfg = make_config("lora", run.strategy_configs["lora"])
    assert (cfg.training.epochs, cfg.training.batch_size, cfg.r) == (1.0, 2, 4)
    with pytest.raises(ConfigError, match="not a section"):
        build_config(parser().parse_args(["run", "--set", "lora.r=2", "--set", "lora.r.x=1"]))


def test_the_section_wins_over_a_flat_key_given_both_ways():
    cfg = LoraStrategyConfig.from_dict({"epochs": 5, "training": {"epochs": 2}})
    assert cfg.training.epochs == 2.0


def test_numbers_are_converted_once_and_bad_ones_named():
    s = TrainingSettings.from_dict({"memory_budget_gb": "1.5", "batch_size": "4", "epochs": 1})
    assert (s.memory_budget_gb, s.batch_size, s.epochs) == (1.5, 4, 1.0)
    assert isinstance(s.epochs, float) and s.memory_budget("cpu") == 1.5
    with pytest.raises(ConfigError, match="memory_budget_gb must be a number"):
        TrainingSettings(memory_budget_gb="lots")
    with pytest.raises(ConfigError, match="unknown option"):
        LoraStrategyConfig.from_dict({"training": {"epoch": 1}})


@pytest.mark.parametrize("name", ["lora", "lora+rag"])
def test_the_estimate_finds_the_section_through_the_strategy_role(name):
    cls = get_strategy_class(name)
    cfg = make_config(name, {"lora": {"batch_size": 4}} if "+" in name else {"batch_size": 4})
    assert cls.training_settings(_one_step(name, cfg)).max_steps == 1
    assert _planned_steps(name, cfg, 10) == 9  # ceil(10 / 4) x 3 epochs
    assert get_strategy_class("rag").training_settings(make_config("rag", {})) is None


def _form():
    import streamlit as st

    from ui.common import settings_form

    st.session_state["out"] = settings_form("lora")


def test_the_run_page_form_draws_the_nested_section():
    at = AppTest.from_function(_form, default_timeout=60).run()
    assert not at.exception
    at.number_input(key="lora.training.epochs").set_value(1.0).run()
    out = at.session_state["out"]
    assert out["training"]["epochs"] == 1.0 and out["r"] == 8
    assert LoraStrategyConfig.from_dict(out).training.epochs == 1.0


def test_a_partial_lora_rag_setting_keeps_raft_mode():
    """Setting only the learning rate of lora+rag's LoRA part (a YAML or --set) keeps the
    part's own defaults: RAFT mode with room for the passages, not closed-book LoRA's."""
    from cli.args import parser
    from cli.main import build_config

    flags = ["--set", "lora+rag.lora.training.learning_rate=3e-4"]
    run = build_config(parser().parse_args(["run", *flags]))
    combo = make_config("lora+rag", run.strategy_configs["lora+rag"])
    shipped = make_config("lora+rag", None)
    assert combo.lora.training.learning_rate == 3e-4
    assert (combo.lora.mode, combo.lora.max_seq_tokens) == ("raft", 768)
    assert combo.lora.mode == shipped.lora.mode
    # What is given still wins over the part's own default.
    qa = make_config("lora+rag", {"lora": {"mode": "qa", "max_seq_tokens": 300}})
    assert (qa.lora.mode, qa.lora.max_seq_tokens) == ("qa", 300)
