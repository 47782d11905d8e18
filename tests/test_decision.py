"""The Compare page's first screen: a decision in plain words whose numbers are the tables'."""

from __future__ import annotations

import pandas as pd
import pytest

from eval import views
from eval.views.display import cost_table, quality_table
from eval.views.format import display_name, money, times
from eval.views.verdict.confidence import comparisons
from eval.views.verdict.decision import decide
from tests.test_dashboards import _store_run


@pytest.fixture
def view(tmp_path):
    store, run_id = _store_run(tmp_path)
    return views.RunView.load(store, run_id)


def test_money_reads_as_money():
    assert money(12.345) == "$12.35"
    assert money(0.46) == "$0.46"
    assert money(0.0046) == "$0.0046"
    assert money(0.000123) == "$0.00012"
    assert money(0) == "$0"
    assert money(None) == "—"
    assert money(1.5, "EUR") == "1.50 EUR"
    assert money(0.05) == "$0.05" and money(0.00004) == "< $0.0001"
    assert money(0.00004, "EUR") == "< 0.0001 EUR"
    assert [times(1, 3), times(1, 2), times(3, 1), times(0.28, 1)] == [
        "a third of",
        "half",
        "3.0 times",
        "28% of",
    ]


def test_recommended_cheaper_strategy_is_reconciled_with_the_most_accurate(view):
    d = decide(view, 10_000, "f1", threshold=0.2, months=12)
    assert d.choice == "lora" and d.recommendation.best == "rag"
    text = " ".join(d.sentences())
    assert display_name("lora") in d.headline and "$0.28 a month" in d.headline
    bridge = next(s for s in d.reasons if "most accurate" in s)
    assert "so " + display_name("lora") + " is recommended" in bridge
    # the Holm-adjusted p of the comparisons table (over all six pairs), not the raw 0.003
    p_holm = comparisons(view, "f1", "rag").set_index("strategy").loc["lora", "p_holm"]
    assert f"Holm-adjusted p = {p_holm:.2f}" in bridge and "p = 0.01" in bridge
    assert d.runner_up.startswith("Runner-up: ")
    assert "pays off" in (d.fine_tuning or "")
    assert "drops by 0.050, 14% of it, from 0.350 to 0.300" in text
    assert "as much" in d.runner_up or "the cost" in d.runner_up
    assert "of as much" not in text
    assert d.striking is None  # the drop is the choice's own, said once among the reasons
    rag_first = decide(view, 10_000, "f1", threshold=0.5)
    assert f"{display_name('lora')} dropped general knowledge from 0.350 to 0.300" in (
        rag_first.striking
    )
    assert "None" not in text and "nan" not in text
    # the figures quoted are the tables' figures
    q = quality_table(view, views.side_by_side(view)).frame.set_index("name")
    c = cost_table(view, 10_000, 12).frame.set_index("name")
    assert q.loc["lora", "f1"] == pytest.approx(d.figures["mean"])
    assert c.loc["lora", "monthly"] == pytest.approx(d.figures["monthly_cost"])
    assert f"{d.figures['mean']:.3f}" in text


def test_one_sentence_per_idea_not_per_pair(view):
    d = decide(view, 10_000, "f1", threshold=0.2)
    sentences = d.sentences()
    assert len(sentences) <= 8
    assert sum("pays off" in s for s in sentences) == 1


def test_no_strategy_meets_the_bar(view):
    d = decide(view, 10_000, "f1", threshold=0.9)
    assert d.choice is None and "No strategy reaches F1 ≥ 0.9" in d.headline
    assert display_name("rag") in d.headline


def test_tables_have_labels_units_and_no_field_names(view):
    sbs = views.side_by_side(view)
    q = quality_table(view, sbs)
    labels = [c.label for c in q.columns]
    assert labels[0] == "Strategy" and "F1" in labels and "F1 95% interval" in labels
    assert "General knowledge vs base model" in labels
    rows = q.text_rows()
    lora = next(r for r in rows if r[1] == "lora")
    assert (
        "None" not in " ".join(lora)
        and lora[labels.index("General knowledge vs base model")] == "-0.050"
    )
    c = cost_table(view, 10_000, 12)
    clabels = [x.label for x in c.columns]
    assert clabels[:4] == [
        "Strategy",
        "Cost a month",
        "Preparation cost",
        "Cost per 1,000 questions",
    ]
    assert not any("_" in x for x in clabels)
    cells = dict(
        zip(clabels, next(r for r in c.text_rows()[1:] if r[0] == display_name("rag")), strict=True)
    )
    assert cells["Cost per 1,000 questions"] == "$0.10" and cells["Preparation cost"] == "$0.01"
    assert "★" not in " ".join(" ".join(r) for r in c.text_rows())


def test_a_contended_strategy_is_priced_from_its_cpu_seconds_everywhere(view):
    before = decide(view, 10_000, "f1", threshold=0.2, months=12)
    assert before.choice == "lora"
    cost = view.result("lora").cost
    wall_monthly = before.figures["monthly_cost"]
    # Measured on a busy machine: 2 threads that used the CPU half the wall time.
    cost.contended, cost.threads = True, 2
    cost.latency_mean_s, cost.cpu_mean_s = 1.0, 1.0
    after = decide(view, 10_000, "f1", threshold=0.2, months=12)
    per_q_wall = cost.price_per_1k / 1000 * 10_000
    assert after.figures["monthly_cost"] == pytest.approx(wall_monthly - per_q_wall / 2)
    assert any("CPU seconds it used" in r for r in after.reasons)
    table = cost_table(view, 10_000, 12)
    monthly = table.frame.set_index("name").loc["lora", "monthly"]
    assert monthly == pytest.approx(after.figures["monthly_cost"])  # the table says the same
    assert any("priced from CPU seconds" in n for n in table.notes)


def test_every_view_writes_money_the_same_way(view):
    """One formatter: the cost-per-right-answer cells, the verdict's sentences and the tables
    read money as eval.views.format.money writes it (no second one with other digits)."""
    from eval.views.verdict.confidence import (
        cost_per_right_frame,
        per_right_cells,
        per_right_reason,
        per_right_text,
    )

    assert views.money is money
    assert per_right_text(0.05, False) == "$0.05" and per_right_text(0.05, False, "EUR") == (
        "0.05 EUR"
    )
    row = {"money": 0.05, "money_low": 0.0, "money_high": 0.2, "none_right": False}
    row |= {"seconds": 1.0, "seconds_low": 0.5, "seconds_high": 2.0}
    assert per_right_cells(row)[0].startswith("$0.05") and "$0" in per_right_cells(row)[0]
    table = pd.DataFrame({"strategy": ["rag"], "per_right": [0.05]})
    assert "rag costs $0.05 per right answer" in per_right_reason(table, "rag")
    stored = cost_per_right_frame(view, 10_000, 12).set_index("strategy").loc["rag", "money"]
    cell = cost_table(view, 10_000, 12).frame.set_index("name").loc["rag", "money_per_right"]
    assert cell.startswith(money(float(stored)) + " [")


def test_fine_tuning_is_said_per_trainer_against_the_others_never_against_itself():
    from eval.views.cost import BreakEven, _pays_off
    from eval.views.verdict.decision import _fine_tuning

    lines = pd.DataFrame(
        [
            {"strategy": "few_shot", "fixed": 0.0, "per_question": 0.0002},
            {"strategy": "rag", "fixed": 0.01, "per_question": 0.0003},
            {"strategy": "lora", "fixed": 1.0, "per_question": 0.0001},
            {"strategy": "lora+rag", "fixed": 3.0, "per_question": 0.00015},
        ]
    )
    pays = pd.concat([_pays_off(lines, t, "USD") for t in ("lora", "lora+rag")])
    be = BreakEven(lines, pd.DataFrame(), pd.DataFrame(), pays, 1000.0, "USD")
    text = _fine_tuning(be, "USD", 10_000)
    few, rag, lora, raft = map(display_name, ("few_shot", "rag", "lora", "lora+rag"))
    _, mine, raft_s = text.split("Fine-tuning (")
    assert mine.startswith(f"{lora}) pays off against {few}, {rag}, {raft} from ")
    assert raft_s.startswith(f"{raft}) pays off against {few}, {rag} from ")
    assert raft_s.endswith(f"It never pays off against {lora}: those cost less per question.")
