"""The decision's statistics against known answers: chance of being best, Holm, McNemar,
paired effect size, cost per right answer; and the same figures read from a stored run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval import views
from eval.stats.decision import cost_per_right, effect_size, holm, mcnemar_exact, prob_best
from eval.views.verdict.confidence import (
    NONE_RIGHT,
    best_sentence,
    chance_best,
    comparisons,
    cost_per_right_frame,
    decision_figures,
    paired_family,
    per_right_text,
)
from tests.test_dashboards import _store_run


def test_prob_best_is_one_for_a_dominating_strategy():
    rng = np.random.default_rng(1)
    base = {f"q{i}": float(rng.uniform(0, 0.5)) for i in range(30)}
    scores = {"weak": base, "strong": {q: v + 0.4 for q, v in base.items()}}
    p = prob_best(scores, seed=3)
    assert p["strong"] == pytest.approx(1.0) and p["weak"] == pytest.approx(0.0)
    # lower is better: the weak one now dominates
    assert prob_best(scores, higher_is_better=False)["weak"] == pytest.approx(1.0)


def test_prob_best_splits_ties_evenly_among_identical_strategies():
    same = {f"q{i}": float(i % 3) / 2 for i in range(25)}
    p = prob_best({"a": same, "b": dict(same), "c": dict(same), "d": dict(same)}, seed=0)
    assert all(v == pytest.approx(0.25) for v in p.values())
    assert sum(p.values()) == pytest.approx(1.0)


def test_prob_best_resamples_questions_jointly():
    # b = a + 0.01 on one question: jointly resampled, b wins whenever that question is drawn
    # and ties (half a win) when not: 1 - (1 - 1/n)^n / 2 ≈ 0.82. Resampled apart, the spread
    # of either mean would swamp 0.01 and give about 0.5.
    a = {f"q{i}": float(i % 2) for i in range(40)}
    b = dict(a) | {"q0": a["q0"] + 0.01}
    p = prob_best({"a": a, "b": b}, n_resamples=4000, seed=1)
    assert p["b"] == pytest.approx(1 - (1 - 1 / 40) ** 40 / 2, abs=0.02)


def test_prob_best_is_seeded_and_nan_without_shared_questions():
    s = {"a": {"q1": 1.0, "q2": 0.0}, "b": {"q1": 0.0, "q2": 1.0}}
    assert prob_best(s, seed=5) == prob_best(s, seed=5)
    p = prob_best({"a": {"q1": 1.0}, "b": {"q2": 1.0}})
    assert all(math.isnan(v) for v in p.values())


def test_holm_on_a_textbook_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.9]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert holm([]) == []


def test_mcnemar_exact_matches_the_reference_table():
    # b = 1, c = 7: 2 × P(X ≤ 1), X ~ Binomial(8, 1/2) = 2 × 9/256
    assert mcnemar_exact(1, 7) == pytest.approx(0.0703125)
    assert mcnemar_exact(7, 1) == pytest.approx(0.0703125)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)


def test_effect_size_mean_difference_and_dz():
    d = [0.1, 0.3, 0.2, 0.4, 0.0, 0.2]
    e = effect_size(d, seed=0)
    assert e.mean_diff == pytest.approx(0.2)
    assert e.d_z == pytest.approx(0.2 / np.std(d, ddof=1))
    assert e.low <= 0.2 <= e.high and e.d_low <= e.d_z <= e.d_high
    flat = effect_size([0.5] * 5)
    assert flat.mean_diff == pytest.approx(0.5) and flat.d_z is None
    assert effect_size([]).n == 0


def test_cost_per_right_is_infinite_when_nothing_is_right():
    c = cost_per_right([False] * 5, [1.0] * 5, money_per_question=0.01)
    assert c.none_right and math.isinf(c.money) and math.isinf(c.seconds)
    assert c.to_dict()["money"] is None and c.to_dict()["none_right"] is True
    assert per_right_text(c.to_dict()["money"], c.none_right) == NONE_RIGHT


def test_cost_per_right_divides_by_the_share_right_and_amortises_preparation():
    right = [True, False, True, False]  # half right
    c = cost_per_right(
        right, [2.0, 2.0, 2.0, 2.0], money_per_question=0.01, money_fixed=0.02, seconds_fixed=1.0
    )
    assert c.money == pytest.approx((0.01 + 0.02) / 0.5)
    assert c.seconds == pytest.approx((2.0 + 1.0) / 0.5)
    assert c.money_low <= c.money <= c.money_high
    # a resample can hold no right answer: the upper bound may be infinite, never below the mean
    assert c.seconds_high >= c.seconds


@pytest.fixture
def view(tmp_path):
    store, run_id = _store_run(tmp_path)
    return views.RunView.load(store, run_id)


def test_stored_run_chance_best_and_corrected_comparisons(view):
    # rag gets q0-q14 right, lora q5-q9, system_prompt and few_shot q0-q4 (binary F1)
    chances = chance_best(view, "f1")
    assert set(chances) == {"system_prompt", "few_shot", "rag", "lora"}
    assert chances["rag"] > 0.99
    assert best_sentence(view, "f1").startswith("rag is best with probability 1.00 on F1")
    cmp = comparisons(view, "f1", "rag").set_index("strategy")
    assert set(cmp.test) == {"McNemar exact"}
    # system_prompt vs rag: 0 only system_prompt right, 10 only rag right
    assert cmp.loc["system_prompt", "p_value"] == pytest.approx(mcnemar_exact(0, 10))
    # Holm over all six pairs of the four strategies, not only the three against the best
    family = paired_family(view, "f1")
    assert len(family) == 6 and set(family.holm_over) == {6}
    pairs = list(zip(family.a, family.b, strict=True))
    adjusted = dict(zip(pairs, holm(list(family.p_value)), strict=True))
    for s in ("system_prompt", "few_shot", "lora"):
        key = (s, "rag") if (s, "rag") in adjusted else ("rag", s)
        assert cmp.loc[s, "p_holm"] == pytest.approx(adjusted[key])
    assert cmp.loc["system_prompt", "diff"] == pytest.approx(-0.5)
    assert bool(cmp.loc["system_prompt", "significant"])


def test_stored_run_cost_per_right(view):
    frame = cost_per_right_frame(view, monthly_volume=1000, months=10).set_index("strategy")
    assert frame.attrs["basis"] == "F1 ≥ 0.5"
    # rag: 15 of 20 right, $0.10 per 1,000 questions, $0.01 preparation over 10,000 questions
    assert frame.loc["rag", "money"] == pytest.approx((0.10 / 1000 + 0.01 / 10_000) / 0.75)
    assert frame.loc["rag", "right"] == 15
    figures = decision_figures(view, 1000, 10)
    assert figures["prob_best"]["f1"]["rag"] > 0.99
    assert figures["cost_per_right"]["strategies"]["lora"]["right"] == 5
    assert {r["strategy"] for r in figures["comparisons"]["f1"]} == {
        "system_prompt",
        "few_shot",
        "lora",
    }


def test_decision_says_the_chance_and_can_rank_by_cost_per_right_answer(view):
    from eval.views.verdict.decision import decide

    d = decide(view, 10_000, "f1", threshold=0.2, months=12)
    assert any(r.startswith("Chance of being best: rag is best") for r in d.reasons)
    # per right answer, lora (5 of 20 right at $0.02/1k + $1 prep) loses to system_prompt
    # (5 of 20 at $0.05/1k) and to rag (15 of 20 at $0.10/1k + $0.01 prep)
    per = decide(view, 10_000, "f1", threshold=0.2, months=12, by="per_right")
    table = per.recommendation.table.set_index("strategy")
    assert per.choice == table.per_right.idxmin()
    assert "per right answer" in per.headline
    assert table.loc["rag", "per_right"] == pytest.approx((0.10 / 1000 + 0.01 / 120_000) / 0.75)
    # 5 right of 20 is few: one question either way moves the cost per right answer by 20%
    caution = next(r for r in per.reasons if r.startswith("Caution: this ranking rests on few"))
    assert "5 of 20" in caution and "20% or more" in caution and "15 of 20" not in caution
    assert not [r for r in d.reasons if r.startswith("Caution")]  # ranked a month: not said
    with pytest.raises(ValueError, match="unknown ranking"):
        decide(view, 10_000, "f1", by="cheapest")


def test_quality_cost_chart_offers_cost_per_right_answer(view):
    from eval.views import charts

    qc = views.quality_vs_cost(view, "f1", "money_per_right", monthly_volume=10_000)
    assert set(qc.strategy) == {"system_prompt", "few_shot", "rag", "lora"}
    assert qc.set_index("strategy").loc["rag", "cost"] == pytest.approx(
        (0.10 / 1000 + 0.01 / 120_000) / 0.75
    )
    assert "money_per_right" in charts.AXES
    charts.quality_cost_chart(qc).to_dict()  # draws
    with pytest.raises(ValueError, match="unknown cost"):
        views.quality_vs_cost(view, "f1", "per_right_nonsense")


def test_cost_table_shows_cost_per_right_and_quality_table_the_chance(view):
    from eval.views.display import cost_table, quality_table

    ct = cost_table(view, 10_000, 12).frame.set_index("name")
    assert ct.loc["rag", "money_per_right"].startswith("$")
    assert ct.loc["rag", "seconds_per_right"].endswith("]")
    qt = quality_table(view, views.side_by_side(view), "f1").frame.set_index("name")
    assert qt.loc["rag", "prob_best"] > 0.99


def test_eval_compare_two_runs(tmp_path, capsys):
    import json
    from dataclasses import replace

    from cli.main import main
    from eval.views.run_compare import compare_two

    store, run_a = _store_run(tmp_path)
    # run B: the same answers, except rag now misses q10-q14 (F1 1 -> 0 on five questions)
    a = views.RunView.load(store, run_a)
    run_b = store.create_run(a.run.config, "b")
    for r in a.main:
        # copies: the answers of view `a` must keep their scores
        answers = [replace(x, scores=dict(x.scores)) for x in a.answers_of(r.strategy).values()]
        if r.strategy == "rag":
            for x in answers:
                if x.qid in {f"q{i}" for i in range(10, 15)}:
                    x.scores["f1"] = 0.0
        store.save_strategy(run_b, r, answers)
    store.finish_run(run_b, "done")
    b = views.RunView.load(store, run_b)
    frame = compare_two(a, b, "f1").set_index("strategy")
    assert set(frame.index) == {"system_prompt", "few_shot", "rag", "lora"}
    assert frame.loc["rag", "diff"] == pytest.approx(-0.25)
    assert frame.loc["rag", "test"] == "McNemar exact"
    assert frame.loc["rag", "p_value"] == pytest.approx(mcnemar_exact(5, 0))
    assert frame.loc["few_shot", "p_value"] == 1.0 and frame.loc["few_shot", "diff"] == 0.0
    assert frame.loc["rag", "prob_b_better"] < 0.01
    assert frame.loc["rag", "p_holm"] == pytest.approx(holm(list(frame.p_value))[2])
    out = tmp_path / "cmp.json"
    store_path = str(store.path)
    assert main(["compare", run_a, run_b, "--store", store_path, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "McNemar exact" in text and "Holm p" in text and "P(B better)" in text
    data = json.loads(out.read_text())
    assert {r["strategy"] for r in data["strategies"]} == set(frame.index)
    assert data["a"]["decision"]["prob_best"]["f1"]["rag"] > 0.99
    # one run: that run's decision (the verb's other form), which takes no --json
    assert main(["compare", run_a, "--store", store_path, "--threshold", "0.2"]) == 0
    assert "Chance of being best: rag is best with probability" in capsys.readouterr().out
    assert main(["compare", run_a, "--store", store_path, "--json", str(out)]) == 2
    assert main(["compare", run_a, run_b, "--store", store_path, "--html", "x.html"]) == 2


def test_per_right_ranking_never_calls_a_strategy_meeting_the_bar_below_it(view):
    # bar 0.2: all four meet it. At 100 questions a month rag is cheapest per right answer
    # (15 of 20 right), while system_prompt and few_shot cost less a month
    rec = views.recommend(view, 100, "f1", 0.2, 12, by="per_right")
    assert set(rec.table.status) == {"meets"}
    assert rec.choice == "rag" == rec.table.iloc[0].strategy
    assert not any("below the threshold" in r for r in rec.reasons)
