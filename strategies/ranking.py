"""Combining and reordering ranked chunk lists: rank fusion, weighted score fusion, MMR.

A ranking is a list of (chunk id, score) pairs, best first. Fusion merges the dense and the
lexical ranking of one question; maximal marginal relevance (MMR) then picks the final chunks
so that a near-copy of a chunk already picked does not take a second place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Ranking = list[tuple[str, float]]

RRF_K = 60  # Cormack et al. (2009)'s constant; Elastic, Haystack and LlamaIndex use it too


def reciprocal_rank_fusion(rankings: Sequence[Ranking], weights: Sequence[float], k: int = RRF_K):
    """One ranking from several: each chunk scores sum(w / (k + rank)) over the rankings that
    hold it (rank from 1). Ties keep the order in which chunks were first seen."""
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, (cid, _) in enumerate(ranking, start=1):
            fused[cid] = fused.get(cid, 0.0) + float(w) / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def _min_max(ranking: Ranking) -> dict[str, float]:
    """Scores rescaled to [0, 1] within the ranking (all 1.0 when they are equal)."""
    if not ranking:
        return {}
    values = [s for _, s in ranking]
    lo, hi = min(values), max(values)
    return {cid: (s - lo) / (hi - lo) if hi > lo else 1.0 for cid, s in ranking}


def weighted_fusion(rankings: Sequence[Ranking], weights: Sequence[float]) -> Ranking:
    """One ranking from several: each chunk scores sum(w * its min-max normalised score) over
    the rankings that hold it (0 where absent). Cosine and BM25 scores live on different
    scales; normalising within each question's candidates puts them on one."""
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for cid, s in _min_max(ranking).items():
            fused[cid] = fused.get(cid, 0.0) + float(w) * s
    return sorted(fused.items(), key=lambda kv: -kv[1])


FUSIONS = {"rrf": reciprocal_rank_fusion, "weighted": weighted_fusion}


def mmr(ranking: Ranking, vectors: Mapping[str, np.ndarray], k: int, lam: float) -> Ranking:
    """Up to k chunks of `ranking` picked by maximal marginal relevance (Carbonell & Goldstein,
    1998): each step takes the chunk maximising lam * relevance - (1 - lam) * its highest
    cosine similarity to a chunk already picked. Relevance is the ranking's own score divided
    by the best one (negative scores count as 0), so MMR keeps whatever retriever ranked the
    candidates and a weaker one is not pushed to 0 as min-max scaling would; `vectors` are the
    chunks' L2-normalised embeddings. lam = 1 is the ranking's top k. The chunks keep their
    ranking scores, in the order picked."""
    if lam >= 1.0 or len(ranking) <= 1:
        return list(ranking[:k])
    top = max(max(s for _, s in ranking), 0.0)
    relevance = {cid: max(s, 0.0) / top if top > 0 else 1.0 for cid, s in ranking}
    scores = dict(ranking)
    left = [cid for cid, _ in ranking]
    picked: list[str] = []
    while left and len(picked) < k:
        if picked:
            chosen = np.stack([vectors[c] for c in picked])
            cand = np.stack([vectors[c] for c in left])
            redundancy = (cand @ chosen.T).max(axis=1)
        else:
            redundancy = np.zeros(len(left))
        gains = [lam * relevance[c] - (1 - lam) * r for c, r in zip(left, redundancy, strict=True)]
        best = left[int(np.argmax(gains))]  # the first of equal gains: the better-ranked one
        picked.append(best)
        left.remove(best)
    return [(c, scores[c]) for c in picked]
