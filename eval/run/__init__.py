"""Running comparisons: inputs, the workbench, measurement, scoring, retention, provenance, and
the harness that ties them together; the estimate and the playground reuse the same set-up."""

from eval.run.harness import run_comparison, variants
from eval.run.inputs import (
    Inputs,
    load_inputs,
    needs_models,
    preview_corpus,
    preview_inputs,
    preview_split,
    read_corpus,
)
from eval.run.retention import contains_gold, load_general_set, rescore_retention
from eval.run.scoring import rescore
from eval.run.workbench import Workbench

__all__ = [
    "Inputs",
    "Workbench",
    "contains_gold",
    "load_general_set",
    "load_inputs",
    "needs_models",
    "preview_corpus",
    "preview_inputs",
    "preview_split",
    "read_corpus",
    "rescore",
    "rescore_retention",
    "run_comparison",
    "variants",
]
