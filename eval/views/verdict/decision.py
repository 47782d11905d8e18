"""The decision a manager acts on, first on the Compare page and in the HTML report: which
strategy to use at this volume and quality bar, why (quality with its test, cost a month,
preparation, general knowledge lost), the runner-up and why not, when fine-tuning pays off,
and the most striking loss of general knowledge, in plain sentences built from stored figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from eval.metrics import DEFAULT_METRIC, metric_label
from eval.views.cost import BreakEven, break_even
from eval.views.format import display_name, money, times
from eval.views.knowledge import retention_vs_gain
from eval.views.run_view import RunView, higher_is_better, priced
from eval.views.task_verdict import fine_tuning_bought
from eval.views.verdict.confidence import (
    best_sentence,
    cost_per_right_frame,
    pair_result,
    per_right_text,
)
from eval.views.verdict.narrative import Recommendation, recommend
from eval.views.verdict.stability import stability_sentences

NOTABLE_DROP = 0.05  # a general-knowledge change below -5 points is worth a sentence
# Below this many right answers, one question more or less right moves a cost per right answer
# by a tenth or more: a ranking by it (e.g. 3 against 2 of 20) is said with a caution.
FEW_RIGHT = 10


@dataclass
class Decision:
    """The first screen. `headline` names the choice; `reasons` back it; the other fields are
    sentences or None. `figures` holds the numbers the sentences quote, for tests and checks:
    mean, monthly_cost, prepare_cost of the choice."""

    choice: str | None
    headline: str
    reasons: list[str]
    runner_up: str | None
    fine_tuning: str | None
    striking: str | None
    recommendation: Recommendation
    figures: dict[str, float] = field(default_factory=dict)
    # format or style: what training bought on behaviour (eval.views.task_verdict)
    behaviour: list[str] = field(default_factory=list)

    def sentences(self) -> list[str]:
        """Every sentence in reading order (the HTML report prints these)."""
        rest = [self.runner_up, self.fine_tuning, *self.behaviour, self.striking]
        return [self.headline, *self.reasons, *[s for s in rest if s]]


def _num(x: float) -> str:
    return f"{x:.3f}"


def _p(p: float | None) -> str:
    if p is None:
        return "p not computed"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def decide(
    view: RunView,
    monthly_volume: int,
    metric: str = DEFAULT_METRIC,
    threshold: float = 0.1,
    months: int = 12,
    by: str = "month",
) -> Decision:
    """The decision for `monthly_volume` questions a month and a bar of `metric` ≥ `threshold`
    (≤ for lower-is-better metrics), preparation spread over `months` months; `by` picks what
    "cheapest" means (narrative.RANK_BY: a month, or per correct answer)."""
    rec = recommend(view, monthly_volume, metric, threshold, months, by)
    label, cur, hib = metric_label(metric), view.currency(), higher_is_better(metric)
    op = "≥" if hib else "≤"
    table = rec.table.set_index("strategy") if not rec.table.empty else rec.table
    n_questions = int(view.run.meta.split.test or len(view.qids()))
    ret = retention_vs_gain(view, metric).set_index("strategy")
    be = break_even(view)
    bought = fine_tuning_bought(view)  # format or style: what training bought on behaviour

    def quality(name: str) -> str:
        row = table.loc[name]
        return f"{label} {_num(row['mean'])} (95% interval {_num(row.low)}–{_num(row.high)})"

    if rec.choice is None:
        if rec.best is None:
            headline = (
                "No finished strategy has both a quality score and a price: nothing to choose"
            )
            headline += "."
            return Decision(None, headline, [], None, None, None, rec)
        headline = (
            f"No strategy reaches {label} {op} {threshold:g}. The best is "
            f"**{display_name(rec.best)}** with {quality(rec.best)}: lower the bar to use it, "
            "or try a stronger generator."
        )
        fine = _fine_tuning(be, cur, monthly_volume)
        return Decision(None, headline, [], None, fine, _striking(ret), rec, {}, bought)

    c = rec.choice
    row = table.loc[c]
    headline = (
        f"Use **{display_name(c)}**: it meets your bar ({label} {op} {threshold:g}) at the lowest "
        f"cost, {money(row.monthly_cost, cur)} a month for {monthly_volume:,} questions."
    )
    if by == "per_right":
        headline = (
            f"Use **{display_name(c)}**: it meets your bar ({label} {op} {threshold:g}) at the "
            f"lowest cost per right answer, {per_right_text(row.per_right, False, cur)} "
            f"({money(row.monthly_cost, cur)} a month for {monthly_volume:,} questions)."
        )
    groups = view.n_groups()
    reasons = [
        f"Quality: {quality(c)} on {n_questions} test questions in {groups} independent "
        "groups (questions of one source passage or near-duplicates count as one)."
    ]
    chance = best_sentence(view, metric)
    if chance:
        reasons.append(f"Chance of being best: {chance}")
    if by == "per_right":
        reasons.append(rec.reasons[0])
        caution = _few_right(view, rec, monthly_volume, months)
        if caution:
            reasons.append(caution)
    _, prep, on_cpu = priced(view.result(c).cost)
    prep = prep or 0.0
    prep_s = view.result(c).cost.prepare_s or 0.0
    reasons.append(
        f"Cost: {money(row.per_question * 1000, cur)} per 1,000 questions; preparing it took "
        f"{prep_s:.0f} s ({money(prep, cur)}), spread over {months} months."
    )
    if on_cpu:
        reasons.append(
            "Its price comes from the CPU seconds it used: the machine was busy while it was "
            "measured, so its wall time (and a price from it) reads high."
        )
    general = _general(ret, c)
    if general:
        reasons.append(general)
    bridge = _bridge(view, rec, metric, cur)
    if bridge:
        reasons.append(bridge)
    reasons.extend(stability_sentences(view, metric, threshold, monthly_volume, months))
    figures = {"mean": float(row["mean"]), "monthly_cost": float(row.monthly_cost)}
    figures["per_right"] = float(row.per_right)
    figures["prepare_cost"] = float(prep)
    runner_up = _runner_up(rec, c, label, cur)
    striking = _striking(ret, skip=c if general and "drops by" in general else None)
    fine = _fine_tuning(be, cur, monthly_volume)
    return Decision(c, headline, reasons, runner_up, fine, striking, rec, figures, bought)


def _few_right(view: RunView, rec: Recommendation, monthly_volume: int, months: int) -> str | None:
    """A caution when the strategies ranked by cost per right answer (those meeting the bar)
    rest on fewer than FEW_RIGHT right answers; None otherwise."""
    frame = cost_per_right_frame(view, monthly_volume, months).set_index("strategy")
    meets = [s for s in rec.table[rec.table.status == "meets"].strategy if s in frame.index]
    few = [(s, int(frame.loc[s, "right"]), int(frame.loc[s, "n"])) for s in meets]
    few = [(s, r, n) for s, r, n in few if r < FEW_RIGHT]
    if not few:
        return None
    counts = ", ".join(f"{display_name(s)} {r} of {n}" for s, r, n in few)
    swing = 1 / max(1, min(r for _, r, _ in few))
    return (
        f"Caution: this ranking rests on few right answers ({counts}); one question more or "
        f"less right moves a cost per right answer by {swing:.0%} or more, so the order may "
        "not hold. More test questions would settle it."
    )


def _general(ret, name: str) -> str | None:
    if name not in ret.index or math.isnan(ret.loc[name, "retention_delta"]):
        return None
    score, base = ret.loc[name, "retention_score"], ret.loc[name, "retention_base"]
    delta = ret.loc[name, "retention_delta"]
    if delta <= -NOTABLE_DROP:
        share = f", {-delta / base:.0%} of it" if base > 0 else ""
        return (
            f"General knowledge: it drops by {-delta:.3f}{share}, from {base:.3f} to {score:.3f} "
            "on questions outside your documents (the base model's score first)."
        )
    return f"General knowledge: {score:.0%} of the general questions right ({base:.0%} before)."


def _bridge(view: RunView, rec: Recommendation, metric: str, cur: str) -> str | None:
    """Why the most accurate strategy is not the recommended one, when they differ."""
    best, c = rec.best, rec.choice
    if best is None or best == c:
        return None
    t = rec.table.set_index("strategy")
    # the same Holm-adjusted paired test the headline and the comparisons table read
    test = pair_result(view, metric, best, c) or {"significant": False, "p_holm": None}
    gap = (
        "the gap is not significant"
        if not test["significant"]
        else "the gap is significant, yet both are within the bar"
    )
    ratio = times(t.loc[c].monthly_cost, t.loc[best].monthly_cost)
    cost_words = f"at {ratio} the cost" if "times" not in ratio else f"at {ratio} its cost"
    return (
        f"{display_name(best)} is the most accurate ({metric_label(metric)} "
        f"{_num(t.loc[best]['mean'])}), but {display_name(c)} is within your bar {cost_words} "
        f"({money(t.loc[c].monthly_cost, cur)} against {money(t.loc[best].monthly_cost, cur)} "
        f"a month); {gap} (paired test, Holm-adjusted {_p(test['p_holm'])}), so "
        f"{display_name(c)} is "
        "recommended."
    )


def _runner_up(rec: Recommendation, choice: str, label: str, cur: str) -> str | None:
    """The next strategy meeting the bar, or the best one when it is not the choice."""
    t = rec.table
    others = t[(t.status == "meets") & (t.strategy != choice)]
    if others.empty:
        below = t[t.strategy != choice]
        if below.empty:
            return None
        r = below.sort_values("mean", ascending=False).iloc[0]
        return (
            f"Runner-up: {display_name(r.strategy)}, not chosen because its {label} "
            f"({_num(r['mean'])}) misses the bar."
        )
    r = others.iloc[0]
    mine = t[t.strategy == choice].iloc[0]
    return (
        f"Runner-up: {display_name(r.strategy)} also meets the bar ({label} {_num(r['mean'])}) but "
        f"costs {money(r.monthly_cost, cur)} a month, "
        f"{as_much(r.monthly_cost, mine.monthly_cost)}."
    )


def as_much(a: float, b: float) -> str:
    """`a` against `b` as a phrase that ends a sentence: '3.0 times as much', 'half the cost',
    '91% of the cost' (`times` alone reads '91% of')."""
    ratio = times(a, b)
    if ratio == "no comparable":
        return "a cost that cannot be compared"
    if "times" in ratio:
        return f"{ratio} as much"
    return f"{ratio} the cost"


def _fine_tuning(be: BreakEven, cur: str, monthly_volume: int) -> str | None:
    """When each strategy that trains pays off against the others, one sentence per trainer
    (a run with LoRA and RAFT says each against the rest, never one against itself)."""
    pays = be.pays_off
    if pays.empty:
        return None
    return " ".join(
        _pays_off_sentence(str(trainer), rows, monthly_volume)
        for trainer, rows in pays.groupby("trainer", sort=False)
    )


def _pays_off_sentence(trainer: str, pays, monthly_volume: int) -> str:
    never = pays[pays.from_volume.isna()]
    finite = pays.dropna(subset=["from_volume"])
    name = display_name(trainer)
    if not finite.empty:
        latest = finite.sort_values("from_volume").iloc[-1]
        others = ", ".join(display_name(o) for o in finite.other)
        volume = math.ceil(latest.from_volume)
        months = volume / monthly_volume if monthly_volume else math.inf
        when = (
            "from the first month"
            if months <= 1
            else f"after about {months:.0f} months at your volume"
            if months < 120
            else "only after ten years or more at your volume"
        )
        text = (
            f"Fine-tuning ({name}) pays off against {others} from {volume:,} questions in "
            f"all: {when}."
        )
        if not never.empty:
            text += (
                " It never pays off against "
                + ", ".join(display_name(o) for o in never.other)
                + ": those cost less per question."
            )
        return text
    return (
        f"Fine-tuning ({name}) never pays off here: every other strategy costs as little or less "
        "per question."
    )


def _striking(ret, skip: str | None = None) -> str | None:
    """The largest loss of general knowledge against the base model, when it is notable
    (None when it is `skip`'s, already said among the reasons)."""
    data = ret.dropna(subset=["retention_delta"])
    if data.empty:
        return None
    worst = data.retention_delta.idxmin()
    r = data.loc[worst]
    if r.retention_delta > -NOTABLE_DROP or worst == skip:
        return None
    return (
        f"Watch out: {display_name(worst)} dropped general knowledge from "
        f"{r.retention_base:.3f} to {r.retention_score:.3f} (questions outside your documents)."
    )
