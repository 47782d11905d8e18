"""Q/A pairs from every fact of the corpus, several phrasings each: training data for a fair
fine-tune (`lora.data: pairs+corpus`), never a duplicate of a held-out test question.

Built on the sentence heuristics of `core.qagen` (the cloze method's), with more phrasings per
fact and an optional model-written paraphrase.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from core.qa import SimilarQuestions, content_words
from core.qagen.config import BLANK, QAGenConfig, QAGenResult
from core.qagen.heuristics import (
    answer_candidates,
    make_pair,
    norm_key,
    pair_id,
    sentence_problem,
    split_sentences,
    wh_question,
)
from core.types import Chunk, Corpus, QAPair

# Cloze templates: the same blank asked in other words, so a fine-tuned model meets each fact
# in several phrasings (Ovadia et al. 2023; Mecklenburg et al. 2024).
CLOZE_TEMPLATES = (
    "Fill in the blank: {blanked}",
    "Complete the sentence from {title}: {blanked}",
    "What is missing in this statement? {blanked}",
)
PARAPHRASE_PROMPT = (
    "Rewrite the question in different words. Keep its meaning; do not answer it. Reply with "
    "the new question only.\n\nQuestion: {question}"
)


def _title(source: str | None) -> str:
    stem = (source or "the documents").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return stem.replace("_", " ").replace("-", " ")


def fact_phrasings(
    sentence: str, chunk: Chunk, phrasings: int, config: QAGenConfig | None = None
) -> list[QAPair]:
    """Up to `phrasings` different questions on one sentence: a "What is X?" rewrite when it
    fits, then cloze blanks over its candidate answer spans, best spans first, each span under
    the next template in turn. Every answer is an exact span of the sentence (the `passage`)."""
    config = config or QAGenConfig()
    out: list[QAPair] = []
    if config.wh_questions and (wh := wh_question(sentence, config)) is not None:
        made = make_pair(wh[0], sentence[wh[1] : wh[2]], chunk, sentence, "what_is")
        if made:
            out.append(made[0])
    spans = sorted({(r, a, b) for r, _, a, b in answer_candidates(sentence, config)})
    for i, (_, a, b) in enumerate(spans):
        if len(out) >= phrasings:
            break
        blanked = f"{sentence[:a]}{BLANK}{sentence[b:]}"
        template = CLOZE_TEMPLATES[i % len(CLOZE_TEMPLATES)]
        question = template.format(blanked=blanked, title=_title(chunk.source))
        made = make_pair(question, sentence[a:b], chunk, sentence, "cloze")
        if made:
            out.append(made[0])
    # Fewer spans than phrasings: the best span again under the other templates.
    for template in CLOZE_TEMPLATES[1:]:
        if len(out) >= phrasings or not spans:
            break
        _, a, b = spans[0]
        blanked = f"{sentence[:a]}{BLANK}{sentence[b:]}"
        question = template.format(blanked=blanked, title=_title(chunk.source))
        made = make_pair(question, sentence[a:b], chunk, sentence, "cloze")
        if made and all(made[0].question != p.question for p in out):
            out.append(made[0])
    return out[:phrasings]


class HeldOut:
    """The test pairs a generated training pair must not duplicate.

    A generated pair leaks when its question is a near-duplicate of a test question (same
    normalised text, or content-word Jaccard >= `jaccard`, the split's own rule), or when it was
    made from a test pair's passage (pairs from one passage stay on one side, as in
    `core.qa.split_pairs`). Facts a test question asks about may still be learned from other
    sentences: that is the knowledge a fine-tune is meant to gain.
    """

    def __init__(self, pairs: list[QAPair] | tuple[QAPair, ...] = (), jaccard: float = 0.8):
        from collections import Counter

        self.jaccard = jaccard
        self._texts = {norm_key(p.question) for p in pairs}
        self._passages = {norm_key(p.passage) for p in pairs if p.passage}
        # An index, not a scan of every held-out question per generated pair (quadratic).
        distinct = {w for w in map(content_words, (p.question for p in pairs)) if w}
        self._index = SimilarQuestions(Counter(w for ws in distinct for w in ws), jaccard)
        for key, ws in enumerate(distinct):
            self._index.add(key, ws)

    def leaks(self, pair: QAPair) -> bool:
        """Whether `pair` duplicates a held-out question or comes from a held-out passage."""

        if norm_key(pair.question) in self._texts:
            return True
        if pair.passage and norm_key(pair.passage) in self._passages:
            return True
        words = content_words(pair.question)
        return bool(words) and bool(self._index.similar(words))


def corpus_fact_pairs(
    corpus: Corpus,
    *,
    phrasings: int = 3,
    held_out: HeldOut | None = None,
    config: QAGenConfig | None = None,
    paraphrase_with: Any = None,
    max_pairs: int = 0,
) -> QAGenResult:
    """Training pairs from every usable sentence of every chunk, `phrasings` per fact.

    Pairs that `held_out.leaks` are dropped (counted as "held_out"). With a generator in
    `paraphrase_with`, each fact also gets a model-written paraphrase of its first question,
    kept only when it still asks without giving the answer (see `paraphrase_pairs`). `max_pairs`
    caps the total (0 = no cap), keeping whole facts in corpus order.
    """
    config = config or QAGenConfig()
    held_out = held_out or HeldOut()
    rejected: Counter[str] = Counter()
    seen_sentences: set[str] = set()
    seen_questions: set[str] = set()
    facts: list[list[QAPair]] = []
    for chunk in corpus.chunks:
        for a, b in split_sentences(chunk.text):
            s = chunk.text[a:b]
            key = norm_key(s)
            if key in seen_sentences:
                continue  # chunks overlap: a sentence is one fact, once
            seen_sentences.add(key)
            why = sentence_problem(s, config)
            if why:
                rejected[why] += 1
                continue
            made = fact_phrasings(s, chunk, phrasings, config)
            if not made:
                rejected["no_answer_span"] += 1
            kept = []
            for p in made:
                if held_out.leaks(p):
                    rejected["held_out"] += 1
                elif norm_key(p.question) in seen_questions:
                    rejected["duplicate"] += 1
                else:
                    seen_questions.add(norm_key(p.question))
                    kept.append(p)
            if kept:
                facts.append(kept)
    stats: dict[str, Any] = {"method": "facts", "facts": len(facts), "phrasings": phrasings}
    if paraphrase_with is not None:
        extra, pstats = paraphrase_pairs([f[0] for f in facts], paraphrase_with, held_out)
        by_passage = {f[0].passage: f for f in facts}
        for p in extra:
            by_passage[p.passage].append(p)
        stats["paraphrases"] = pstats
    pairs = [p for f in facts for p in f]
    if max_pairs and len(pairs) > max_pairs:
        rejected["over_n"] += len(pairs) - max_pairs
        pairs = pairs[:max_pairs]
    stats.update(kept=len(pairs), rejected=dict(sorted(rejected.items())))
    return QAGenResult(pairs, stats)


def paraphrase_pairs(
    pairs: list[QAPair], generator: Any, held_out: HeldOut | None = None, batch: int = 8
) -> tuple[list[QAPair], dict[str, Any]]:
    """A model-written rewording of each pair's question, with the same answer and passage.

    A rewording is kept when it is a question (ends with '?' or still holds the blank), does
    not contain the answer, differs from the original and does not leak. The generator counts
    as capable when at least half of the first batch survives; otherwise nothing is kept and
    the stats say so, since a weak model's paraphrases would teach noise."""
    held_out = held_out or HeldOut()
    kept: list[QAPair] = []
    rejected: Counter[str] = Counter()
    for start in range(0, len(pairs), batch):
        part = pairs[start : start + batch]
        convs = [
            [{"role": "user", "content": PARAPHRASE_PROMPT.format(question=p.question)}]
            for p in part
        ]
        replies = generator.generate(convs, max_new_tokens=64)
        good = 0
        for p, r in zip(part, replies, strict=True):
            q = " ".join(r.text.strip().splitlines()[0].split()) if r.text.strip() else ""
            q = re.sub(r"(?i)^(new question|question)\s*:\s*", "", q)
            if not q or not (q.endswith("?") or BLANK in q):
                rejected["not_a_question"] += 1
            elif norm_key(p.answers[0]) in norm_key(q):
                rejected["gives_the_answer"] += 1
            elif norm_key(q) == norm_key(p.question):
                rejected["unchanged"] += 1
            else:
                new = QAPair(pair_id(q, p.answers[0]), q, p.answers, p.source, p.passage)
                if held_out.leaks(new):
                    rejected["held_out"] += 1
                else:
                    kept.append(new)
                    good += 1
        if start == 0 and good * 2 < len(part):
            return [], {"capable": False, "kept": 0, "rejected": dict(rejected)}
    return kept, {"capable": True, "kept": len(kept), "rejected": dict(sorted(rejected.items()))}
