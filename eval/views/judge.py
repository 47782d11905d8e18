"""The judge as tables: its agreement with F1, the disagreements, and what judging cost.

Built from stored results only (scores, rationales in the answers' details, the judge's cost in
each result's extras); the Compare page, the HTML report and the CLI show the same frames.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from eval.judge import JudgeCost
from eval.stats.agreement import Agreement, agreement_by_strategy
from eval.store.rows import Run

AGREEMENT_COLUMNS = [
    "Strategy",
    "Judged",
    "Agree",
    "Cohen's kappa",
    "Judge right, F1 wrong",
    "F1 right, judge wrong",
    "Unreadable",
]
COST_COLUMNS = ["Strategy", "Judge model", "Verdicts", "Unreadable", "Prompt tok", "Out tok", "s"]


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def agreement_frame(agreements: dict[str, Agreement]) -> pd.DataFrame:
    """One row per strategy ("all" first): judged answers, share agreeing, kappa, the two kinds
    of disagreement and the unreadable verdicts, as display strings."""
    rows = []
    for name, a in agreements.items():
        rows.append(
            {
                "Strategy": name,
                "Judged": a.n,
                "Agree": _pct(a.share),
                "Cohen's kappa": "—" if a.kappa is None else f"{a.kappa:.2f}",
                "Judge right, F1 wrong": a.judge_only,
                "F1 right, judge wrong": a.f1_only,
                "Unreadable": a.unparsed,
            }
        )
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def disagreement_frame(agreement: Agreement) -> pd.DataFrame:
    """The answers the judge and F1 grade differently, with the judge's rationale."""
    rows = [
        {
            "Strategy": d.strategy,
            "Question": d.question,
            "Answer": d.answer,
            "Gold": " | ".join(d.golds),
            "Judge": d.judge,
            "F1": round(d.f1, 3),
            "Judge's reason": d.rationale,
        }
        for d in agreement.disagreements
    ]
    cols = ["Strategy", "Question", "Answer", "Gold", "Judge", "F1", "Judge's reason"]
    return pd.DataFrame(rows, columns=cols)


def judge_costs(run: Run) -> dict[str, JudgeCost]:
    """Strategy -> what judging its answers cost (only strategies the judge graded)."""
    return {r.strategy: r.extras.judge for r in run.results if r.extras.judge is not None}


def judge_cost_frame(run: Run) -> pd.DataFrame:
    """One row per judged strategy and a total: verdicts, unreadable ones, tokens, seconds."""
    costs = judge_costs(run)
    rows = []
    for name, c in [*costs.items(), ("total", sum(costs.values(), JudgeCost()))]:
        if name == "total" and len(costs) < 2:
            continue
        rows.append(
            {
                "Strategy": name,
                "Judge model": c.model,
                "Verdicts": c.verdicts,
                "Unreadable": c.unparsed,
                "Prompt tok": c.prompt_tokens,
                "Out tok": c.output_tokens,
                "s": round(c.seconds, 1),
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def judge_summary(run: Run) -> str:
    """One line on what the judge cost, kept apart from the strategies' costs ('' if unjudged)."""
    costs = judge_costs(run)
    if not costs:
        return ""
    c = sum(costs.values(), JudgeCost())
    model = next((x.model for x in costs.values() if x.model), "?")
    return (
        f"Judge ({model}): {c.verdicts} verdicts, {c.unparsed} unreadable, "
        f"{c.prompt_tokens:,} prompt + {c.output_tokens:,} output tokens, {c.seconds:.1f} s "
        "(not included in the strategies' costs)"
    )


def agreement_summary(answers: list[Any], threshold: float = 0.5) -> str:
    """One line: how often the judge and F1 agree over every judged answer ('' if none)."""
    a = agreement_by_strategy(answers, threshold).get("all")
    if a is None or not a.n:
        return ""
    kappa = "—" if a.kappa is None else f"{a.kappa:.2f}"
    return (
        f"Judge vs F1 ≥ {threshold:g}: agree on {_pct(a.share)} of {a.n} answers, "
        f"Cohen's kappa {kappa}; judge right/F1 wrong {a.judge_only}, "
        f"F1 right/judge wrong {a.f1_only}"
    )
