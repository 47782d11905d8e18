"""General-knowledge retention: what a strategy still knows outside the corpus, against the
closed-book reference strategy (the base model), scored from stored answers."""

from __future__ import annotations

from pathlib import Path

from core.qa import load_qa
from core.types import QAPair
from eval.config import RunConfig
from eval.metrics import ScoringItem, normalize_answer, score_items
from eval.records import Retention
from eval.stats.intervals import bootstrap_ci
from eval.store.runs import RunStore

GENERAL_SET = Path(__file__).resolve().parents[1] / "data" / "general_knowledge.jsonl"


def load_general_set(n: int) -> list[QAPair]:
    """The first `n` questions of the shipped general-knowledge set (eval/data)."""
    if n <= 0:
        return []
    return load_qa(GENERAL_SET)[:n]


def contains_gold(answer: str, golds) -> float:
    """1.0 when a gold answer appears, as whole words, in the answer (both SQuAD-normalised).

    The retention score: F1 would reward a model that merely learned to answer tersely, and
    fine-tuning on short answers does exactly that; containment asks whether the fact is there.
    """
    text = f" {normalize_answer(answer)} "
    return float(any(g and f" {g} " in text for g in map(normalize_answer, golds)))


def retention_scores(
    general: list[QAPair], texts: list[str], resamples: int, seed: int
) -> Retention:
    """Containment (the retention score) and F1 of `texts` answering `general`, with intervals,
    per-question scores and the answers themselves (kept for rescoring)."""
    items = [ScoringItem(t, p.answers, []) for p, t in zip(general, texts, strict=True)]
    per = score_items(items, ["f1"], None)
    per["contains"] = [contains_gold(t, p.answers) for p, t in zip(general, texts, strict=True)]
    ci = {m: bootstrap_ci(v, n_resamples=resamples, seed=seed) for m, v in per.items()}
    return Retention(
        metric="contains",
        n=len(general),
        score=ci["contains"],
        f1=ci["f1"],
        per_question={p.id: v for p, v in zip(general, per["contains"], strict=True)},
        answers={p.id: t for p, t in zip(general, texts, strict=True)},
    )


def retention(
    general: list[QAPair], texts: list[str], base: Retention, resamples: int, seed: int
) -> Retention:
    """This strategy's general-knowledge score, the base model's, and the change."""
    mine = retention_scores(general, texts, resamples, seed)
    # General questions the base model got right and this one does not.
    mine.forgotten = [
        qid
        for qid, v in base.per_question.items()
        if (v or 0) >= 0.5 and (mine.per_question.get(qid) or 0) < 0.5
    ]
    mine.base = base.score
    mine.delta = (mine.mean or 0.0) - (base.mean or 0.0)
    return mine


def rescore_retention(store: RunStore, run_id: str) -> bool:
    """Score the stored general-knowledge answers again (after a change of the retention
    score), without generating. Returns False when the run measured no retention."""
    run = store.get_run(run_id)
    base = Retention.from_dict(run.meta.retention_base)
    if base is None:
        return False
    config = RunConfig.from_dict(run.config)
    resamples, seed = config.bootstrap_resamples, config.split.seed
    by_id = {p.id: p for p in load_qa(GENERAL_SET)}

    def scored(answers: dict[str, str], against: Retention | None) -> Retention:
        ids = [i for i in answers if i in by_id]
        general, texts = [by_id[i] for i in ids], [answers[i] for i in ids]
        if against is None:
            return retention_scores(general, texts, resamples, seed)
        return retention(general, texts, against, resamples, seed)

    new_base = scored(base.answers, None)
    store.update_run(run_id, retention_base=new_base.to_dict())
    for r in run.results:
        if r.extras.retention is not None:
            answers = r.extras.retention.answers
            store.update_extras(run_id, r.strategy, retention=scored(answers, new_base))
    return True
