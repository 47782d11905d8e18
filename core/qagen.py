"""Question/answer pairs generated from the corpus, for corpora that come without a Q/A file.

Two methods:
- "cloze" (default, no model): informative sentences become fill-in-the-blank questions, or
  "What is X?" for simple "X is a/the Y." sentences. The answer is always an exact span of the
  sentence, and the sentence is kept as the pair's `passage`.
- "model": the configured generator reads a chunk and writes one question and a short answer.
  Only pairs whose answer is found in the chunk are kept (the stored answer is the chunk's own
  span); everything else is counted by reason. A weak model may keep almost nothing.

Pairs are stored as JSONL with id, question, answers, source and passage (`save_qa_jsonl`) and
read back with `core.qa.load_qa`. Rows edited in a table go through `records_to_pairs`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import ConfigBase, ModelConfig, check, option
from core.files import write_text_atomic
from core.types import Chunk, Corpus, QAPair

ProgressFn = Callable[[int, int], None]  # (done, total)

METHODS = ("cloze", "model")
BLANK = "_____"


@dataclass
class QAGenConfig(ConfigBase):
    """How question/answer pairs are generated from a corpus."""

    method: str = option(
        "cloze",
        "'cloze': fill-in-the-blank questions cut from corpus sentences (no model, "
        "deterministic); 'model': the generator writes a question and answer per passage, and "
        "only answers found in the passage are kept.",
    )
    n: int = option(100, "Most pairs generated in total.")
    per_chunk: int = option(2, "Most pairs generated from one chunk.")
    seed: int = option(0, "Seed choosing sentences, answer spans and chunks.")
    min_sentence_words: int = option(6, "Shortest sentence (in words) used for a question.")
    max_sentence_words: int = option(40, "Longest sentence (in words) used for a question.")
    max_answer_words: int = option(8, "Longest answer (in words) kept.")
    wh_questions: bool = option(
        True, "Rewrite simple 'X is a/the Y.' sentences as 'What is X?' instead of a blank."
    )
    max_prompts: int = option(
        60, "model method: most chunks shown to the generator (one prompt each)."
    )
    max_new_tokens: int = option(64, "model method: most tokens generated per prompt.")

    def validate(self) -> None:
        check(self.method in METHODS, f"method must be one of {', '.join(METHODS)}")
        check(int(self.n) >= 1, "n must be >= 1")
        check(int(self.per_chunk) >= 1, "per_chunk must be >= 1")
        check(int(self.min_sentence_words) >= 3, "min_sentence_words must be >= 3")
        check(
            int(self.max_sentence_words) >= int(self.min_sentence_words),
            "max_sentence_words must be >= min_sentence_words",
        )
        check(int(self.max_answer_words) >= 1, "max_answer_words must be >= 1")
        check(int(self.max_prompts) >= 1, "max_prompts must be >= 1")
        check(1 <= int(self.max_new_tokens) <= 1024, "max_new_tokens must be in 1..1024")


@dataclass
class QAGenResult:
    """Generated pairs and what happened: `stats` has considered, kept and rejected (by reason)."""

    pairs: list[QAPair]
    stats: dict[str, Any] = field(default_factory=dict)


# --- text heuristics ------------------------------------------------------------------------

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
_WORD = re.compile(r"[A-Za-z0-9][\w'’\-–]*")
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


def _sentence_problem(s: str, config: QAGenConfig) -> str | None:
    """Why a sentence is not used, or None when it is."""
    if re.match(r"^\s*(#|[-*+•|>]|\d+[.)]\s)", s):
        return "heading_or_list"
    if not s.endswith((".", "!")) or s.endswith("..."):
        return "not_a_sentence"  # headings, captions, questions, cut-off chunk edges
    if not re.match(r"^[\"'(]?[A-Z]", s):
        return "not_a_sentence"
    words = _WORD.findall(s)
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


def _candidates(s: str, config: QAGenConfig) -> list[tuple[int, str, int, int]]:
    """(rank, kind, start, end) answer spans in sentence `s`; lower rank is better."""
    out: list[tuple[int, str, int, int]] = []
    first_end = m.end() if (m := _WORD.search(s)) else 0
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
    words = list(_WORD.finditer(body))
    k = len(words)
    while k > 0 and _content(words[k - 1].group()) and len(words) - k < 3:
        k -= 1
    if k < len(words) and k > 0:
        out.append((2, "last_phrase", words[k].start(), words[-1].end()))
    kept = []
    for rank, kind, a, b in out:
        n_words = len(_WORD.findall(s[a:b]))
        if 1 <= n_words <= config.max_answer_words and b - a < len(s) * 0.7:
            kept.append((rank, kind, a, b))
    return kept


def _wh_question(s: str, config: QAGenConfig) -> tuple[str, int, int] | None:
    """'X is a Y.' -> ('What is X?', span of 'a Y'), only when X is a short, plain subject."""
    m = _IS_A.match(s)
    if not m:
        return None
    x, y = m.group("x"), m.group("y")
    x_words = _WORD.findall(x)
    if not 1 <= len(x_words) <= 5 or x_words[0].lower() in _PRONOUN_STARTS:
        return None
    if len(_WORD.findall(y)) > config.max_answer_words + 4:
        return None
    if re.match(r"(?i)(the|a|an)\s", x):
        x = x[0].lower() + x[1:]  # "The thymus" reads "the thymus" mid-question
    verb = "is" if m.group("verb") in ("is", "was") else "are"
    if m.group("verb") in ("was", "were"):
        verb = m.group("verb")
    return f"What {verb} {x}?", m.start("y"), m.end("y")


def _pair_id(question: str, answer: str) -> str:
    return "gen-" + hashlib.sha1(f"{question}\0{answer}".encode()).hexdigest()[:12]


def _norm_key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


# --- cloze ----------------------------------------------------------------------------------


def _cloze(corpus: Corpus, config: QAGenConfig, progress: ProgressFn | None) -> QAGenResult:
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
            key = _norm_key(s)
            if key in seen_sentences:
                continue  # chunks overlap: a sentence is considered once
            seen_sentences.add(key)
            considered += 1
            why = _sentence_problem(s, config)
            if why:
                rejected[why] += 1
                continue
            made = _cloze_pair(s, chunk, config, rng)
            if made is None:
                rejected["no_answer_span"] += 1
            elif _norm_key(made[0].question) in seen_questions:
                rejected["duplicate"] += 1
            else:
                seen_questions.add(_norm_key(made[0].question))
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
        wh = _wh_question(s, config)
        if wh is not None:
            question, a, b = wh
            return _make_pair(question, s[a:b], chunk, s, "what_is")
    cands = _candidates(s, config)
    if not cands:
        return None
    best = min(r for r, *_ in cands)
    _, kind, a, b = rng.choice([c for c in cands if c[0] == best])
    question = f"Fill in the blank: {s[:a]}{BLANK}{s[b:]}"
    return _make_pair(question, s[a:b], chunk, s, kind)


def _make_pair(
    question: str, answer: str, chunk: Chunk, passage: str, kind: str
) -> tuple[QAPair, str] | None:
    answer = answer.strip()
    if not answer or answer not in passage:  # never store an answer the passage does not hold
        return None
    return QAPair(_pair_id(question, answer), question, (answer,), chunk.source, passage), kind


# --- model ----------------------------------------------------------------------------------

MODEL_PROMPT = (
    "Read the passage and write one question that it answers, with a short answer copied "
    "word for word from the passage. Reply in exactly this format:\n"
    "Question: <the question>\nAnswer: <the answer>\n\nPassage:\n{passage}"
)
_QA_REPLY = re.compile(r"question\s*:\s*(?P<q>.+?)\s*\n+\s*answer\s*:\s*(?P<a>[^\n]+)", re.I | re.S)


def find_span(answer: str, passage: str) -> str | None:
    """The exact span of `passage` matching `answer` ignoring case, spacing and end
    punctuation, or None."""
    words = re.findall(r"\w+", answer)
    if not words:
        return None
    pattern = r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\b"
    m = re.search(pattern, passage, re.I)
    return m.group() if m else None


def parse_reply(text: str) -> tuple[str, str] | None:
    """(question, answer) from a 'Question: ... / Answer: ...' reply, or None."""
    m = _QA_REPLY.search(text)
    if not m:
        return None
    q = " ".join(m.group("q").split())
    a = m.group("a").strip().strip("\"'").strip()
    return (q, a) if q and a else None


def _model(
    corpus: Corpus, config: QAGenConfig, models: ModelConfig, progress: ProgressFn | None
) -> QAGenResult:
    from core.models import load_generator

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
            elif len(_WORD.findall(span)) > config.max_answer_words:
                rejected["answer_too_long"] += 1
            elif _norm_key(span) == _norm_key(chunk.text) or _norm_key(span) in _norm_key(question):
                rejected["answer_in_question"] += 1
            elif _norm_key(question) in seen:
                rejected["duplicate"] += 1
            else:
                seen.add(_norm_key(question))
                pairs.append(
                    QAPair(_pair_id(question, span), question, (span,), chunk.source, chunk.text)
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


def generate_qa(
    corpus: Corpus,
    config: QAGenConfig | None = None,
    models: ModelConfig | None = None,
    progress: ProgressFn | None = None,
) -> QAGenResult:
    """Question/answer pairs from `corpus` (see QAGenConfig). Every answer is an exact span of
    the pair's `passage`; `source` is the document name.

    `models` is needed for method "model" (its generator writes the pairs). `progress(done,
    total)` is called per chunk (cloze) or per batch of prompts (model). Returns a QAGenResult
    whose `stats` says how many candidates were considered, kept and rejected, by reason; an
    empty `pairs` list is a valid result (the caller decides whether that is an error).
    """
    config = config or QAGenConfig()
    if config.method == "model":
        if models is None:
            raise ValueError("QA generation with method 'model' needs a ModelConfig (models=...)")
        return _model(corpus, config, models, progress)
    return _cloze(corpus, config, progress)


# --- several phrasings of every fact (training data for a fair fine-tune) --------------------

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
    if config.wh_questions and (wh := _wh_question(sentence, config)) is not None:
        made = _make_pair(wh[0], sentence[wh[1] : wh[2]], chunk, sentence, "what_is")
        if made:
            out.append(made[0])
    spans = sorted({(r, a, b) for r, _, a, b in _candidates(sentence, config)})
    for i, (_, a, b) in enumerate(spans):
        if len(out) >= phrasings:
            break
        blanked = f"{sentence[:a]}{BLANK}{sentence[b:]}"
        template = CLOZE_TEMPLATES[i % len(CLOZE_TEMPLATES)]
        question = template.format(blanked=blanked, title=_title(chunk.source))
        made = _make_pair(question, sentence[a:b], chunk, sentence, "cloze")
        if made:
            out.append(made[0])
    # Fewer spans than phrasings: the best span again under the other templates.
    for template in CLOZE_TEMPLATES[1:]:
        if len(out) >= phrasings or not spans:
            break
        _, a, b = spans[0]
        blanked = f"{sentence[:a]}{BLANK}{sentence[b:]}"
        question = template.format(blanked=blanked, title=_title(chunk.source))
        made = _make_pair(question, sentence[a:b], chunk, sentence, "cloze")
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

        from core.qa import SimilarQuestions, content_words

        self.jaccard = jaccard
        self._texts = {_norm_key(p.question) for p in pairs}
        self._passages = {_norm_key(p.passage) for p in pairs if p.passage}
        # An index, not a scan of every held-out question per generated pair (quadratic).
        distinct = {w for w in map(content_words, (p.question for p in pairs)) if w}
        self._index = SimilarQuestions(Counter(w for ws in distinct for w in ws), jaccard)
        for key, ws in enumerate(distinct):
            self._index.add(key, ws)

    def leaks(self, pair: QAPair) -> bool:
        """Whether `pair` duplicates a held-out question or comes from a held-out passage."""
        from core.qa import content_words

        if _norm_key(pair.question) in self._texts:
            return True
        if pair.passage and _norm_key(pair.passage) in self._passages:
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
            key = _norm_key(s)
            if key in seen_sentences:
                continue  # chunks overlap: a sentence is one fact, once
            seen_sentences.add(key)
            why = _sentence_problem(s, config)
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
                elif _norm_key(p.question) in seen_questions:
                    rejected["duplicate"] += 1
                else:
                    seen_questions.add(_norm_key(p.question))
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
            elif _norm_key(p.answers[0]) in _norm_key(q):
                rejected["gives_the_answer"] += 1
            elif _norm_key(q) == _norm_key(p.question):
                rejected["unchanged"] += 1
            else:
                new = QAPair(_pair_id(q, p.answers[0]), q, p.answers, p.source, p.passage)
                if held_out.leaks(new):
                    rejected["held_out"] += 1
                else:
                    kept.append(new)
                    good += 1
        if start == 0 and good * 2 < len(part):
            return [], {"capable": False, "kept": 0, "rejected": dict(rejected)}
    return kept, {"capable": True, "kept": len(kept), "rejected": dict(sorted(rejected.items()))}


# --- storage and editing --------------------------------------------------------------------


def save_qa_jsonl(pairs: list[QAPair], path: str | Path) -> Path:
    """Write pairs as JSONL (id, question, answers, source, passage); `core.qa.load_qa` reads
    it back. Returns the path."""
    lines = []
    for p in pairs:
        rec: dict[str, Any] = {"id": p.id, "question": p.question, "answers": list(p.answers)}
        if p.source:
            rec["source"] = p.source
        if p.passage:
            rec["passage"] = p.passage
        lines.append(json.dumps(rec, ensure_ascii=False))
    return write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


ANSWER_SEP = " | "


class QARecordError(ValueError):
    """Edited rows cannot be used; the message lists the rows (1-based) and the problems."""


def pairs_to_records(pairs: list[QAPair]) -> list[dict[str, Any]]:
    """Flat rows for an editable table: id, question, answer (alternatives joined by ' | '),
    source, passage, grounded (the reference answer is found in the passage, ignoring case,
    spacing and punctuation; None without a passage)."""
    return [
        {
            "id": p.id,
            "question": p.question,
            "answer": ANSWER_SEP.join(p.answers),
            "source": p.source or "",
            "passage": p.passage or "",
            "grounded": (find_span(p.answers[0], p.passage) is not None) if p.passage else None,
        }
        for p in pairs
    ]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        return ""
    return str(value).strip()


def check_records(records: list[dict[str, Any]]) -> list[str]:
    """Problems in edited rows, one message each ('row 3: ...'), without raising. Rows with
    neither question nor answer are blank and ignored."""
    problems: list[str] = []
    ids: dict[str, int] = {}
    for i, rec in enumerate(records, 1):
        question, answer = _cell(rec.get("question")), _cell(rec.get("answer"))
        if not question and not answer:
            continue
        if not question:
            problems.append(f"row {i}: the question is empty")
        if not [a for a in answer.split(ANSWER_SEP.strip()) if a.strip()]:
            problems.append(f"row {i}: the answer is empty")
        pid = _cell(rec.get("id"))
        if pid and pid in ids:
            problems.append(f"row {i}: id {pid!r} is also used by row {ids[pid]}")
        ids.setdefault(pid, i)
        passage = _cell(rec.get("passage"))
        first = answer.split(ANSWER_SEP.strip())[0].strip()
        if passage and first and find_span(first, passage) is None:
            problems.append(f"row {i}: the answer {first!r} is not in its passage")
    return problems


def records_to_pairs(
    records: list[dict[str, Any]], *, allow_ungrounded: bool = False
) -> list[QAPair]:
    """QAPairs from edited rows (as made by `pairs_to_records`; `answer` may also be a list).

    Blank rows (no question and no answer) are dropped. A row with only one of them, or two
    rows with the same id, raise QARecordError listing every problem. A reference answer no
    longer found in its passage is an error too, unless `allow_ungrounded` (the UI shows
    `check_records` and lets the user confirm); such a pair keeps its passage. Rows without
    an id get a generated one.
    """
    problems = check_records(
        [
            {**r, "answer": ANSWER_SEP.join(r["answer"])}
            if isinstance(r.get("answer"), list)
            else r
            for r in records
        ]
    )
    if allow_ungrounded:
        problems = [p for p in problems if "is not in its passage" not in p]
    if problems:
        raise QARecordError("; ".join(problems))
    pairs = []
    for rec in records:
        raw = rec.get("answer")
        answers = (
            [_cell(a) for a in raw]
            if isinstance(raw, list)
            else _cell(raw).split(ANSWER_SEP.strip())
        )
        answers = list(dict.fromkeys(a.strip() for a in answers if a and a.strip()))
        question = _cell(rec.get("question"))
        if not question and not answers:
            continue
        pid = _cell(rec.get("id")) or _pair_id(question, answers[0])
        pairs.append(
            QAPair(
                pid,
                question,
                tuple(answers),
                _cell(rec.get("source")) or None,
                _cell(rec.get("passage")) or None,
            )
        )
    return pairs


def generated_qa_file(
    corpus: Corpus, config: QAGenConfig, models: ModelConfig | None, folder: str | Path
) -> Path:
    """Generate pairs for `corpus` into `folder`/<fingerprint>-<settings hash>.jsonl, or reuse
    that file when it exists (same corpus, same settings). Raises ValueError when nothing
    could be generated, with the rejection counts."""
    settings = config.to_dict()
    if config.method == "model" and models is not None:
        settings["generator"] = models.generator
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    path = Path(folder) / f"{corpus.fingerprint or 'corpus'}-{key}.jsonl"
    if path.is_file():
        return path
    result = generate_qa(corpus, config, models)
    if not result.pairs:
        raise ValueError(
            f"no question/answer pairs could be generated from the corpus ({result.stats}); "
            "give a Q/A file or change the generation settings"
        )
    return save_qa_jsonl(result.pairs, path)
