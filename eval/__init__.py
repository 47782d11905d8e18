"""Evaluation: the shared harness, metrics, statistics, tuning, costs, the results store, views."""
