"""The one answer wrapper every strategy uses, so differences come from the strategy alone.

A strategy decides *what* goes in front of the question (nothing, shots, retrieved passages,
adapted weights); this module decides *how* it is laid out and how the reply is cleaned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.types import Context, Corpus, QAPair

DEFAULT_SYSTEM_TEMPLATE = (
    "You are an expert on {domain}. Answer the question with a short phrase only: no full "
    "sentence, no explanation."
)
# Measured on 32 sample questions with SmolLM2-135M (RAG, token F1): numbered "[1] (source)"
# passages 0.106, this layout 0.169; the small model copied the numbering into its answers.
CONTEXT_INSTRUCTION = (
    "Read the passages and answer the question with the answer only, in a few words."
)


def describe_domain(corpus: Corpus | None, domain: str = "") -> str:
    """The user's domain description, or one made from the document titles."""
    if domain.strip():
        return domain.strip()
    if corpus is None or not corpus.documents:
        return "the user's documents"
    titles = []
    for d in corpus.documents[:5]:
        stem = d.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        titles.append(stem.replace("_", " ").replace("-", " "))
    more = " and related topics" if len(corpus.documents) > 5 else ""
    return ", ".join(titles) + more


def system_message(template: str, domain: str) -> str:
    """Fill `{domain}` in a system template (other braces are left alone)."""
    return template.replace("{domain}", domain)


def format_contexts(contexts: Sequence[Context]) -> str:
    """Retrieved passages, each headed by its source name, separated by blank lines."""
    return "\n\n".join(
        f"Passage from {c.source}:\n{c.text.strip()}" if c.source else c.text.strip()
        for c in contexts
    )


def answer_messages(
    question: str,
    system: str,
    *,
    passages: Sequence[Context] = (),
    shots: Sequence[QAPair] = (),
    instruction: str = CONTEXT_INSTRUCTION,
) -> list[dict[str, str]]:
    """Chat messages for one question: system, optional shots as past turns, then the question.

    `instruction` heads the passages (a format or style task keeps its format over them)."""
    messages = [{"role": "system", "content": system}]
    for shot in shots:
        messages.append({"role": "user", "content": f"Question: {shot.question}"})
        messages.append({"role": "assistant", "content": shot.answers[0]})
    if passages:
        user = f"{instruction}\n\n{format_contexts(passages)}\n\nQuestion: {question}"
    else:
        user = f"Question: {question}"
    messages.append({"role": "user", "content": user})
    return messages


# "Answer:", "A -", "The answer is", "The answer to this question is:" (small models love these).
_LEAD = re.compile(
    r"^(?:the\s+)?(?:answer|a)\b(?:\s+to\s+(?:this|the|your)\s+question)?(?:\s*[:\-]|\s+is\b:?)\s*",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?:[-*\u2022]|\d+[.)])\s+")


def clean_answer(raw: str) -> str:
    """The answer in a generation: its first line without lead-ins like 'The answer is:' or
    wrapping quotes; a line that only announces what follows ('...including:') gets the next
    line joined to it.
    """
    lines = [ln.strip() for ln in raw.strip().splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        line = _LEAD.sub("", line).strip().strip('"').strip()
        if not line:
            continue
        if line.endswith(":") and i + 1 < len(lines):
            line = f"{line} {_BULLET.sub('', lines[i + 1])}"
        return line
    return ""
