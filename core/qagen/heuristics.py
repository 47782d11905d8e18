"""Text heuristics of Q/A generation: sentences, which of them can carry a question, candidate
answer spans (numbers, names, content words), "What is X?" rewrites, pair ids."""

from __future__ import annotations

import hashlib
import re

from core.qagen.config import QAGenConfig
from core.types import Chunk, QAPair

_STOP_WORDS = """a an the of in on at to for by with from and or but nor is are was were be
    been being as into than then that this these those which who whom whose what when where
    why how it its
    their there they he she his her has have had do does did can could would should will may
    might must not no also such other some many most more any each all both either neither very
    so if while after before during about between through over under within without against
    one two own same versus via per like including until among upon across around because
    although though however since toward towards"""
_STOP = frozenset(_STOP_WORDS.split())
# Sentences opening with these depend on the previous sentence: their blanks are unanswerable.
_PRONOUN_WORDS = """it its this these those that they their them he she his her such here there
    we our you your i one another both either neither"""
_PRONOUN_STARTS = frozenset(_PRONOUN_WORDS.split())
_ABBREVIATIONS = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Ms|St|No|Fig|approx|ca)|\b[A-Z])\.$"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
WORD = re.compile(r"[A-Za-z0-9][\w'’\-–]*")
_NUMBER = re.compile(r"\b\d[\d,.]*\d?(?:\s?(?:%|percent|per cent))?(?![\w-])")
_CAPITALISED = re.compile(r"\b[A-Z][\w'’\-]+(?:\s+(?:of\s+|the\s+|and\s+|de\s+)?[A-Z][\w'’\-]+)*")
_IS_A = re.compile(
    r"^(?P<x>[A-Z][^,;:()]{1,60}?)\s+(?P<verb>is|are|was|were)\s+"
    r"(?P<y>(?:a|an|the|one of the)\s+[^;:()]+?)(?=[,;]|\.$)"
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text`: lines first, then sentence ends,
    not breaking after common abbreviations or initials."""
    out: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        base, body = line.start(), line.group()
        start = 0
        for m in _SENTENCE_END.finditer(body):
            head = body[start : m.start()]
            if _ABBREVIATIONS.search(head):
                continue
            out.append((base + start, base + m.start() + len(m.group().rstrip())))
            start = m.end()
        out.append((base + start, base + len(body)))
    # Trim each span so it is an exact, stripped slice of the text.
    spans = []
    for a, b in out:
        s = text[a:b]
        a2 = a + len(s) - len(s.lstrip())
        b2 = a + len(s.rstrip())
        if b2 > a2:
            spans.append((a2, b2))
    return spans


def sentence_problem(s: str, config: QAGenConfig) -> str | None:
    """Why a sentence is not used, or None when it is."""
    if re.match(r"^\s*(#|[-*+•|>]|\d+[.)]\s)", s):
        return "heading_or_list"
    if not s.endswith((".", "!")) or s.endswith("..."):
        return "not_a_sentence"  # headings, captions, questions, cut-off chunk edges
    if not re.match(r"^[\"'(]?[A-Z]", s):
        return "not_a_sentence"
    words = WORD.findall(s)
    if len(words) < config.min_sentence_words:
        return "too_short"
    if len(words) > config.max_sentence_words:
        return "too_long"
    if words[0].lower() in _PRONOUN_STARTS:
        return "pronoun_start"
    if sum(c.isalpha() for c in s) < 0.6 * len(s):
        return "not_prose"  # tables, formulas, reference lists
    return None


def _content(word: str) -> bool:
    # Single capitals count: "B cells", "Type I".
    return word.lower() not in _STOP and (len(word) > 1 or word.isupper())


def answer_candidates(s: str, config: QAGenConfig) -> list[tuple[int, str, int, int]]:
    """(rank, kind, start, end) answer spans in sentence `s`; lower rank is better."""
    out: list[tuple[int, str, int, int]] = []
    first_end = m.end() if (m := WORD.search(s)) else 0
    for m in _NUMBER.finditer(s):
        out.append((0, "number", m.start(), m.end()))
    for m in _CAPITALISED.finditer(s):
        a, b = m.start(), m.end()
        if a < first_end:  # the sentence's own first word is capitalised anyway
            rest = _CAPITALISED.search(s, first_end)
            if not m.group()[first_end - a :].strip():
                continue
            if rest is None or rest.start() >= b:
                # "The Greek root" at the start: keep only from the second capitalised word
                inner = re.search(r"\s([A-Z][\w'’\-]+.*)$", m.group())
                if not inner:
                    continue
                a = a + inner.start(1)
        if len(s[a:b]) >= 2 and _content(s[a:b].split()[0]):
            out.append((1, "proper_noun", a, b))
    # The last content phrase: trailing words back to the first stopword.
    body = s.rstrip(".!\"')] ")
    words = list(WORD.finditer(body))
    k = len(words)
    while k > 0 and _content(words[k - 1].group()) and len(words) - k < 3:
        k -= 1
    if k < len(words) and k > 0:
        out.append((2, "last_phrase", words[k].start(), words[-1].end()))
    kept = []
    for rank, kind, a, b in out:
        n_words = len(WORD.findall(s[a:b]))
        if 1 <= n_words <= config.max_answer_words and b - a < len(s) * 0.7:
            kept.append((rank, kind, a, b))
    return kept


def wh_question(s: str, config: QAGenConfig) -> tuple[str, int, int] | None:
    """'X is a Y.' -> ('What is X?', span of 'a Y'), only when X is a short, plain subject."""
    m = _IS_A.match(s)
    if not m:
        return None
    x, y = m.group("x"), m.group("y")
    x_words = WORD.findall(x)
    if not 1 <= len(x_words) <= 5 or x_words[0].lower() in _PRONOUN_STARTS:
        return None
    if len(WORD.findall(y)) > config.max_answer_words + 4:
        return None
    if re.match(r"(?i)(the|a|an)\s", x):
        x = x[0].lower() + x[1:]  # "The thymus" reads "the thymus" mid-question
    verb = "is" if m.group("verb") in ("is", "was") else "are"
    if m.group("verb") in ("was", "were"):
        verb = m.group("verb")
    return f"What {verb} {x}?", m.start("y"), m.end("y")


def pair_id(question: str, answer: str) -> str:
    return "gen-" + hashlib.sha1(f"{question}\0{answer}".encode()).hexdigest()[:12]


def norm_key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def make_pair(
    question: str, answer: str, chunk: Chunk, passage: str, kind: str
) -> tuple[QAPair, str] | None:
    """(pair, kind) asking `question` with `answer`, an exact span of `passage`; else None."""
    answer = answer.strip()
    if not answer or answer not in passage:  # never store an answer the passage does not hold
        return None
    return QAPair(pair_id(question, answer), question, (answer,), chunk.source, passage), kind


def find_span(answer: str, passage: str) -> str | None:
    """The exact span of `passage` matching `answer` ignoring case, spacing and end
    punctuation, or None."""
    words = re.findall(r"\w+", answer)
    if not words:
        return None
    pattern = r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\b"
    m = re.search(pattern, passage, re.I)
    return m.group() if m else None
