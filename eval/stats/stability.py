"""Stability across re-splits: the settings, the re-drawn train/test splits and what the
scores stored for them say (how often each strategy wins, the spread of each score, whether
the recommendation changes). The re-runs themselves are eval.run.resplit's job."""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.config import ConfigBase, SplitConfig, check, option
from core.qa import split_pairs
from core.types import QAPair, known_fields
from strategies import get_strategy_class

if TYPE_CHECKING:
    from eval.store.rows import StrategyResult

MAX_RESPLITS = 50


@dataclass
class StabilityConfig(ConfigBase):
    """Whether another train/test split would say the same: re-draw it and run again."""

    resplits: int = option(
        0,
        "Re-draw the train/test split this many times (seeds split.seed + 1 … + K, the same "
        "near-duplicate grouping) and run every strategy again on each: how often each one "
        "wins and how much its score moves (0 = off). Each re-split costs about one more run.",
        label="Re-splits (0 = off)",
    )
    include_trained: bool = option(
        False,
        "Also retrain the strategies that train on every re-split (slow on a CPU); off: only "
        "the strategies that do not train are re-run.",
        label="Retrain trained strategies on each re-split",
    )

    def validate(self) -> None:
        check(0 <= int(self.resplits) <= MAX_RESPLITS, f"resplits must be in 0..{MAX_RESPLITS}")


SPLIT_MARK = "#split"  # "rag#split2": strategy rag on re-split 2 (progress events, the plan)


def resplit_label(name: str, k: int) -> str:
    """The label a strategy's re-run on split k goes by in progress events."""
    return f"{name}{SPLIT_MARK}{k}"


def planned(strategies: list[str], include_trained: bool) -> list[str]:
    """The strategies re-run on each re-split: all, or those that do not train."""

    return [n for n in strategies if include_trained or not get_strategy_class(n).trains]


def plan_labels(config: dict[str, Any]) -> list[str]:
    """The re-run labels a stored run config makes, split by split (none when off)."""
    cfg = StabilityConfig.from_dict(config.get("stability") or {})
    try:
        names = planned(list(config.get("strategies") or []), cfg.include_trained)
    except KeyError:  # a strategy no longer registered: its re-runs are not shown
        return []
    return [resplit_label(n, k) for k in range(1, cfg.resplits + 1) for n in names]


@dataclass
class Resplit:
    """One re-drawn split: its index k (1…K), its seed and its pairs."""

    k: int
    seed: int
    train: list[QAPair]
    test: list[QAPair]


def draw_resplits(
    pairs: list[QAPair], split: SplitConfig, resplits: int, n_test: int = 0
) -> list[Resplit]:
    """The K re-drawn splits of `pairs`: split k is `split` with seed split.seed + k, drawn
    by core.qa.split_pairs, so near-duplicate questions stay on one side as in the run's own
    split; `n_test` keeps the first N test questions as the run does (0 = all)."""
    out = []
    for k in range(1, int(resplits) + 1):
        cfg = SplitConfig.from_dict(split.to_dict() | {"seed": int(split.seed) + k})
        train, test = split_pairs(pairs, cfg)
        out.append(Resplit(k, cfg.seed, train, test[: n_test or None]))
    return out


@dataclass
class SplitResult:
    """What a re-split keeps of one strategy's result: status, metric means, the prices."""

    status: str
    error: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)  # metric -> mean
    price_per_1k: float | None = None
    price_prepare: float | None = None
    prepare_s: float | None = None
    answer_s: float | None = None

    @classmethod
    def of(cls, result: StrategyResult) -> SplitResult:
        """The part of a measured (and scored) result a re-split keeps."""
        cost = result.cost
        return cls(
            status=result.status,
            error=result.error,
            metrics={m: iv.mean for m, iv in result.metrics.items()},
            price_per_1k=cost.price_per_1k,
            price_prepare=cost.price_prepare,
            prepare_s=cost.prepare_s,
            answer_s=cost.answer_s,
        )

    def mean(self, metric: str) -> float | None:
        """Its mean on `metric` when it finished, else None."""
        return self.metrics.get(metric) if self.status == "done" else None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitResult:
        return cls(**{"status": "", **known_fields(cls, d)})


@dataclass
class ResplitRecord:
    """One re-split as the run keeps it: index, seed, test question ids (the rest of the pairs
    trained) and strategy -> its SplitResult."""

    k: int
    seed: int | None = None
    test_ids: list[str] = field(default_factory=list)
    strategies: dict[str, SplitResult] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResplitRecord:
        recs = d.get("strategies") or {}
        return cls(
            k=int(d.get("k", 0)),
            seed=d.get("seed"),
            test_ids=list(d.get("test_ids") or []),
            strategies={n: SplitResult.from_dict(r) for n, r in recs.items()},
        )


@dataclass
class StabilityRecord:
    """The re-splits a run stored (run meta "stability"): its settings, the strategies re-run
    and left out, and each re-split. `to_dict`/`from_dict` are the stored JSON."""

    resplits: int = 0
    include_trained: bool = False
    seed: int | None = None
    strategies: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    splits: list[ResplitRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StabilityRecord | None:
        """From run meta "stability" (None when the run stored none)."""
        if not d:
            return None
        return cls(
            resplits=int(d.get("resplits") or 0),
            include_trained=bool(d.get("include_trained")),
            seed=d.get("seed"),
            strategies=list(d.get("strategies") or []),
            skipped=list(d.get("skipped") or []),
            splits=[ResplitRecord.from_dict(s) for s in d.get("splits") or []],
        )


@dataclass
class SplitMeans:
    """One split's means on a metric (k 0: the run's own split)."""

    k: int
    seed: int | None
    means: dict[str, float]


@dataclass
class Spread:
    """One strategy's score across the splits."""

    mean: float
    sd: float
    min: float
    max: float


@dataclass
class Stability:
    """What the stored re-splits say on one metric.

    splits: per split (0 = the run's own, then 1…K) its seed and strategy -> mean.
    wins: strategy -> splits it had the best mean in (ties shared), over `n_splits`.
    spread: strategy -> mean, sd, min, max of its score across the splits it ran in.
    winners: the best strategy per split; `changes` whether any split's best differs from
    the run's own.
    """

    metric: str
    splits: list[SplitMeans]
    wins: dict[str, float]
    spread: dict[str, Spread]
    winners: list[str | None]
    changes: bool
    skipped: list[str] = field(default_factory=list)  # strategies not re-run (trained)
    # strategy -> re-splits it failed on; those splits are left out of the comparison, so a
    # strategy that survived is never "best on every split" by another one's failure
    failed: dict[str, list[int]] = field(default_factory=dict)
    left_out: list[int] = field(default_factory=list)  # re-splits not compared (not all done)

    @property
    def n_splits(self) -> int:
        return len(self.splits)

    def to_dict(self) -> dict[str, Any]:
        """The JSON `--json`, MLflow and the report carry."""
        return {
            "metric": self.metric,
            "n_splits": self.n_splits,
            "splits": [dataclasses.asdict(s) for s in self.splits],
            "wins": self.wins,
            "spread": {n: dataclasses.asdict(v) for n, v in self.spread.items()},
            "winners": self.winners,
            "changes": self.changes,
            "skipped": self.skipped,
            "failed": self.failed,
            "left_out": self.left_out,
        }


def _winner(means: dict[str, float], higher_is_better: bool) -> list[str]:
    if not means:
        return []
    top = (max if higher_is_better else min)(means.values())
    return [s for s, v in means.items() if math.isclose(v, top, rel_tol=0.0, abs_tol=1e-12)]


def summarize(
    own: dict[str, float], stored: StabilityRecord | None, metric: str, higher_is_better: bool
) -> Stability | None:
    """The stability of `metric` from the run's own means (`own`, strategy -> mean) and its
    stored re-splits; None when no re-split finished.

    The strategies compared are those re-run (the record's list; for records without one,
    those present on some split); the others are `skipped` (trained, not re-run). A re-split
    is compared only where every one of them finished: one where a strategy failed is left
    out (`left_out`) and the failure listed (`failed`), never read as the others winning."""
    done = [s for s in (stored.splits if stored else []) if s.strategies]
    if not done:
        return None
    rerun_names = set(stored.strategies) or {n for s in done for n in s.strategies}
    names = [n for n in own if n in rerun_names]
    skipped = [n for n in own if n not in rerun_names]
    failed: dict[str, list[int]] = {}
    kept, left_out = [], []
    for s in done:
        means = {
            n: float(mean)
            for n in names
            if n in s.strategies and (mean := s.strategies[n].mean(metric)) is not None
        }
        for n in names:
            rec = s.strategies.get(n)
            if rec is not None and rec.status not in ("done", ""):
                failed.setdefault(n, []).append(s.k)
        if len(means) == len(names):
            kept.append((s, means))
        else:
            left_out.append(s.k)
    splits = [SplitMeans(0, stored.seed, {n: own[n] for n in names})]
    splits += [SplitMeans(s.k, s.seed, means) for s, means in kept]
    wins = dict.fromkeys(names, 0.0)
    winners: list[str | None] = []
    for s in splits:
        top = _winner(s.means, higher_is_better)
        for n in top:
            wins[n] += 1.0 / len(top)
        winners.append(top[0] if len(top) == 1 else None)
    spread = {}
    for n in names:
        xs = [s.means[n] for s in splits]
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        spread[n] = Spread(statistics.fmean(xs), sd, min(xs), max(xs))
    changes = any(w != winners[0] for w in winners[1:])
    return Stability(metric, splits, wins, spread, winners, changes, skipped, failed, left_out)


def sentence(st: Stability, label: str) -> str:
    """One sentence: who wins how often, and whether another split changes the winner."""
    ranked = sorted(st.wins.items(), key=lambda kv: -kv[1])
    counts = ", ".join(f"{n} {w:g}" for n, w in ranked)
    own = st.winners[0]
    compared = "every split" if not st.left_out else "every split compared"
    if st.changes:
        verdict = f"the best changes with the split (on the run's own: {own or 'a tie'})"
    elif own is None:
        verdict = f"{compared} ends in a tie for the best"
    elif st.n_splits == 1:
        verdict = f"{own} is best on the run's own split; no re-split could be compared"
    else:
        verdict = f"{own} is best on {compared}"
    text = (
        f"Across {st.n_splits} train/test splits (the run's own and {st.n_splits - 1} re-drawn), "
        f"wins on {label}: {counts}; {verdict}."
    )
    if st.failed:
        where = "; ".join(
            f"{n} on re-split{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}"
            for n, ks in st.failed.items()
        )
        text += (
            f" Failed: {where}. Those splits are left out of the comparison "
            "(a failure is not a loss for the others to win)."
        )
    elif st.left_out:
        text += f" Re-splits {', '.join(map(str, st.left_out))} did not finish: left out."
    return text
