"""Progress events: what a run, an estimate or a page job reports as it goes, as one record.

The harness, the workbench, the estimate and the job bodies emit `ProgressEvent`s; the job's
progress writer (service.jobs.progress) and the CLI's bars read them. Strategies sit below eval
and report plain dicts through `StrategyContext.progress`; `ProgressEvent.from_dict` reads
those (the figures it has no field for are kept in `figures`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.types import known_fields

Figure = float | int | str | bool | None


@dataclass
class ProgressEvent:
    """One step of progress: the stage, the strategy it concerns, and the counts, training
    figures, outcome or message that stage reports (None where it reports none)."""

    stage: str
    strategy: str | None = None
    done: int | None = None  # items counted in this stage (answers, verdicts, passages...)
    total: int | None = None
    step: int | None = None  # training: the optimisation step and the steps planned
    steps: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    error: str | None = None  # strategy_failed, failed
    status: str | None = None  # strategy_done: done | failed | kept
    run_id: str | None = None  # done
    tracker: str | None = None  # track
    ok: bool | None = None  # tracked
    message: str | None = None  # tracked
    figures: dict[str, Figure] = field(default_factory=dict)  # anything else a strategy says

    @classmethod
    def from_dict(cls, d: dict[str, Any], **override: Any) -> ProgressEvent:
        """The event of a strategy's dict (`override` wins, e.g. strategy=label)."""
        d = {**d, **override}
        known = known_fields(cls, d, skip=("figures",))
        figures = {k: v for k, v in d.items() if k not in known and k != "figures"}
        return cls(**{"stage": "", **known}, figures={**d.get("figures", {}), **figures})

    def to_dict(self) -> dict[str, Any]:
        """The fields it has (not None) and its figures, flat: the shape events had as dicts."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "figures" and getattr(self, f.name) is not None
        }
        return {**out, **self.figures}


ProgressFn = Callable[[ProgressEvent], None]
