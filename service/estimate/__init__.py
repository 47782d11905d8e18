"""The dry-run estimate: a short probe per strategy, its records, and how it compared with the
run."""
