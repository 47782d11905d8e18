"""Why each strategy lost: every test question placed in a cell of retrieval x correctness.

For a strategy that retrieves, a question is
- `retrieved_right`: the gold passage was in front of the model and it answered right;
- `retrieved_wrong`: a *reading* failure (a stronger generator or RAFT training helps);
- `missed_right`: the passage was not retrieved but the answer was right (the model knew);
- `missed_wrong`: a *retrieval* failure (chunking, k or the embedder help).
For a closed-book strategy the same grid runs over what the base model already knew:
`known_right`, `known_wrong` (a regression), `new_right` (learned), `new_wrong`.

"Right" is a threshold on one metric (`VerdictConfig.right_metric` >= `right_threshold`).
"Retrieved" asks whether the question's gold passage is among the chunks the strategy used:
the pair's own `passage` (found inside a chunk, or a chunk inside it), else, for pairs
without one, a chunk holding a gold answer as whole words (recall@k's test). Everything here
works on stored answers and the stored gold passages: nothing is generated or re-read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from core.config import ConfigBase, check, option
from core.tasks import TaskSpec, gold_phrases
from core.types import Context, Corpus, QAPair
from eval.metrics import METRICS, normalize_answer
from strategies.lora.data import oracle_passage

RETRIEVAL_CELLS = ("retrieved_right", "retrieved_wrong", "missed_right", "missed_wrong")
CLOSED_BOOK_CELLS = ("known_right", "known_wrong", "new_right", "new_wrong")
CELL_LABELS = {
    "retrieved_right": "passage retrieved, right",
    "retrieved_wrong": "passage retrieved, wrong (reading failure)",
    "missed_right": "not retrieved, right (the model knew)",
    "missed_wrong": "not retrieved, wrong (retrieval failure)",
    "known_right": "known to the base model, right",
    "known_wrong": "known to the base model, wrong (regression)",
    "new_right": "new to the base model, right (learned)",
    "new_wrong": "new to the base model, wrong",
}


@dataclass
class VerdictConfig(ConfigBase):
    """How the verdict judges answers, the test set's power and the generator's ceiling."""

    right_metric: str = option(
        "f1", "Metric that decides whether an answer is right (with right_threshold)."
    )
    right_threshold: float = option(0.5, "An answer is right when right_metric >= this.")
    oracle: bool = option(
        True,
        "Oracle reading: answer every test question with its gold passage in the RAG layout "
        "(the ceiling of any retrieval strategy with this generator). Runs only when gold "
        "passages exist; its cost is counted apart from the strategies.",
    )
    low_ceiling: float = option(
        0.5,
        "An oracle-reading score (right_metric) below this means the generator, not the "
        "strategy, limits every score; the verdict says so.",
    )
    power_target: float = option(
        0.05, "The difference (in right_metric) whose required number of questions is shown."
    )

    def validate(self) -> None:

        check(
            self.right_metric in METRICS and METRICS[self.right_metric].higher_is_better,
            f"right_metric must be a registered higher-is-better metric: {', '.join(METRICS)}",
        )
        check(0.0 <= float(self.right_threshold) <= 1.0, "right_threshold must be in [0, 1]")
        check(0.0 <= float(self.low_ceiling) <= 1.0, "low_ceiling must be in [0, 1]")
        check(0.0 < float(self.power_target) <= 1.0, "power_target must be in (0, 1]")


# --- gold passages ------------------------------------------------------------------------------


@dataclass
class GoldPassage:
    """The passage that answers one test question, and how it was found: "passage" (the pair's
    own field), "answer" (the first chunk holding a gold answer) or "none" (not in the corpus)."""

    text: str | None
    source: str | None
    found_by: str

    def to_dict(self) -> dict:
        return asdict(self)


def gold_passages(
    pairs: Iterable[QAPair], corpus: Corpus, task: TaskSpec | None = None
) -> dict[str, GoldPassage]:
    """qid -> gold passage of each pair (the oracle RAFT training uses, `oracle_passage`)."""

    out = {}
    for p in pairs:
        ctx = oracle_passage(p, corpus, task)
        how = "passage" if p.passage else ("answer" if ctx is not None else "none")
        out[p.id] = GoldPassage(ctx.text if ctx else None, ctx.source if ctx else p.source, how)
    return out


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def passage_retrieved(
    gold: GoldPassage | None,
    golds: Iterable[str],
    contexts: Iterable[Context],
    task: TaskSpec | None = None,
) -> bool | None:
    """Whether the gold passage is among the retrieved chunks (None: the answer used none).

    With the pair's own passage: it lies inside a chunk, or a chunk inside it (a passage longer
    than a chunk). Otherwise: a chunk holds a gold answer as whole words, as recall@k counts,
    since any chunk holding the answer puts it in the model's hands (a JSON gold of a format
    `task` by the text of its fields, TaskSpec.answer_phrases).
    """

    chunks = [c for c in contexts if c.kind == "chunk"]
    if not chunks:
        return None
    if gold is not None and gold.found_by == "passage" and gold.text:
        g = _squash(gold.text)
        return any(g in _squash(c.text) or _squash(c.text) in g for c in chunks)
    hay = [f" {normalize_answer(c.text)} " for c in chunks]
    needles = [f" {n} " for n in map(normalize_answer, gold_phrases(task, golds)) if n]
    return any(n in h for n in needles for h in hay)


# --- cells --------------------------------------------------------------------------------------


@dataclass
class Cells:
    """One strategy's questions in the four cells: `qids[cell]` lists them, `kind` is
    "retrieval" or "closed_book"."""

    strategy: str
    kind: str
    qids: dict[str, list[str]] = field(default_factory=dict)

    def count(self, cell: str) -> int:
        return len(self.qids.get(cell, []))

    @property
    def n(self) -> int:
        return sum(len(v) for v in self.qids.values())

    @property
    def misses(self) -> int:
        """Questions answered wrong."""
        return sum(self.count(c) for c in self.qids if c.endswith("_wrong"))

    def share(self, cell: str, of: str = "misses") -> float | None:
        """`cell`'s share of the misses ("misses") or of every question ("all")."""
        total = self.misses if of == "misses" else self.n
        return self.count(cell) / total if total else None

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "kind": self.kind,
            "n": self.n,
            "counts": {c: self.count(c) for c in self.qids},
            "qids": self.qids,
        }


def retrieval_cells(
    strategy: str,
    scores: Mapping[str, float],
    retrieved: Mapping[str, bool | None],
    threshold: float,
) -> Cells:
    """Cells of a retrieval strategy from {qid: score} and {qid: gold passage retrieved}.
    Questions without a score or a retrieval flag are left out."""
    qids: dict[str, list[str]] = {c: [] for c in RETRIEVAL_CELLS}
    for q, s in scores.items():
        hit = retrieved.get(q)
        if hit is None:
            continue
        right = s >= threshold
        cell = ("retrieved_" if hit else "missed_") + ("right" if right else "wrong")
        qids[cell].append(q)
    return Cells(strategy, "retrieval", qids)


def closed_book_cells(
    strategy: str, scores: Mapping[str, float], base: Mapping[str, float], threshold: float
) -> Cells:
    """Cells of a closed-book strategy against the base model's scores on the same questions."""
    qids: dict[str, list[str]] = {c: [] for c in CLOSED_BOOK_CELLS}
    for q, s in scores.items():
        if q not in base:
            continue
        known = base[q] >= threshold
        cell = ("known_" if known else "new_") + ("right" if s >= threshold else "wrong")
        qids[cell].append(q)
    return Cells(strategy, "closed_book", qids)


# --- what to try next ---------------------------------------------------------------------------


def advice(
    cells: Cells,
    ceiling: float | None = None,
    metric_label: str = "F1",
    corpus_pairs: bool = False,
) -> str:
    """One or two sentences from the cells: what limits this strategy and what to try next.

    `ceiling` is the oracle-reading score on the same metric (None when not measured);
    `corpus_pairs`: the strategy already trained on corpus pairs (`lora.data=pairs+corpus`)."""
    s = cells.strategy
    if cells.n == 0:
        return f"{s}: no question could be placed."
    if cells.misses == 0:
        return f"{s} answered all {cells.n} questions right."
    if cells.kind == "retrieval":
        reading, retrieval = cells.share("retrieved_wrong"), cells.share("missed_wrong")
        if reading >= retrieval:
            text = (
                f"{reading:.0%} of {s}'s misses are reading failures with the passage in hand: "
                "a stronger generator or RAFT training (lora+rag), not a better index."
            )
        else:
            text = (
                f"{retrieval:.0%} of {s}'s misses are retrieval failures (the gold passage was "
                "not retrieved): try a larger top_k, other chunk sizes or another embedder."
            )
        if ceiling is not None:
            text += (
                f" Reading the gold passage, this generator scores {metric_label} {ceiling:.2f}."
            )
        knew = cells.count("missed_right")
        if knew:
            text += f" {knew} right answers came without the passage (the model knew)."
        return text
    learned, lost = cells.count("new_right"), cells.count("known_wrong")
    new = learned + cells.count("new_wrong")
    text = f"{s} answered {learned} of {new} questions the base model missed"
    text += f" and lost {lost} it knew (regressions)." if lost else " with no regression."
    if new and learned / new < 0.1:
        text += (
            " Closed book it barely adds knowledge, even trained on several phrasings of each "
            "corpus fact: retrieval is the lever."
            if corpus_pairs
            else " Closed book it barely adds knowledge: retrieval, or fine-tuning on several "
            "phrasings of each fact (lora.data=pairs+corpus), is the lever."
        )
    return text
