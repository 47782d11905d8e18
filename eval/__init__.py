"""Evaluation: the shared harness, metrics, statistics, costs, the results store and the CLI."""
