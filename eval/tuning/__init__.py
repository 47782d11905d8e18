"""Tuning every arm on one budget: the settings (`config`), the Optuna engine (`engine`) and
the stored record of what was tried and chosen (eval.records.TuningRecord)."""
