"""Quality metrics, registered with a direction and scored per question.

Each metric takes the whole list of items at once (so embedding-based ones batch) and returns
one score per item, or None where the metric does not apply (e.g. retrieval recall for a
closed-book strategy). EM and F1 follow the official SQuAD v1.1 evaluation script exactly.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.registry import Registry
from core.types import Context

DEFAULT_METRIC = "f1"  # the metric views rank by when none is named


@dataclass
class ScoringItem:
    """One answered question: what the strategy said, the gold answers, the contexts it used."""

    prediction: str
    golds: tuple[str, ...]
    contexts: list[Context] = field(default_factory=list)
    question: str = ""  # the judge reads it; string metrics do not
    task: Any = None  # the run's core.tasks.TaskSpec (format and style metrics read it)
    group: str = ""  # the paraphrase group of the question ("" = none): consistency reads it


@dataclass
class Metric:
    name: str
    label: str
    fn: Callable[[list[ScoringItem], Any], list[float | None]]
    higher_is_better: bool = True
    aggregation: str = "mean"
    needs_embedder: bool = False
    help: str = ""
    needs_judge: bool = False  # fn receives a judge (eval.judge.Judge) instead of the embedder
    default: bool = True  # scored when a run names no metrics (the judge costs generations)
    # Task kinds (core.tasks.TASK_KINDS) whose runs score it by default; () = every kind.
    tasks: tuple[str, ...] = ()
    # In a run of one of `tasks`, a column of the quality table's first view (not a detail
    # behind its column menu): what that task is judged by, beside the chosen metric.
    headline: bool = False


METRICS: Registry[Metric] = Registry("metric", unique=False)


def register_metric(
    name: str,
    label: str,
    *,
    higher_is_better: bool = True,
    needs_embedder: bool = False,
    help: str = "",
    needs_judge: bool = False,
    default: bool = True,
    tasks: tuple[str, ...] = (),
    headline: bool = False,
):
    """Decorator: add a batched metric `fn(items, embedder or judge) -> scores` to the registry.

    `default=False` keeps a metric out of runs that name no metrics (it is scored when asked);
    `tasks` limits the default to runs of those task kinds (format and style metrics);
    `headline` shows it in the quality table's first view in runs of those kinds.
    """

    def deco(fn):
        METRICS.add(
            name,
            Metric(
                name,
                label,
                fn,
                higher_is_better,
                "mean",
                needs_embedder,
                help,
                needs_judge,
                default,
                tuple(tasks),
                headline,
            ),
        )
        return fn

    return deco


def headline_metric(metric: str, task: str) -> bool:
    """Whether `metric` leads the quality table in a run of task kind `task` (its `headline`
    flag, for the kinds in its `tasks`)."""
    m = METRICS.get(metric)
    return bool(m and m.headline and task in m.tasks)


def default_metrics(task: str = "qa") -> list[str]:
    """The metrics a run of task kind `task` scores when its config names none."""
    return [m.name for m in METRICS.values() if m.default and (not m.tasks or task in m.tasks)]


# --- SQuAD v1.1 normalisation (copied in behaviour from the official evaluate-v1.1.py) --------


def normalize_answer(s: str) -> str:
    """Lower case, drop punctuation, articles (a/an/the) and extra whitespace."""

    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def f1_score(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


class UnicodeWords:
    """rouge-score's tokenizer made Unicode-aware: lower-cased (NFC) runs of letters and
    digits in any script. rouge-score keeps only [a-z0-9], so "Москва" or "café" lost every
    letter and scored 0; on ASCII text the tokens are exactly rouge-score's (its letters and
    digits, the underscore a separator), so its published results stand there."""

    _SEP = re.compile(r"[\W_]+")

    def tokenize(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFC", text).lower()
        return [t for t in self._SEP.split(text) if t]


@functools.cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    # No stemmer: answers are short spans, and the SQuAD metrics beside it do not stem either.
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=UnicodeWords())


def rouge_l(prediction: str, ground_truth: str) -> float:
    """ROUGE-L F-measure from Google's `rouge-score` package (its LCS scoring, no stemming),
    tokenized by `UnicodeWords` so that answers in any script score."""
    return float(_rouge_scorer().score(ground_truth, prediction)["rougeL"].fmeasure)


def _best_over_golds(fn: Callable[[str, str], float]):
    def batched(items: list[ScoringItem], _embedder: Any = None) -> list[float | None]:
        return [max(fn(it.prediction, g) for g in it.golds) for it in items]

    return batched


register_metric(
    "exact_match",
    "EM",
    help="1 if the normalised answer equals a normalised gold answer (SQuAD).",
)(_best_over_golds(exact_match_score))
register_metric(
    "f1", "F1", help="Token overlap F1 with the best gold answer (SQuAD normalisation)."
)(_best_over_golds(f1_score))
register_metric(
    "rouge_l",
    "ROUGE-L",
    help="Longest-common-subsequence F-measure with the best gold answer (rouge-score).",
)(_best_over_golds(rouge_l))


@register_metric(
    "semantic_similarity",
    "Semantic sim.",
    needs_embedder=True,
    help="Cosine similarity of answer and best gold answer embeddings (0 for an empty answer).",
)
def semantic_similarity(items: list[ScoringItem], embedder: Any) -> list[float | None]:
    texts: list[str] = []
    for it in items:
        texts.append(it.prediction)
        texts.extend(it.golds)
    vecs = embedder.encode(texts)
    out: list[float | None] = []
    i = 0
    for it in items:
        p, golds = vecs[i], vecs[i + 1 : i + 1 + len(it.golds)]
        i += 1 + len(it.golds)
        out.append(0.0 if not it.prediction.strip() else float(max(golds @ p)))
    return out


@register_metric(
    "groundedness",
    "Grounded",
    help="Share of the answer's normalised tokens found in the contexts the strategy used "
    "(none for closed-book strategies).",
)
def groundedness(items: list[ScoringItem], _embedder: Any = None) -> list[float | None]:
    out: list[float | None] = []
    for it in items:
        if not it.contexts:
            out.append(None)
            continue
        pred = normalize_answer(it.prediction).split()
        if not pred:
            out.append(0.0)
            continue
        support = set(normalize_answer(" ".join(c.text for c in it.contexts)).split())
        out.append(sum(t in support for t in pred) / len(pred))
    return out


def gold_rank(item: ScoringItem) -> int | None:
    """Rank (from 1) of the first retrieved chunk holding a gold answer as whole words; 0 when
    none holds one, None when the answer used no retrieved chunk (closed book, shots only)."""
    chunks = [c for c in item.contexts if c.kind == "chunk"]
    if not chunks:
        return None
    # Padded with spaces so "pharma" does not match inside "pharmacy".
    golds = [f" {n} " for n in map(normalize_answer, item.golds) if n]
    for rank, c in enumerate(chunks, start=1):
        hay = f" {normalize_answer(c.text)} "
        if any(g in hay for g in golds):
            return rank
    return 0


@register_metric(
    "recall_at_k",
    "Recall@k",
    help="1 if a gold answer appears in a retrieved chunk (retrieval strategies only).",
)
def recall_at_k(items: list[ScoringItem], _embedder: Any = None) -> list[float | None]:
    ranks = map(gold_rank, items)
    return [None if r is None else float(r > 0) for r in ranks]


@register_metric(
    "mrr",
    "MRR",
    help="1 / the rank of the first retrieved chunk holding a gold answer, 0 if none does "
    "(mean reciprocal rank; retrieval strategies only).",
)
def mean_reciprocal_rank(items: list[ScoringItem], _embedder: Any = None) -> list[float | None]:
    ranks = map(gold_rank, items)
    return [None if r is None else (1.0 / r if r else 0.0) for r in ranks]


@register_metric(
    "judge",
    "Judge",
    needs_judge=True,
    default=False,
    help="1 if a judge model grades the answer correct against the gold answers, 0 if not "
    "(None when its reply cannot be read); its rationale is stored per question.",
)
def judge_metric(items: list[ScoringItem], judge: Any) -> list[float | None]:
    return judge.grade(items)


def score_items(
    items: list[ScoringItem],
    names: list[str] | None = None,
    embedder: Any = None,
    judge: Any = None,
) -> dict[str, list[float | None]]:
    """Every requested metric (default: the default ones) over the items."""
    result = {}
    for name in names or default_metrics():
        metric = METRICS[name]
        if metric.needs_embedder and embedder is None:
            raise ValueError(f"metric {name!r} needs an embedder")
        if metric.needs_judge and judge is None:
            raise ValueError(f"metric {name!r} needs a judge")
        resource = judge if metric.needs_judge else embedder
        result[name] = metric.fn(items, resource) if items else []
    return result


def metric_label(metric: str) -> str:
    """The metric's label for people (its registered label; an unknown name as it is)."""
    return METRICS[metric].label if metric in METRICS else metric
