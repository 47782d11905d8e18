"""Upper bounds on what one run may ask for, checked when its configuration is built.

Everything a browser can type ends up here: a list of 999 learning-curve points is 999
retrainings; epochs times steps per epoch (checked when the training is planned, once the data
is known) is hours of the one shared worker; a question or a prompt of a megabyte is a megabyte
in every prompt of a run. The bounds are far above any useful setting.
"""

from __future__ import annotations

from core.config import check

MAX_LEARNING_CURVE_POINTS = 6  # each point prepares and scores every training strategy again
MAX_TRAIN_STEPS = 20_000  # optimisation steps of one training (epochs x steps per epoch)
MAX_QUESTION_CHARS = 2_000  # one question of a Q/A file or the playground
MAX_PROMPT_CHARS = 8_000  # a system prompt template or domain text
MAX_TEST_QUESTIONS = 20_000
MAX_RETENTION_QUESTIONS = 1_000


def check_length(text: str, limit: int, what: str) -> None:
    """ConfigError when `text` is longer than `limit` characters, naming `what`."""
    check(len(text) <= limit, f"{what} is {len(text):,} characters long (at most {limit:,})")


def check_train_steps(steps: int) -> None:
    """ConfigError when a training would take more than MAX_TRAIN_STEPS optimisation steps."""
    check(
        steps <= MAX_TRAIN_STEPS,
        f"the training would take {steps:,} steps (epochs x steps per epoch; at most "
        f"{MAX_TRAIN_STEPS:,}): lower epochs, raise batch_size or set max_steps",
    )
