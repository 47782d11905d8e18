"""What a browser can type is bounded when the config is built (issue 18): each test is the
attack of an unbounded knob."""

from __future__ import annotations

import json

import pytest

from core.config import ConfigError
from core.qa import QAFormatError, load_qa
from core.untrusted import caps
from eval.config import RunConfig
from strategies import make_config
from strategies.lora.loop import planned_steps


def test_999_learning_curve_points_are_refused():
    with pytest.raises(ConfigError, match="learning_curve has 999 points"):
        RunConfig(learning_curve=[0.5] * 999)
    RunConfig(learning_curve=[0.25, 0.5])  # a real curve passes


def test_epochs_times_steps_is_capped():
    with pytest.raises(ConfigError, match="steps"):
        make_config("lora", {"max_steps": caps.MAX_TRAIN_STEPS + 1})
    with pytest.raises(ConfigError, match="lower epochs"):
        planned_steps(n_examples=100_000, batch_size=1, epochs=100, max_steps=0, world=1)
    assert planned_steps(100_000, 1, 100, 50, 1) == 50  # a step cap keeps it in bounds


def test_a_megabyte_question_is_refused(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "why " * 250_000, "answer": "x"}) + "\n")
    with pytest.raises(QAFormatError, match="line 1: question over"):
        load_qa(path)


def test_a_huge_system_prompt_is_refused():
    with pytest.raises(ConfigError, match="system prompt template"):
        make_config("system_prompt", {"template": "x" * (caps.MAX_PROMPT_CHARS + 1)})
