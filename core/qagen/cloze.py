"""The "cloze" method: informative sentences become fill-in-the-blank questions, or "What is X?"
for simple "X is a/the Y." sentences; no model, deterministic for a seed."""

from __future__ import annotations

import random
from collections import Counter

from core.qagen.config import BLANK, ProgressFn, QAGenConfig, QAGenResult
from core.qagen.heuristics import (
    answer_candidates,
    make_pair,
    norm_key,
    sentence_problem,
    split_sentences,
    wh_question,
)
from core.types import Chunk, Corpus, QAPair


def cloze_pairs(corpus: Corpus, config: QAGenConfig, progress: ProgressFn | None) -> QAGenResult:
    rng = random.Random(config.seed)
    rejected: Counter[str] = Counter()
    considered = 0
    seen_sentences: set[str] = set()
    seen_questions: set[str] = set()
    picked: list[tuple[int, QAPair, str]] = []  # (chunk index, pair, kind of answer)
    total = len(corpus.chunks)
    for ci, chunk in enumerate(corpus.chunks):
        usable: list[tuple[QAPair, str]] = []
        for a, b in split_sentences(chunk.text):
            s = chunk.text[a:b]
            key = norm_key(s)
            if key in seen_sentences:
                continue  # chunks overlap: a sentence is considered once
            seen_sentences.add(key)
            considered += 1
            why = sentence_problem(s, config)
            if why:
                rejected[why] += 1
                continue
            made = _cloze_pair(s, chunk, config, rng)
            if made is None:
                rejected["no_answer_span"] += 1
            elif norm_key(made[0].question) in seen_questions:
                rejected["duplicate"] += 1
            else:
                seen_questions.add(norm_key(made[0].question))
                usable.append(made)
        if len(usable) > config.per_chunk:
            rejected["per_chunk_cap"] += len(usable) - config.per_chunk
            keep = set(rng.sample(range(len(usable)), config.per_chunk))
            usable = [p for i, p in enumerate(usable) if i in keep]
        picked.extend((ci, p, kind) for p, kind in usable)
        if progress:
            progress(ci + 1, total)
    if len(picked) > config.n:
        rejected["over_n"] += len(picked) - config.n
        keep = set(rng.sample(range(len(picked)), config.n))  # spread over the whole corpus
        picked = [x for i, x in enumerate(picked) if i in keep]
    pairs = [p for _, p, _ in picked]
    stats = {
        "method": "cloze",
        "considered": considered,
        "kept": len(pairs),
        "rejected": dict(sorted(rejected.items())),
        "kinds": dict(sorted(Counter(k for _, _, k in picked).items())),
    }
    return QAGenResult(pairs, stats)


def _cloze_pair(
    s: str, chunk: Chunk, config: QAGenConfig, rng: random.Random
) -> tuple[QAPair, str] | None:
    """The best question from sentence `s` and the kind of its answer, or None."""
    if config.wh_questions:
        wh = wh_question(s, config)
        if wh is not None:
            question, a, b = wh
            return make_pair(question, s[a:b], chunk, s, "what_is")
    cands = answer_candidates(s, config)
    if not cands:
        return None
    best = min(r for r, *_ in cands)
    _, kind, a, b = rng.choice([c for c in cands if c[0] == best])
    question = f"Fill in the blank: {s[:a]}{BLANK}{s[b:]}"
    return make_pair(question, s[a:b], chunk, s, kind)
