"""Agreement between the judge and an answer-matching metric (token F1 by default).

Each is cut at a threshold into right/wrong; the counts, Cohen's kappa and the answers where the
two part ways tell a user whether the judge can be trusted on this corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Disagreement:
    """One answer the judge and F1 grade differently."""

    strategy: str
    qid: str
    judge: float
    f1: float
    question: str = ""
    answer: str = ""
    golds: list[str] = field(default_factory=list)
    rationale: str = ""


@dataclass
class Agreement:
    """How often the judge and F1 (each cut at `threshold`) call an answer right together.

    `kappa` is Cohen's kappa (agreement beyond chance); None when chance agreement is total
    (both metrics gave every answer the same call), where kappa is undefined.
    """

    n: int = 0
    both_right: int = 0
    both_wrong: int = 0
    judge_only: int = 0  # judge says right, F1 says wrong
    f1_only: int = 0  # F1 says right, judge says wrong
    unparsed: int = 0  # answers without a judge grade, left out of the counts
    threshold: float = 0.5
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        return (self.both_right + self.both_wrong) / self.n if self.n else None

    @property
    def kappa(self) -> float | None:
        if not self.n:
            return None
        po = (self.both_right + self.both_wrong) / self.n
        judge_yes = (self.both_right + self.judge_only) / self.n
        f1_yes = (self.both_right + self.f1_only) / self.n
        pe = judge_yes * f1_yes + (1 - judge_yes) * (1 - f1_yes)
        return None if pe >= 1.0 else (po - pe) / (1 - pe)


@dataclass
class GradedAnswer:
    """What `judge_agreement` reads for one stored answer."""

    strategy: str
    qid: str
    judge: float | None
    f1: float | None
    question: str = ""
    answer: str = ""
    golds: list[str] = field(default_factory=list)
    rationale: str = ""


def judge_agreement(rows: list[GradedAnswer], threshold: float = 0.5) -> Agreement:
    """Counts of agreement between the judge and F1 over `rows`, and the disagreements.

    An answer is 'right' for a metric when its score reaches `threshold`. Rows without an F1
    score are skipped; rows without a judge grade are counted as unparsed.
    """
    out = Agreement(threshold=threshold)
    for r in rows:
        if r.f1 is None:
            continue
        if r.judge is None:
            out.unparsed += 1
            continue
        j, f = r.judge >= threshold, r.f1 >= threshold
        out.n += 1
        if j and f:
            out.both_right += 1
        elif not j and not f:
            out.both_wrong += 1
        else:
            if j:
                out.judge_only += 1
            else:
                out.f1_only += 1
            out.disagreements.append(
                Disagreement(
                    r.strategy, r.qid, r.judge, r.f1, r.question, r.answer, r.golds, r.rationale
                )
            )
    return out


def graded_answers(answers: list[Any], metric: str = "f1") -> list[GradedAnswer]:
    """Stored answers (with `scores` and `details`) as the rows `judge_agreement` reads."""
    rows = []
    for a in answers:
        if "judge" not in a.scores:
            continue  # the judge was not scored for this strategy
        detail = (getattr(a, "details", None) or {}).get("judge") or {}
        rows.append(
            GradedAnswer(
                a.strategy,
                a.qid,
                a.scores.get("judge"),
                a.scores.get(metric),
                a.question,
                a.answer.text,
                list(a.golds),
                detail.get("rationale", ""),
            )
        )
    return rows


def agreement_by_strategy(
    answers: list[Any], threshold: float = 0.5, metric: str = "f1"
) -> dict[str, Agreement]:
    """Agreement of the judge with `metric` per strategy, plus every strategy pooled under
    "all"; empty when no answer was judged."""
    rows = graded_answers(answers, metric)
    if not rows:
        return {}
    out = {"all": judge_agreement(rows, threshold)}
    for name in dict.fromkeys(r.strategy for r in rows):
        out[name] = judge_agreement([r for r in rows if r.strategy == name], threshold)
    return out
