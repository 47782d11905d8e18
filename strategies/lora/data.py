"""LoRA training data: chat-formatted examples with the loss on the answer only, raw chunks
for continued pretraining and retrieval-aware (RAFT) examples.

An example is `(input_ids, labels)` (`strategies.lora.batches.Example`); labels are IGNORE where
no loss is read.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.prompts import CONTEXT_INSTRUCTION, answer_messages
from core.tasks import TaskSpec, gold_phrases
from core.types import Chunk, Context, Corpus, QAPair
from strategies.lora.batches import IGNORE, Example

MODES = ("qa", "cpt", "mix", "raft")


def qa_example(gen, messages: list[dict[str, str]], answer: str, max_tokens: int) -> Example | None:
    """Chat-formatted (input_ids, labels) with loss on the answer tokens only.

    Returns None when truncation to `max_tokens` leaves no answer token.
    """
    tok = gen.tokenizer
    prompt_ids = tok(gen.render(messages), add_special_tokens=False)["input_ids"]
    full_ids = tok(gen.render(messages, answer=answer), add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # Templates that re-tokenise across the boundary: append the answer ourselves.
        full_ids = prompt_ids + tok(answer, add_special_tokens=False)["input_ids"]
        full_ids.append(tok.eos_token_id)
    labels = [IGNORE] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    full_ids, labels = full_ids[:max_tokens], labels[:max_tokens]
    return (full_ids, labels) if any(x != IGNORE for x in labels) else None


def chunk_examples(gen, chunks: Sequence[Chunk], max_tokens: int) -> list[Example]:
    """Raw corpus text, loss on every token (continued pretraining)."""
    out = []
    for chunk in chunks:
        ids = gen.tokenizer(chunk.text, add_special_tokens=False)["input_ids"][:max_tokens]
        if len(ids) > 1:
            out.append((ids, list(ids)))
    return out


def oracle_passage(pair: QAPair, corpus: Corpus, task: TaskSpec | None = None) -> Context | None:
    """The passage that holds the answer: the pair's own `passage` field when it has one, else
    the first chunk (of the pair's `source` document if given) containing a gold answer (for a
    JSON gold of a format `task`, the text of its fields: a chunk never holds the JSON itself).
    """
    given = getattr(pair, "passage", None)  # optional field, added to QAPair separately
    if given:
        return Context(given, source=pair.source)
    answers = [a.lower() for a in gold_phrases(task, pair.answers) if a.strip()]

    def holds(chunk: Chunk) -> bool:
        text = chunk.text.lower()
        return any(a in text for a in answers)

    if pair.source:
        same = [c for c in corpus.chunks if _same_source(c.source, pair.source)]
        for chunk in same:
            if holds(chunk):
                return Context(chunk.text, source=chunk.source)
    for chunk in corpus.chunks:
        if holds(chunk):
            return Context(chunk.text, source=chunk.source)
    return None


def _same_source(chunk_source: str, pair_source: str) -> bool:
    return chunk_source == pair_source or chunk_source.rsplit("/", 1)[-1] == pair_source


@dataclass
class RaftStats:
    """What went into the retrieval-aware examples (reported in the strategy's details)."""

    with_oracle: int = 0
    without_oracle: int = 0
    no_oracle_found: int = 0
    passages: list[int] = field(default_factory=list)  # passages per example


def raft_passages(
    pair: QAPair,
    retrieved: Sequence[Context],
    corpus: Corpus,
    n_passages: int,
    drop_oracle: bool,
    rng: random.Random,
    task: TaskSpec | None = None,
) -> tuple[list[Context], bool]:
    """Passages for one RAFT example: the oracle plus distractors (retrieved chunks that are not
    the oracle), shuffled; or distractors only when `drop_oracle`. Returns (passages, has_oracle).
    """
    oracle = oracle_passage(pair, corpus, task)
    key = oracle.text.strip() if oracle else None
    distractors = [c for c in retrieved if c.text.strip() != key]
    if oracle is None or drop_oracle:
        return distractors[:n_passages], False
    picked = [oracle, *distractors[: n_passages - 1]]
    rng.shuffle(picked)  # the oracle's position must carry no signal
    return picked, True


def raft_example(
    gen,
    question: str,
    answer: str,
    system: str,
    passages: list[Context],
    max_tokens: int,
    instruction: str = CONTEXT_INSTRUCTION,
) -> Example | None:
    """A Q/A example whose prompt carries `passages` in the layout RAG answers with (headed by
    `instruction`, as at answer time); while it is too long, distractors are dropped (last
    first), so the answer is not truncated away.
    """
    passages = list(passages)
    while True:
        messages = answer_messages(question, system, passages=passages, instruction=instruction)
        ex = qa_example(gen, messages, answer, 10**9)
        if ex is None or len(ex[0]) <= max_tokens or len(passages) <= 1:
            break
        passages.pop()
    if ex is None:
        return None
    ids, labels = ex[0][:max_tokens], ex[1][:max_tokens]
    return (ids, labels) if any(x != IGNORE for x in labels) else None
