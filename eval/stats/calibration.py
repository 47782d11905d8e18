"""Calibration anyone can rerun: the decision procedure run on data where the answer is known.

Two checks, each on two kinds of data:

- False winners: on null data (no strategy truly better), the share of runs in which the
  procedure declares any strategy significantly better than another (any pair significant after
  Holm over all pairs, exactly what the headline and the comparisons table read). Goal: at most
  alpha (5%) within Monte Carlo error.
- Interval coverage: the share of 95% intervals (the cluster bootstrap every stored mean carries)
  that contain the true mean. Goal: at least 93%.

Data: (1) the run's own per-question scores. Null runs swap the strategy labels within each
group (one random permutation of the strategies for all questions of a group), so every
strategy is exchangeable and none is better; coverage draws whole groups with replacement into
a test set of the same size, whose true means are the run's own (the bootstrap world).
(2) Synthetic clustered data with a known truth: a probit model with a group effect shared by
all strategies and a group-by-strategy effect, so questions of one group lean the same way for
one strategy (what made the per-question tests declare false winners 25% of the time).
Both are seeded; Monte Carlo errors are binomial standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from eval.stats.decision import pairwise_family
from eval.stats.intervals import bootstrap_ci

ALPHA = 0.05
FALSE_WINNERS_GOAL = 0.05
COVERAGE_GOAL = 0.93


@dataclass
class Check:
    """One calibration figure: `hits` of `trials`, its share and Monte Carlo standard error."""

    hits: int
    trials: int

    @property
    def share(self) -> float:
        return self.hits / self.trials if self.trials else math.nan

    @property
    def se(self) -> float:
        p = self.share
        return math.sqrt(p * (1 - p) / self.trials) if self.trials else math.nan

    def text(self) -> str:
        return f"{self.share:.1%} ± {self.se:.1%} ({self.hits} of {self.trials})"

    def to_dict(self) -> dict:
        return asdict(self) | {"share": self.share, "se": self.se}


@dataclass
class Calibration:
    """What one kind of data says: false winners and interval coverage (see the module)."""

    source: str  # "run <id>, <metric>" or "synthetic clustered"
    questions: int
    groups: int
    strategies: int
    false_winners: Check
    coverage: Check
    notes: list[str] = field(default_factory=list)

    @property
    def within_goals(self) -> bool:
        """False winners at most 5% within two Monte Carlo errors; coverage at least 93%
        within two."""
        fw, cv = self.false_winners, self.coverage
        return fw.share - 2 * fw.se <= FALSE_WINNERS_GOAL and cv.share + 2 * cv.se >= COVERAGE_GOAL

    def lines(self) -> list[str]:
        head = (
            f"{self.source}: {self.strategies} strategies, {self.questions} questions in "
            f"{self.groups} groups"
        )
        return [
            head,
            f"  false winners: {self.false_winners.text()}  (goal <= 5%)",
            f"  interval coverage: {self.coverage.text()}  (goal >= 93%)",
            *[f"  {n}" for n in self.notes],
        ]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "questions": self.questions,
            "groups": self.groups,
            "strategies": self.strategies,
            "false_winners": self.false_winners.to_dict(),
            "coverage": self.coverage.to_dict(),
            "within_goals": self.within_goals,
            "notes": self.notes,
        }


@dataclass
class Settings:
    """How much work a calibration does: null runs, bootstrap resamples and sign patterns per
    run (fewer than a real run's, so that hundreds of runs take seconds), and the seed."""

    runs: int = 400
    resamples: int = 500
    flips: int = 1000
    seed: int = 0
    alpha: float = ALPHA


def declares_winner(
    scores: Mapping[str, Mapping[str, float]],
    groups: Mapping[str, str] | None,
    settings: Settings,
    seed: int,
) -> bool:
    """Whether the decision procedure calls any strategy significantly better than another."""
    rows = pairwise_family(
        scores,
        groups,
        alpha=settings.alpha,
        seed=seed,
        n_flips=settings.flips,
        effect_resamples=None,
    )
    return any(r["significant"] for r in rows)


def _covers(
    values: np.ndarray, labels: list[str], truth: float, settings: Settings, seed: int
) -> bool:
    iv = bootstrap_ci(list(values), groups=labels, n_resamples=settings.resamples, seed=seed)
    return iv.low - 1e-12 <= truth <= iv.high + 1e-12


def _group_members(qids: list[str], groups: Mapping[str, str]) -> list[list[int]]:
    order: dict[str, list[int]] = {}
    for i, q in enumerate(qids):
        order.setdefault(groups.get(q, q), []).append(i)
    return list(order.values())


def calibrate_scores(
    scores: Mapping[str, Mapping[str, float]],
    groups: Mapping[str, str] | None,
    settings: Settings = Settings(),
    source: str = "stored run",
) -> Calibration:
    """Calibration on a run's own per-question scores (strategy -> {qid: score}; questions
    every strategy scored), `groups` qid -> group id (None: every question its own)."""
    names = list(scores)
    qids = [q for q in scores[names[0]] if all(q in scores[n] for n in names)]
    groups = dict(groups or {})
    members = _group_members(qids, groups)
    s = np.asarray([[scores[n][q] for q in qids] for n in names], dtype=np.float64)
    k, g = len(names), len(members)
    rng = np.random.default_rng(settings.seed)
    false = 0
    for r in range(settings.runs):
        swapped = s.copy()
        for idx in members:  # one permutation of the strategies for the whole group
            swapped[:, idx] = s[rng.permutation(k)][:, idx]
        null = {n: dict(zip(qids, swapped[i], strict=True)) for i, n in enumerate(names)}
        false += declares_winner(null, groups, settings, settings.seed + r)
    covered = trials = 0
    truth = s.mean(axis=1)
    for r in range(settings.runs):
        drawn = rng.integers(0, g, size=g)
        idx = [i for j in drawn for i in members[j]]
        labels = [f"{j}:{pos}" for pos, j in enumerate(drawn) for _ in members[j]]
        for i in range(k):
            covered += _covers(s[i, idx], labels, float(truth[i]), settings, settings.seed + r)
            trials += 1
    return Calibration(
        source,
        len(qids),
        g,
        k,
        Check(false, settings.runs),
        Check(covered, trials),
        [
            "null: strategy labels swapped within each group; coverage: groups redrawn, the "
            "run's own means as the truth"
        ],
    )


@dataclass
class Synthetic:
    """A clustered null: `groups` groups of 1..`max_size` questions, `strategies` strategies
    with the same true mean; probit scores with a shared group effect (sd `group_sd`) and a
    group-by-strategy effect (sd `lean_sd`); `binary` 0/1 scores (McNemar) or graded ones
    (the latent value squashed into 0..1, the sign-flip test)."""

    groups: int = 25
    max_size: int = 4
    strategies: int = 4
    base: float = 0.0
    group_sd: float = 0.8
    lean_sd: float = 0.8
    binary: bool = True

    def truth(self) -> float:
        """The true mean of every strategy."""
        sd = math.sqrt(1 + self.group_sd**2 + self.lean_sd**2)
        if self.binary:  # P(latent > 0) of a normal with mean base
            return NormalDist().cdf(self.base / sd)
        return NormalDist().cdf(self.base / sd)  # E[Phi(X)] = Phi(mu / sqrt(1 + var)), see draw

    def draw(self, rng: np.random.Generator) -> tuple[dict[str, dict[str, float]], dict]:
        sizes = rng.integers(1, self.max_size + 1, size=self.groups)
        gid = np.repeat(np.arange(self.groups), sizes)
        n = int(sizes.sum())
        u = rng.normal(0, self.group_sd, self.groups)[gid]
        qids = [f"q{i}" for i in range(n)]
        out = {}
        for s in range(self.strategies):
            lean = rng.normal(0, self.lean_sd, self.groups)[gid]
            if self.binary:
                latent = self.base + u + lean + rng.normal(0, 1, n)
                values = (latent > 0).astype(np.float64)
            else:  # graded: Phi of the latent without its last noise term, mean as above
                values = np.asarray(
                    [NormalDist().cdf(x) for x in self.base + u + lean], dtype=np.float64
                )
            out[f"s{s}"] = dict(zip(qids, values.tolist(), strict=True))
        return out, {q: f"g{gid[i]}" for i, q in enumerate(qids)}


def calibrate_synthetic(
    model: Synthetic = Synthetic(), settings: Settings = Settings(), grouped: bool = True
) -> Calibration:
    """Calibration on `settings.runs` data sets drawn from `model` (a known null and truth).
    `grouped` False runs the procedure as if every question were independent, to show what
    ignoring the groups does."""
    rng = np.random.default_rng(settings.seed)
    false = covered = trials = 0
    truth = model.truth()
    n = g = 0
    for r in range(settings.runs):
        scores, groups = model.draw(rng)
        qids = list(next(iter(scores.values())))
        n, g = len(qids), len(set(groups.values()))
        use = groups if grouped else None
        false += declares_winner(scores, use, settings, settings.seed + r)
        labels = [groups[q] for q in qids] if grouped else None
        for values in scores.values():
            iv = bootstrap_ci(
                list(values.values()),
                groups=labels,
                n_resamples=settings.resamples,
                seed=settings.seed + r,
            )
            covered += iv.low - 1e-12 <= truth <= iv.high + 1e-12
            trials += 1
    kind = "binary (McNemar)" if model.binary else "graded (sign-flip)"
    how = "groups resampled and flipped" if grouped else "questions treated as independent"
    return Calibration(
        f"synthetic clustered, {kind}, {how}",
        n,
        g,
        model.strategies,
        Check(false, settings.runs),
        Check(covered, trials),
        [
            f"{model.groups} groups of 1-{model.max_size} questions; group sd {model.group_sd:g}, "
            f"group-by-strategy sd {model.lean_sd:g}"
        ],
    )
