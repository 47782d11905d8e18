"""Statistics a decision rests on: the chance each strategy is the best, paired comparisons
corrected for their number (Holm), McNemar's exact test (and its clustered form), paired effect
sizes, and the expected cost of one right answer (Cost-of-Pass, Erol et al. 2025), each with a
bootstrap interval. Every resampling one draws whole groups (eval.stats.groups) when given
them. Pure functions over per-question scores: no store, no views."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

from eval.stats.groups import (
    group_codes,
    group_sums,
    labels_of,
    n_groups,
    resample_weights,
    small_sample_scale,
    widen,
)
from eval.stats.paired import sign_flip_p


def common_questions(scores: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Question ids every strategy scored, in the first strategy's order."""
    names = list(scores)
    if not names:
        return []
    rest = [set(scores[n]) for n in names[1:]]
    return [q for q in scores[names[0]] if all(q in s for s in rest)]


def _resample_weights(
    n: int, n_resamples: int, seed: int, labels: Sequence | None = None
) -> np.ndarray:
    """(n_resamples, n) weights of each question in a bootstrap resample, seeded: whole groups
    drawn when `labels` (one group label per question) are given."""
    return resample_weights(group_codes(labels, n), n_resamples, seed)


def prob_best(
    scores: Mapping[str, Mapping[str, float]],
    *,
    higher_is_better: bool = True,
    groups: Mapping[str, str] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Strategy -> probability of having the best mean, from a paired bootstrap.

    Each resample draws the same questions (with replacement) for every strategy at once, so
    what the strategies share (an easy or a hard question) moves them together; with `groups`
    (qid -> group id) whole groups are drawn. A tie for the
    best is split evenly among the tied strategies. Only questions every strategy scored count;
    with none, every probability is NaN. The probabilities sum to 1.
    """
    names = list(scores)
    qids = common_questions(scores)
    if not names or not qids:
        return {n: math.nan for n in names}
    s = np.asarray([[scores[n][q] for n in names] for q in qids], dtype=np.float64)
    if not higher_is_better:
        s = -s
    w = _resample_weights(len(qids), n_resamples, seed, labels_of(qids, groups))
    means = w @ s / w.sum(axis=1, keepdims=True)  # (resamples, strategies)
    top = means.max(axis=1, keepdims=True)
    tied = np.isclose(means, top, rtol=0.0, atol=1e-12)
    share = tied / tied.sum(axis=1, keepdims=True)
    return {n: float(p) for n, p in zip(names, share.mean(axis=0), strict=True)}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order.

    The i-th smallest of m p-values is multiplied by (m - i), made non-decreasing along the
    sorted order and capped at 1. None (no test) stays None and does not count in m.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: `b` questions only the first
    got right, `c` only the second. A binomial test of b out of b + c at 1/2; 1 when b + c = 0."""
    if b + c == 0:
        return 1.0
    return float(binomtest(int(b), int(b + c), 0.5).pvalue)


def is_binary(values: Sequence[float]) -> bool:
    """Whether every score is 0 or 1 (exact match, judge pass/fail): McNemar applies."""
    return len(values) > 0 and all(v in (0.0, 1.0) for v in values)


def mcnemar_grouped(
    diffs: Sequence[float],
    labels: Sequence | None = None,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, str]:
    """(p, test name) of McNemar's test on binary paired differences (a - b: 1 where only a was
    right, -1 where only b was). Without groups (every question its own) it is the exact
    binomial test over the discordant pairs (`mcnemar_exact`).

    Clustered questions (one source passage, near-duplicates) use a group-level permutation
    test: all discordant signs of a group are flipped together (the strategy labels swapped for
    the whole group), exact over every pattern up to EXACT_MAX discordant groups, sampled
    above. It needs no model of the within-group correlation (unlike the Obuchowski 1998
    variance adjustment, which leans on a normal approximation that few groups do not
    support), and with singleton groups it is exactly the binomial test.
    """
    d = np.asarray(diffs, dtype=np.float64)
    codes = group_codes(labels, int(d.size))
    if n_groups(codes) == d.size:
        return mcnemar_exact(int(np.sum(d > 0)), int(np.sum(d < 0))), "McNemar exact"
    p, _ = sign_flip_p(group_sums(d, codes), int(d.size), n_resamples=n_resamples, seed=seed)
    return p, "McNemar, groups flipped"


@dataclass
class EffectSize:
    """A paired effect of a over b: mean difference and Cohen's d_z (mean / sd of the
    differences), each with a percentile bootstrap interval. d_z is None when every
    difference is the same (its sd is 0)."""

    n: int
    mean_diff: float | None
    low: float | None
    high: float | None
    d_z: float | None
    d_low: float | None
    d_high: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def effect_size(
    diffs: Sequence[float],
    *,
    groups: Sequence | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> EffectSize:
    """Mean paired difference and Cohen's d_z of `diffs` (a - b per question), with intervals
    from one bootstrap (whole groups drawn when `groups`, one label per difference, is given).

    A resample whose differences are all 0 has d_z 0; one whose differences are all the same
    non-zero c has d_z c/0 = ±inf, kept in the quantiles (read by `inverted_cdf`, which picks
    resampled values, so no infinity is interpolated): dropping them would move the interval
    away from 0 exactly where most differences are 0 (exact match).
    """
    d = np.asarray(diffs, dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return EffectSize(0, None, None, None, None, None, None)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if n == 1:
        return EffectSize(1, mean, mean, mean, None, None, None)
    w = _resample_weights(n, n_resamples, seed, groups)
    total = w.sum(axis=1)
    means = w @ d / total
    sq = w @ (d * d) / total
    var = np.maximum(sq - means**2, 0.0) * total / np.maximum(total - 1, 1)
    alpha = (1.0 - confidence) / 2.0
    g = n_groups(group_codes(groups, n))
    ends = np.quantile(means, [alpha, 1.0 - alpha])  # widened as bootstrap_ci widens its own
    low, high = widen(mean, ends, small_sample_scale(g, confidence), d.min(), d.max())
    if sd == 0.0:
        return EffectSize(n, mean, float(low), float(high), None, None, None)
    # rounding leaves a spread of ~1e-17 where every difference is equal: that is no spread
    flat = var <= 1e-12 * np.maximum(sq, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        dz = np.where(flat, np.sign(means) * np.inf, means / np.sqrt(var))
    dz = np.where(flat & (np.abs(means) <= 1e-12), 0.0, dz)
    d_low, d_high = np.quantile(dz, [alpha, 1.0 - alpha], method="inverted_cdf")
    return EffectSize(n, mean, float(low), float(high), mean / sd, float(d_low), float(d_high))


@dataclass
class CostPerRight:
    """Expected cost of one right answer: money and machine-seconds, each with a bootstrap
    interval. `inf` when nothing was right (shown "none right"); `right`/`n` the counts."""

    right: int
    n: int
    money: float
    money_low: float
    money_high: float
    seconds: float
    seconds_low: float
    seconds_high: float

    @property
    def none_right(self) -> bool:
        return self.right == 0

    def to_dict(self) -> dict:
        """JSON-safe: infinite figures become None, with `none_right` saying why."""
        d = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }
        return d | {"none_right": self.none_right}


def cost_per_right(
    right: Sequence[bool],
    seconds: Sequence[float],
    *,
    money_per_question: float,
    money_fixed: float = 0.0,
    seconds_fixed: float = 0.0,
    groups: Sequence | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> CostPerRight:
    """Expected money and machine-seconds per right answer (cost per question / share right).

    `right` and `seconds` are per question; `money_per_question` is the run's price per
    question; `money_fixed`/`seconds_fixed` the preparation share each question carries (the
    preparation amortised over the expected volume). Resampling questions (whole groups when
    `groups` gives one label per question) gives the interval;
    a resample with nothing right costs infinitely much per right answer.
    """
    r = np.asarray(right, dtype=np.float64)
    s = np.asarray(seconds, dtype=np.float64)
    n, k = int(r.size), int(r.sum())
    if n == 0:
        inf = math.inf
        return CostPerRight(0, 0, inf, inf, inf, inf, inf, inf)

    def ratio(num: np.ndarray | float, share: np.ndarray | float):
        with np.errstate(divide="ignore"):
            return np.where(np.asarray(share) > 0, np.asarray(num) / np.asarray(share), math.inf)

    share = r.mean()
    money = float(ratio(money_per_question + money_fixed, share))
    secs = float(ratio(s.mean() + seconds_fixed, share))
    w = _resample_weights(n, n_resamples, seed, groups)
    total = w.sum(axis=1)
    shares, sec_means = w @ r / total, w @ s / total
    alpha = (1.0 - confidence) / 2.0
    q = [alpha, 1.0 - alpha]
    # inverted_cdf picks resampled values, so infinite ones need no interpolation
    m_lo, m_hi = np.quantile(
        ratio(money_per_question + money_fixed, shares), q, method="inverted_cdf"
    )
    s_lo, s_hi = np.quantile(ratio(sec_means + seconds_fixed, shares), q, method="inverted_cdf")
    return CostPerRight(k, n, money, float(m_lo), float(m_hi), secs, float(s_lo), float(s_hi))


def pair_test(
    a: Mapping[str, float],
    b: Mapping[str, float],
    groups: Mapping[str, str] | None = None,
    *,
    seed: int = 0,
    n_flips: int = 10_000,
    effect_resamples: int | None = 2000,
) -> dict[str, Any]:
    """The paired test of a − b ({qid: score} each) on the questions both scored, the one every
    view and the calibration run: McNemar for binary scores (`mcnemar_grouped`), else the
    sign-flip permutation test over whole groups. Keys: n, groups, test, p_value and, unless
    `effect_resamples` is None, the effect size (diff with its interval, d_z with its)."""
    common = common_questions({"a": a, "b": b})
    pa, pb = [a[q] for q in common], [b[q] for q in common]
    labels = labels_of(common, groups) or list(common)
    diffs = np.asarray(pa, dtype=np.float64) - np.asarray(pb, dtype=np.float64)
    g = len(set(labels))
    if common and is_binary(pa + pb):
        p, test = mcnemar_grouped(diffs, labels, n_resamples=n_flips, seed=seed)
    elif common:
        codes = group_codes(labels, len(common))
        p, _ = sign_flip_p(group_sums(diffs, codes), len(common), n_resamples=n_flips, seed=seed)
        test = "sign-flip permutation" + (" (groups flipped)" if g < len(common) else "")
    else:
        p, test = None, "none"
    row: dict[str, Any] = {"n": len(common), "groups": g, "test": test, "p_value": p}
    if effect_resamples is not None:
        eff = effect_size(diffs, groups=labels, n_resamples=effect_resamples, seed=seed)
        row |= {"diff": eff.mean_diff, "diff_low": eff.low, "diff_high": eff.high}
        row |= {"d_z": eff.d_z, "d_z_low": eff.d_low, "d_z_high": eff.d_high}
    else:
        row["diff"] = float(diffs.mean()) if common else None
    return row


def pairwise_family(
    scores: Mapping[str, Mapping[str, float]],
    groups: Mapping[str, str] | None = None,
    *,
    alpha: float = 0.05,
    seed: int = 0,
    n_flips: int = 10_000,
    effect_resamples: int | None = 2000,
) -> list[dict[str, Any]]:
    """`pair_test` for every pair of strategies in `scores` (a before b in its order), with
    Holm's step-down over all of them: `p_holm`, `holm_over` (the family's size) and
    `significant` (p_holm < alpha). All pairs rather than the comparisons with the observed
    best, whose family is picked by the data (see eval.views.verdict.confidence)."""
    names = list(scores)
    rows = [
        {"a": x, "b": y}
        | pair_test(
            scores[x],
            scores[y],
            groups,
            seed=seed,
            n_flips=n_flips,
            effect_resamples=effect_resamples,
        )
        for i, x in enumerate(names)
        for y in names[i + 1 :]
    ]
    adjusted = holm([row["p_value"] for row in rows])
    size = sum(p is not None for p in adjusted)
    for row, ph in zip(rows, adjusted, strict=True):
        row["p_holm"], row["holm_over"] = ph, size
        row["significant"] = ph is not None and ph < alpha
    return rows
