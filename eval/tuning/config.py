"""The tuning section of a run: how much search every arm gets, and on which pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigBase, check, option

BUDGETS = ("off", "quick", "thorough")
# evidence: the best setting replaces the default only when its paired gain on validation has a
# 95% lower bound above 0 (measured on the pairs that chose it and, cross-fitted, on pairs that
# did not); best: the highest validation mean wins, however small its lead.
ADOPT_RULES = ("evidence", "best")
# rungs: successive halving against the best trial, besides stopping what is clearly behind
# (eval.tuning.racing); clear: only what is clearly behind.
RACING = ("rungs", "clear")


@dataclass(frozen=True)
class Budget:
    """One arm's search allowance: trials, and seconds (absolute, or per default trial)."""

    n_trials: int
    max_seconds: float  # 0 = no cap of its own
    default_runs: float = 0.0  # trained arms: extra seconds = this x the default trial's

    def seconds_after_default(self, default_s: float) -> float | None:
        """Seconds left for the trials after the default one (None = no cap)."""
        caps = [c for c in (self.max_seconds, self.default_runs * default_s) if c > 0]
        return min(caps) if caps else None

    def too_short(self, default_s: float) -> float | None:
        """For a trained arm whose default trial took `default_s`: the cap, when it is
        shorter than one more such training (no other trial could finish in it), else None."""
        cap = self.seconds_after_default(default_s)
        return cap if cap is not None and cap < default_s else None


# quick: each arm's other trials take at most ten minutes, and a trained arm's at most one
# more training (pruning cuts the bad ones short). A trained arm whose one training takes longer
# than the cap searches nothing more: a trial cut off before it finishes cannot win. On the 2-core
# sample that is RAFT (about 2,000 s a training, its search most of a tuned run's extra time
# and never ahead of the shipped settings); on a GPU it trains in minutes and is searched.
_PRESETS = {
    ("quick", False): Budget(12, 600.0),
    ("quick", True): Budget(6, 600.0, default_runs=1.0),
    ("thorough", False): Budget(40, 3600.0),
    ("thorough", True): Budget(16, 0.0, default_runs=4.0),
}


@dataclass
class TuningConfig(ConfigBase):
    """How each arm's settings are searched before the test split decides."""

    budget: str = option(
        "quick",
        "Search each arm's tunable settings on validation pairs first: 'off', 'quick' (12 "
        "trials for arms that do not train, 6 for those that do; at most 10 minutes an arm "
        "after its default, and one more training's time: an arm whose training takes longer "
        "keeps its defaults), 'thorough' (40 and 16; an hour an arm that does not train, four "
        "trainings' time one that does).",
        choices=BUDGETS,
        label="Tuning budget",
    )
    n_trials: int = option(
        0,
        "Trials per arm, the default settings' included (0 = budget's).",
        label="Settings tried per strategy (0 = the budget's)",
    )
    max_seconds: float = option(
        0.0,
        "Most seconds of tuning per arm after the default trial (0 = the budget's cap).",
        label="Tuning time per strategy (s, 0 = the budget's)",
    )
    val_fraction: float = option(
        0.1,
        "Share of the training pairs held out, by near-duplicate group, to score trials on, "
        "for arms that learn from them and hold out none of their own (LoRA uses its own "
        "share and seed); arms that do not train validate on every training pair. The test "
        "split is never used.",
    )
    adopt: str = option(
        "evidence",
        "When a tuned setting replaces the default: 'evidence' (its paired gain over the "
        "default on validation has a 95% lower bound above 0, also on the pairs that did not "
        "choose it) or 'best' (the highest validation score, however small its lead).",
        choices=ADOPT_RULES,
        label="Adopt a tuned setting",
    )
    racing: str = option(
        "rungs",
        "How an untrained arm's trials are stopped early: 'rungs' (at 16, 48, 144... pairs a "
        "trial goes on only while ahead of the best finished trial on the same pairs; at any "
        "batch it stops once clearly behind) or 'clear' (only once clearly behind: a setting "
        "about as good as the default answers every validation pair, which costs more).",
        choices=RACING,
        label="Stop settings early",
    )
    extra_choices: dict[str, list[Any]] = option(
        {},
        "More values for a categorical space, by field name, e.g. {template: ['Answer in one "
        "word about {domain}.']} adds your own system prompts to the search.",
    )

    def validate(self) -> None:
        check(0 <= int(self.n_trials) <= 1000, "n_trials must be in 0..1000")
        check(0.0 <= float(self.max_seconds) <= 7 * 86400, "max_seconds must be in 0..604800")
        check(0.0 < float(self.val_fraction) < 1.0, "val_fraction must be between 0 and 1")
        check(
            isinstance(self.extra_choices, dict)
            and all(isinstance(v, list) for v in self.extra_choices.values()),
            "extra_choices maps a field name to a list of values",
        )

    @property
    def on(self) -> bool:
        return self.budget != "off"

    def budget_for(self, trains: bool) -> Budget:
        """The allowance of an arm that trains (or not), explicit settings first."""
        preset = _PRESETS.get((self.budget, trains), Budget(0, 0.0))
        n = int(self.n_trials) or preset.n_trials
        if self.max_seconds:
            return Budget(n, float(self.max_seconds))
        return Budget(n, preset.max_seconds, preset.default_runs)
