"""The dry-run estimate as records: what a probe predicts per strategy and for the whole run.

`service.estimate.probe` makes them; the Run page shows them, the run keeps them in its metadata
(`to_dict`, the JSON stored before these records existed), and History and the progress bar
read them back (`from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.types import known_fields


@dataclass
class StrategyEstimate:
    """One strategy's probe and what it predicts for the full run."""

    strategy: str
    prompt_tokens_mean: float = 0.0  # measured on the probe questions
    seconds_per_question: float = 0.0  # one batch of the run's batch size, over its questions
    prepare_s: float = 0.0
    prepare_note: str = ""  # how prepare_s was obtained
    answer_s: float = 0.0  # test questions plus the retention set
    variants_s: float = 0.0  # learning-curve points (training strategies only)
    total_s: float = 0.0
    error: str | None = None
    resplits_s: float = 0.0  # the same strategy again on each re-split (config `stability`)
    tuning_s: float = 0.0  # searching its settings (config `tuning`), part of prepare_s


@dataclass
class Estimate:
    """A run's estimate: its device, test, training and retention question counts, the model
    loading time, one StrategyEstimate per strategy, and the seconds for the whole run."""

    device: str = ""
    questions: int = 0
    train: int = 0
    retention_questions: int = 0
    load_s: float = 0.0
    strategies: list[StrategyEstimate] = field(default_factory=list)
    total_s: float = 0.0
    cluster: str = ""  # the Ray placement plan in words (executor `ray`); "" for a local run
    # The oracle reading after the strategies (0 when the run reads none: no strategy
    # retrieves, or it is switched off), counted in total_s.
    oracle_s: float = 0.0
    # Strategies whose figures came from an earlier probe (service.estimate.reuse), not probed.
    reused: list[str] = field(default_factory=list)

    def measured(self) -> dict[str, StrategyEstimate]:
        """Strategy -> its estimate, for the strategies whose probe ran (no error)."""
        return {e.strategy: e for e in self.strategies if not e.error}

    def to_dict(self) -> dict[str, Any]:
        """The JSON kept with the run and in the estimate job's result file."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Estimate | None:
        """From the stored JSON (None for none); keys it does not know are ignored."""
        if not d:
            return None
        rows = [
            StrategyEstimate(**known_fields(StrategyEstimate, e)) for e in d.get("strategies") or []
        ]
        return cls(**known_fields(cls, d, skip=("strategies",)), strategies=rows)
