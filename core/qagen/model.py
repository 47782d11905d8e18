"""The "model" method: the generator reads a chunk and writes a question and a short answer; only
answers found in the chunk are kept (as the chunk's own span), the rest counted by reason."""

from __future__ import annotations

import random
import re
from collections import Counter

from core.config import ModelConfig
from core.engines.in_process import load_generator
from core.qagen.config import ProgressFn, QAGenConfig, QAGenResult
from core.qagen.heuristics import WORD, find_span, norm_key, pair_id
from core.types import Corpus, QAPair

MODEL_PROMPT = (
    "Read the passage and write one question that it answers, with a short answer copied "
    "word for word from the passage. Reply in exactly this format:\n"
    "Question: <the question>\nAnswer: <the answer>\n\nPassage:\n{passage}"
)
_QA_REPLY = re.compile(r"question\s*:\s*(?P<q>.+?)\s*\n+\s*answer\s*:\s*(?P<a>[^\n]+)", re.I | re.S)


def parse_reply(text: str) -> tuple[str, str] | None:
    """(question, answer) from a 'Question: ... / Answer: ...' reply, or None."""
    m = _QA_REPLY.search(text)
    if not m:
        return None
    q = " ".join(m.group("q").split())
    a = m.group("a").strip().strip("\"'").strip()
    return (q, a) if q and a else None


def model_pairs(
    corpus: Corpus, config: QAGenConfig, models: ModelConfig, progress: ProgressFn | None
) -> QAGenResult:

    generator = load_generator(models)
    rng = random.Random(config.seed)
    chunks = [c for c in corpus.chunks if c.text.strip()]
    order = sorted(rng.sample(range(len(chunks)), min(len(chunks), config.max_prompts)))
    chosen = [chunks[i] for i in order]
    rejected: Counter[str] = Counter()
    pairs: list[QAPair] = []
    seen: set[str] = set()
    batch = 4
    for start in range(0, len(chosen), batch):
        part = chosen[start : start + batch]
        convs = [[{"role": "user", "content": MODEL_PROMPT.format(passage=c.text)}] for c in part]
        replies = generator.generate(convs, max_new_tokens=config.max_new_tokens)
        for chunk, reply in zip(part, replies, strict=True):
            parsed = parse_reply(reply.text)
            if parsed is None:
                rejected["unparseable"] += 1
                continue
            question, answer = parsed
            span = find_span(answer, chunk.text)
            if span is None:
                rejected["answer_not_in_passage"] += 1
            elif len(WORD.findall(span)) > config.max_answer_words:
                rejected["answer_too_long"] += 1
            elif norm_key(span) == norm_key(chunk.text) or norm_key(span) in norm_key(question):
                rejected["answer_in_question"] += 1
            elif norm_key(question) in seen:
                rejected["duplicate"] += 1
            else:
                seen.add(norm_key(question))
                pairs.append(
                    QAPair(pair_id(question, span), question, (span,), chunk.source, chunk.text)
                )
        if progress:
            progress(min(start + batch, len(chosen)), len(chosen))
    if len(pairs) > config.n:
        rejected["over_n"] += len(pairs) - config.n
        pairs = pairs[: config.n]
    stats = {
        "method": "model",
        "generator": models.generator,
        "considered": len(chosen),
        "kept": len(pairs),
        "rejected": dict(sorted(rejected.items())),
    }
    return QAGenResult(pairs, stats)
