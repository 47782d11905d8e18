"""One voice: the headline, the recommendation, the comparisons table, the HTML report and the
`--json`/MLflow export read the same Holm-adjusted paired tests, over the stored groups; and a
significant paired gap is named even where the marginal intervals overlap."""

from __future__ import annotations

import numpy as np
import pytest

from core.types import Answer, Cost
from eval import views
from eval.config import RunConfig
from eval.records import CostSummary, PreparedRecord
from eval.stats.intervals import bootstrap_ci
from eval.store.runs import RunStore, StoredAnswer, StrategyResult
from eval.views.html_report import html_report
from eval.views.verdict.confidence import decision_figures, paired_family
from eval.views.verdict.decision import decide
from eval.views.verdict.diagnostics import diagnose
from eval.views.verdict.export import decision_metrics
from eval.views.verdict.narrative import verdict

N = 40
QIDS = [f"q{i}" for i in range(N)]
GROUPS = {q: f"g{i // 2}" for i, q in enumerate(QIDS)}  # pairs of questions from one passage
PRICES = {"system_prompt": 0.05, "rag": 0.10, "few_shot": 0.08}


def _scores() -> dict[str, list[float]]:
    """Hard and easy questions shared by every strategy (wide marginal intervals); rag a small,
    steady 0.06 above system_prompt on each question (a sharp paired gap); few_shot equal to
    system_prompt but for noise."""
    rng = np.random.default_rng(0)
    base = np.clip(rng.uniform(0.0, 0.9, size=N), 0, 1)
    return {
        "system_prompt": list(base),
        "rag": list(np.clip(base + 0.06 + rng.normal(0, 0.01, N), 0, 1)),
        "few_shot": list(np.clip(base + rng.normal(0, 0.01, N), 0, 1)),
    }


def _store(tmp_path, groups: dict[str, str] | None = GROUPS):
    store = RunStore(tmp_path / "runs.sqlite")
    cfg = RunConfig(strategies=list(PRICES), name="one voice")
    run_id = store.create_run(cfg.to_dict(), cfg.name)
    split = {"pairs": 100, "train": 60, "test": N, "test_ids": QIDS}
    store.update_run(run_id, split=split | ({"groups": groups} if groups else {}))
    labels = [(groups or {}).get(q, q) for q in QIDS]
    for name, f1 in _scores().items():
        iv = bootstrap_ci(f1, groups=labels, n_resamples=1000)
        result = StrategyResult(
            name,
            "done",
            {},
            PreparedRecord(),
            CostSummary(price_per_1k=PRICES[name], price_prepare=0.0, currency="USD"),
            {"f1": iv},
        )
        answers = [
            StoredAnswer(name, q, f"Q{i}?", ["g"], Answer(f"Q{i}?", "a", [], Cost()), {"f1": v})
            for i, (q, v) in enumerate(zip(QIDS, f1, strict=True))
        ]
        store.save_strategy(run_id, result, answers)
    store.finish_run(run_id, "done")
    return views.RunView.load(store, run_id), store


def test_a_significant_paired_gap_with_overlapping_intervals_is_the_headline(tmp_path):
    view, store = _store(tmp_path)
    rag, sp = view.result("rag").metrics["f1"], view.result("system_prompt").metrics["f1"]
    assert rag.low <= sp.high  # the marginal intervals overlap
    family = paired_family(view, "f1")
    assert len(family) == 3 and set(family.holm_over) == {3}
    assert set(family.groups) == {20}  # 40 questions, 20 passages
    d = diagnose(view)
    assert d.groups == 20 and d.pairs == 3
    assert not any(h.startswith("No strategy is shown") for h in d.headline)
    line = next(h for h in d.headline if h.startswith("Paired on the same"))
    assert "rag ahead of system_prompt" in line and "significant" in line
    assert "(20 independent groups)" in line and "Holm's correction over 3 pairs" in line

    # the comparisons table says the same, with the same Holm p
    sbs = views.side_by_side(view)
    sig = sbs.significance.set_index("strategy")
    assert bool(sig.loc["system_prompt", "significant"])
    row = next(r for r in d.significant if {r["a"], r["b"]} == {"rag", "system_prompt"})
    assert sig.loc["system_prompt", "p_holm"] == pytest.approx(row["p_holm"])
    assert "(=)" not in sbs.display.set_index("Strategy").loc["system_prompt"].iloc[0]
    text = verdict(view, sbs, views.break_even(view), "f1")
    assert "significantly ahead of the next one" in text and "not significantly" not in text

    # the recommendation: system_prompt is cheapest meeting a low bar; the gap is significant
    dec = decide(view, 10_000, "f1", threshold=0.1)
    assert dec.choice == "system_prompt" and dec.recommendation.best == "rag"
    bridge = next(s for s in dec.reasons if "most accurate" in s)
    assert "the gap is significant" in bridge and "Holm-adjusted" in bridge
    assert any("in 20 independent groups" in s for s in dec.reasons)

    # --json and MLflow read the same family
    figures = decision_figures(view)
    assert figures["groups"] == 20 and figures["questions"] == N
    js = {r["strategy"]: r for r in figures["comparisons"]["f1"]}
    assert js["system_prompt"]["p_holm"] == pytest.approx(row["p_holm"])
    assert js["system_prompt"]["significant"] is True
    assert decision_metrics(view)["system_prompt"]["p_holm.f1"] == pytest.approx(row["p_holm"])

    page = html_report(store, view.run.id, threshold=0.1)
    assert "rag ahead of system_prompt" in page and "in 20 independent groups" in page


def test_no_significant_pair_is_said_whatever_the_intervals(tmp_path):
    view, _ = _store(tmp_path)
    for r in view.run.results:  # narrow intervals that do not overlap
        m = r.metrics["f1"]
        m.low, m.high = m.mean - 1e-4, m.mean + 1e-4
    d = diagnose(view)
    # few_shot and system_prompt differ by noise only: that pair is not significant, the
    # others are; the headline names no false difference and says nothing of overlap
    pairs = {frozenset((r["a"], r["b"])) for r in d.significant}
    assert frozenset(("few_shot", "system_prompt")) not in pairs
    assert not any("interval overlaps" in h for h in d.headline)


def test_groups_widen_the_paired_tests_and_old_runs_are_singletons(tmp_path):
    grouped, _ = _store(tmp_path / "a")
    single, _ = _store(tmp_path / "b", groups=None)
    assert single.n_groups() == N and grouped.n_groups() == 20
    assert single.groups()["q3"] == "q3" and grouped.groups()["q3"] == "g1"
    pg = paired_family(grouped, "f1").set_index(["a", "b"])
    ps = paired_family(single, "f1").set_index(["a", "b"])
    key = ("system_prompt", "few_shot")
    assert pg.loc[key, "p_value"] >= ps.loc[key, "p_value"] - 0.02  # fewer units, no sharper
    assert pg.loc[key, "test"].endswith("(groups flipped)")
    assert ps.loc[key, "test"] == "sign-flip permutation"
