"""`--set KEY=VALUE` reads VALUE against the field's declared type, one case per type."""

import pytest

from cli.args import parser
from cli.main import build_config
from core.config import ConfigError


def config(*settings: str):
    argv = ["run"]
    for item in settings:
        argv += ["--set", item]
    return build_config(parser("adaptlab").parse_args(argv))


def test_a_word_field_keeps_off_and_no_as_words():
    # YAML would read `off` as False and `no` as False; the budget field is a str with choices.
    assert config("tuning.budget=off").tuning.budget == "off"
    assert config("rag.domain=no").strategy_configs["rag"]["domain"] == "no"


def test_numbers_accept_scientific_notation_and_whole_floats():
    c = config("lora.training.learning_rate=1e-3", "rag.top_k=5", "split.seed=1e1")
    assert c.strategy_configs["lora"]["training"]["learning_rate"] == pytest.approx(0.001)
    assert c.strategy_configs["rag"]["top_k"] == 5 and isinstance(
        c.strategy_configs["rag"]["top_k"], int
    )
    assert c.split.seed == 10


def test_a_list_field_takes_brackets_or_commas():
    assert config("lora.target_modules=[all-linear]").strategy_configs["lora"][
        "target_modules"
    ] == ["all-linear"]
    got = config("lora.target_modules=q_proj, v_proj").strategy_configs["lora"]
    assert got["target_modules"] == ["q_proj", "v_proj"]


def test_a_bool_field_takes_the_usual_words():
    for text, want in (("yes", True), ("off", False), ("1", True), ("false", False)):
        assert config(f"verdict.oracle={text}").verdict.oracle is want
        assert config(f"stability.include_trained={text}").stability.include_trained is want
    with pytest.raises(ConfigError, match="yes/no"):
        config("verdict.oracle=maybe")


def test_a_nested_part_of_a_combination_is_read_against_its_own_type():
    c = config("lora+rag.lora.target_modules=[all-linear]", "lora+rag.rag.top_k=2")
    assert c.strategy_configs["lora+rag"]["lora"]["target_modules"] == ["all-linear"]
    assert c.strategy_configs["lora+rag"]["rag"]["top_k"] == 2


@pytest.mark.parametrize(
    "item, words",
    [
        ("rag.nope=1", "has no option 'nope'"),
        ("rag.top_k=abc", "not a valid int"),
        ("rag.top_k=2.5", "whole number"),
        ("nosuch.a=1", "unknown strategy 'nosuch'"),
        ("tuning.budget=sometimes", "budget must be one of"),
    ],
)
def test_bad_settings_are_named(item, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")) as e:
        config(item)
    if "budget" not in item:
        assert item in str(e.value)
