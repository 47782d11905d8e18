"""Evaluation: the shared harness, metrics, statistics, tuning, costs, the results store, views."""

# The format, style and consistency metrics register in eval.metrics' registry on import, as the
# built-in strategies do in theirs: importing any part of eval makes every metric known.
from eval import task_metrics  # noqa: E402, F401
