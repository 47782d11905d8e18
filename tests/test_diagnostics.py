"""Diagnostics of a hand-built stored run: cells, oracle ceiling, power, headline, contention."""

import pytest

from core.types import Answer, Context
from eval.attribution import VerdictConfig
from eval.records import CostSummary, PreparedRecord
from eval.stats.intervals import Interval
from eval.store.rows import RunMeta
from eval.store.runs import Run, StoredAnswer, StrategyResult
from eval.views import RunView
from eval.views.verdict.diagnostics import diagnose

PASSAGE = "The thymus is where T cells mature."
OTHER = "Pharmacists dispense medicines."


def _result(name, scores, cost=None):
    n = len(scores)
    mean = sum(scores) / n
    return StrategyResult(
        name,
        "done",
        {},
        PreparedRecord(),
        CostSummary.from_dict(cost),
        {"f1": Interval(mean, mean - 0.2, mean + 0.2, n)},
    )


def _answers(name, scores, contexts):
    return [
        StoredAnswer(
            name, f"q{i}", f"question {i}", ["thymus"], Answer(f"question {i}", "x", ctx), {"f1": s}
        )
        for i, (s, ctx) in enumerate(zip(scores, contexts, strict=True))
    ]


def _view(oracle_mean=0.3, contended=False, gap=0.0):
    n = 10
    base = [1.0] * 3 + [0.0] * 7
    lora = [1.0, 1.0, 0.0] + [1.0] + [0.0] * 6  # kept 2, lost 1, learned 1
    rag = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    rag = [min(1.0, s + gap) for s in rag]
    hit, miss = [Context(PASSAGE)], [Context(OTHER)]
    rag_ctx = [hit, hit, hit, hit, hit, hit, miss, miss, miss, miss]
    results = [
        _result("system_prompt", base),
        _result("lora", lora),
        _result("rag", rag, {"contended": contended}),
    ]
    answers = (
        _answers("system_prompt", base, [[]] * n)
        + _answers("lora", lora, [[]] * n)
        + _answers("rag", rag, rag_ctx)
    )
    meta = {
        "gold_passages": {
            f"q{i}": {"text": PASSAGE, "source": "a.md", "found_by": "passage"} for i in range(n)
        },
        "oracle": {
            "n": n,
            "summary": {"f1": {"mean": oracle_mean, "low": 0.1, "high": 0.5, "n": n}},
            "cost": {"wall_s": 3.0},
        },
    }
    run = Run(
        "r1",
        "",
        "done",
        0.0,
        1.0,
        {"verdict": {"power_target": 0.1}},
        None,
        RunMeta.from_dict(meta),
        None,
        results,
    )
    return RunView(run, answers)


def test_cells_advice_and_oracle():
    d = diagnose(_view())
    cells = {c.strategy: c for c in d.cells}
    assert set(cells) == {"lora", "rag"}  # the base has no cells of its own
    assert cells["rag"].kind == "retrieval"
    assert {k: len(v) for k, v in cells["rag"].qids.items()} == {
        "retrieved_right": 1,
        "retrieved_wrong": 5,
        "missed_right": 1,
        "missed_wrong": 3,
    }
    assert cells["lora"].qids["known_wrong"] == ["q2"] and cells["lora"].qids["new_right"] == ["q3"]
    assert d.advice["rag"].startswith("62% of rag's misses are reading failures")
    assert "F1 0.30" in d.advice["rag"]
    assert d.oracle.mean == 0.3 and d.oracle_cost == {"wall_s": 3.0}
    assert d.to_dict()["oracle"] == {
        "mean": 0.3, "low": 0.1, "high": 0.5, "n": 10, "metric": "f1", "cost": {"wall_s": 3.0}
    }  # fmt: skip


def test_headline_says_no_winner_and_generator_limit_first():
    d = diagnose(_view())
    assert d.all_overlap and d.generator_limited
    assert d.headline[0].startswith("No strategy is shown to be better on 10 questions")
    assert "the generator, not the strategy, limits every score" in d.headline[1]
    assert d.power and all(p.b == d.power[0].b for p in d.power)  # each against the best
    assert d.power[0].target == 0.1  # the run's own setting
    js = d.to_dict()
    assert js["attribution"][0]["counts"] and js["power"][0]["sentence"]


def test_an_arm_above_the_reading_ceiling_is_named_instead_of_blaming_the_generator():
    d = diagnose(_view(oracle_mean=0.05))  # lora and the base: intervals from 0.1 up
    assert not d.generator_limited
    line = next(h for h in d.headline if "gold passage" in h)
    assert "system_prompt, lora scored above that ceiling" in line
    assert "limits every score" not in line


def test_headline_reads_the_paired_tests_not_the_intervals_and_ceiling_high():
    view = _view(oracle_mean=0.9)
    for r in view.run.results:  # narrow, separated intervals
        m = r.metrics["f1"]
        m.low, m.high = m.mean - 0.01, m.mean + 0.01
    d = diagnose(view)
    assert not d.all_overlap and not d.generator_limited
    # ten questions: no paired test is significant after Holm, separated intervals or not
    assert d.significant == [] and d.pairs == 3
    assert len(d.headline) == 1 and "no paired difference is significant" in d.headline[0]
    assert "interval overlaps" not in d.headline[0]


def test_contended_costs_are_flagged():
    d = diagnose(_view(contended=True))
    assert d.contended == {"system_prompt": False, "lora": False, "rag": True}
    assert any("rag were measured while other work competed" in h for h in d.headline)


def test_threshold_is_a_setting():
    strict = diagnose(_view(), VerdictConfig(right_threshold=1.0))
    loose = diagnose(_view(), VerdictConfig(right_threshold=0.0))
    rag = lambda d: next(c for c in d.cells if c.strategy == "rag")  # noqa: E731
    assert rag(loose).misses == 0 and rag(strict).misses == 8
    assert pytest.approx(rag(strict).share("retrieved_wrong")) == 5 / 8
