"""What fine-tuning bought on a format or style task, in one sentence for the verdict.

Fine-tuning is said to be weakest at adding facts and strongest at behaviour: a fixed output
format, a house style. When a strategy that trains leads on format validity (or on keeping
every style rule), the verdict says by how much against the best strategy that does not
train, whether the paired test (the run's Holm-corrected family) tells the two apart, and at
what extra price per 1,000 questions: a lead of one question is not a purchase.
"""

from __future__ import annotations

import math

from eval.metrics import metric_label
from eval.store.rows import StrategyResult
from eval.views.format import display_name, money
from eval.views.run_view import RunView
from eval.views.verdict.confidence import pair_result

# The behaviour metrics a trained strategy may lead on, in the order the verdict reads them.
BEHAVIOUR_METRICS = ("format_valid", "style_pass")


def _mean(r: StrategyResult, metric: str) -> float | None:
    return r.mean(metric)


def fine_tuning_bought(view: RunView) -> list[str]:
    """One sentence per behaviour metric a training strategy leads on ([] otherwise):
    'LoRA fine-tune: 97% valid format against 71% for Few-shot examples (the best without
    training), at +$0.0040 per 1,000 questions.'"""
    trained = {r.strategy for r in view.with_role("trains")}
    out = []
    for metric in BEHAVIOUR_METRICS:
        scored = [r for r in view.main if _mean(r, metric) is not None]
        untrained = [r for r in scored if r.strategy not in trained]
        if not untrained or len(scored) < 2:
            continue
        lead = max(scored, key=lambda r: _mean(r, metric))
        other = max(untrained, key=lambda r: _mean(r, metric))
        if lead.strategy not in trained or _mean(lead, metric) <= _mean(other, metric):
            continue
        a, b = lead.cost.price_per_1k, other.cost.price_per_1k
        price = ""
        if a is not None and b is not None:
            sign = "+" if a >= b else "-"
            price = f", at {sign}{money(abs(a - b), view.currency())} per 1,000 questions"
        label = metric_label(metric)
        out.append(
            f"{display_name(lead.strategy)}: {_mean(lead, metric):.0%} {label.lower()} against "
            f"{_mean(other, metric):.0%} for {display_name(other.strategy)} (the best without "
            f"training){price}{_test_words(view, metric, lead.strategy, other.strategy)}."
        )
    return out


def _test_words(view: RunView, metric: str, lead: str, other: str) -> str:
    """'; a significant difference (paired test, Holm-adjusted p = 0.003)', or that the test
    cannot tell them apart; '' when the pair was not tested."""
    test = pair_result(view, metric, lead, other)
    p_holm = None if test is None else test.get("p_holm")
    if p_holm is None or math.isnan(p_holm):  # not tested
        return ""
    p = f"Holm-adjusted p = {p_holm:.3f}"
    if test["significant"]:
        return f"; a significant difference (paired test, {p})"
    return f"; the paired test cannot tell them apart ({p})"
