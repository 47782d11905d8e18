"""What tuning one arm did: the space, every trial, the chosen settings and their scores."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrialRow:
    """One trial: its settings, outcome and cost."""

    number: int
    state: str  # complete | pruned | fail
    value: float | None
    values: dict[str, Any]
    seconds: float
    steps: int | None = None  # training steps done (trained arms)
    default: bool = False  # the arm's shipped settings


@dataclass
class TuningRecord:
    """An arm's tuning, stored in its result's extras under "tuning" (to_dict / from_dict).

    Scores are mean validation token F1 with 95% bootstrap intervals (eval.stats.Interval
    dicts); `gain` is the paired tuned-minus-default difference on the same validation pairs.
    """

    status: str  # tuned | off | no_space | skipped
    budget: str
    metric: str = "f1"
    note: str = ""
    space: dict[str, str] = field(default_factory=dict)
    default: dict[str, Any] = field(default_factory=dict)
    chosen: dict[str, Any] = field(default_factory=dict)
    default_score: dict[str, Any] | None = None
    tuned_score: dict[str, Any] | None = None
    gain: dict[str, Any] | None = None
    val_pairs: int = 0
    seconds: float = 0.0
    trials: list[TrialRow] = field(default_factory=list)

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def n_pruned(self) -> int:
        return sum(t.state == "pruned" for t in self.trials)

    @property
    def changed(self) -> dict[str, Any]:
        """The chosen settings that differ from the defaults."""
        return {k: v for k, v in self.chosen.items() if self.default.get(k) != v}

    @property
    def within_noise(self) -> bool | None:
        """True when the gain's interval reaches zero (None: nothing to compare)."""
        if not self.gain or self.gain.get("low") is None:
            return None
        return float(self.gain["low"]) <= 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TuningRecord | None:
        """The record stored by to_dict, or None when there is none."""
        if not data:
            return None
        data = dict(data)
        data["trials"] = [TrialRow(**t) for t in data.get("trials") or []]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
