"""Stability across re-splits: leak-safe re-drawn splits, the summary of stored re-split
scores, and a small run with resplits=2 through the harness (resumable)."""

from __future__ import annotations

import html

import pytest

from cli.args import parser
from cli.main import build_config
from core.config import ConfigError, SplitConfig
from core.qa import near_duplicate_groups
from core.types import QAPair
from eval.config import RunConfig
from eval.run.harness import run_comparison
from eval.stats.stability import StabilityRecord, draw_resplits, sentence, summarize
from eval.store.runs import RunStore


def _pairs() -> list[QAPair]:
    base = [f"alpha{i} beta{i} gamma{i} delta{i}?" for i in range(40)]
    dups = [
        "What is the capital of France?",
        "what is the capital of france",
        "What's the capital of France?",
        "Which city is the capital of France?",
    ]
    return [QAPair(f"q{i}", q, ("a",)) for i, q in enumerate(base + dups)]


def test_resplits_never_put_a_test_question_or_its_near_duplicate_in_training():
    pairs = _pairs()
    split = SplitConfig(test_fraction=0.25, seed=7)
    groups = [{pairs[i].id for i in g} for g in near_duplicate_groups(pairs, 0.6)]
    draws = draw_resplits(pairs, split, 12)
    assert [d.seed for d in draws] == list(range(8, 20))
    tests = set()
    for d in draws:
        train_ids, test_ids = {p.id for p in d.train}, {p.id for p in d.test}
        assert not train_ids & test_ids
        assert train_ids | test_ids == {p.id for p in pairs}
        for g in groups:  # a near-duplicate group is wholly on one side
            assert g <= train_ids or g <= test_ids
        tests.add(frozenset(test_ids))
    assert len(tests) > 1  # the splits differ
    assert [len(d.test) for d in draw_resplits(pairs, split, 2, n_test=3)] == [3, 3]


def test_summary_counts_wins_spread_and_whether_the_best_changes():
    own = {"a": 0.5, "b": 0.4, "c": 0.1}
    stored = {
        "seed": 0,
        "splits": [
            {"k": 1, "seed": 1, "strategies": _recs(a=0.3, b=0.6, c=0.1)},
            {"k": 2, "seed": 2, "strategies": _recs(a=0.5, b=0.5, c=0.2)},
        ],
    }
    st = summarize(own, StabilityRecord.from_dict(stored), "f1", True)
    assert st.n_splits == 3
    assert st.wins == pytest.approx({"a": 1.5, "b": 1.5, "c": 0.0})  # the tie is shared
    assert st.winners == ["a", "b", None] and st.changes
    assert st.spread["a"].min == 0.3 and st.spread["a"].max == 0.5
    assert st.spread["c"].sd == pytest.approx(0.057735, abs=1e-5)
    assert "wins on F1: a 1.5, b 1.5, c 0" in sentence(st, "F1")
    steady = summarize(
        own, _stored([stored["splits"][0] | {"strategies": _recs(a=1, b=0, c=0)}]), "f1", True
    )
    assert not steady.changes and "a is best on every split" in sentence(steady, "F1")
    # lower is better; a strategy missing from a split is left out of the comparison
    low = summarize(
        own, _stored([{"k": 1, "seed": 1, "strategies": _recs(a=0.2, b=0.3)}]), "f1", False
    )
    assert low.skipped == ["c"] and low.winners == ["b", "a"]
    assert summarize(own, _stored([]), "f1", True) is None
    assert summarize(own, None, "f1", True) is None


def _stored(splits: list[dict]) -> StabilityRecord:
    """The record of stored re-splits as the run's metadata keeps them."""
    return StabilityRecord.from_dict({"resplits": len(splits), "splits": splits})


def _recs(**means: float) -> dict:
    return {n: {"status": "done", "metrics": {"f1": v}} for n, v in means.items()}


def test_stability_is_settable_from_the_cli_and_validated():
    args = parser().parse_args(["run", "--set", "stability.resplits=5"])
    assert build_config(args).stability.resplits == 5
    with pytest.raises(ConfigError, match="resplits"):
        RunConfig.from_dict({"stability": {"resplits": -1}})


def test_run_with_two_resplits_stores_scores_per_split_and_resumes(
    mini_corpus, tiny_models, tmp_path
):
    corpus, qa = mini_corpus
    cfg = RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": ["fake", "system_prompt"],
            "tuning": {"budget": "off"},
            "models": tiny_models.to_dict(),
            "split": {"test_fraction": 0.3},
            "batch_size": 4,
            "store_path": str(tmp_path / "runs.sqlite"),
            "workdir": str(tmp_path / "work"),
            "bootstrap_resamples": 200,
            "retention_questions": 0,
            "stability": {"resplits": 2},
        }
    )
    store = RunStore(cfg.store_path)
    run_id = run_comparison(cfg, store=store)
    run = store.get_run(run_id)
    assert run.status == "done"
    st = run.meta.stability
    assert [s["seed"] for s in st["splits"]] == [1, 2]
    for s in st["splits"]:
        assert set(s["strategies"]) == {"fake", "system_prompt"}
        assert all(r["status"] == "done" for r in s["strategies"].values())
        assert "f1" in s["strategies"]["fake"]["metrics"]
        assert len(s["test_ids"]) == 3 and set(s["test_ids"]) <= {f"q{i}" for i in range(1, 11)}
    assert st["splits"][0]["test_ids"] != run.meta.split.test_ids
    # resumed after losing one record: only that one is run again
    lost = st["splits"][1]["strategies"].pop("system_prompt")
    store.update_run(run_id, stability=st)
    events = []
    run_comparison(cfg, store=store, run_id=run_id, resume=True, progress=events.append)
    ran = {e.strategy for e in events if e.stage == "prepare"}
    assert ran == {"system_prompt#split2"}
    again = store.get_run(run_id).meta.stability["splits"][1]["strategies"]["system_prompt"]
    assert again["metrics"] == lost["metrics"]  # the tiny model is seeded: same answers


def test_estimate_shows_the_extra_cost_of_resplits(mini_corpus, tiny_models, tmp_path):
    from service.estimate.probe import estimate_run
    from tests.test_harness import make_config

    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "lora"],
        strategy_configs={"lora": {"epochs": 1, "batch_size": 4}},
        stability={"resplits": 3},
    )
    by = {e.strategy: e for e in estimate_run(cfg).strategies}
    sp = by["system_prompt"]
    once = sp.prepare_s + sp.seconds_per_question * 3  # 3 test questions
    assert sp.resplits_s == pytest.approx(3 * once)
    assert sp.total_s == pytest.approx(sp.prepare_s + sp.answer_s + 3 * once)
    assert by["lora"].resplits_s == 0  # trained arms join only when asked


def test_stability_views_read_the_stored_resplits(tmp_path):
    from eval import views
    from eval.views.verdict.stability import (
        recommendations,
        stability,
        stability_figures,
        stability_frame,
        stability_sentences,
    )
    from tests.test_dashboards import _store_run

    store, run_id = _store_run(tmp_path)  # own F1: rag 0.75, lora/system_prompt/few_shot 0.25
    view = views.RunView.load(store, run_id)
    assert stability(view, "f1") is None and stability_sentences(view, "f1") == []
    prices = {"system_prompt": 0.05, "few_shot": 0.08, "rag": 0.10, "lora": 0.02}

    def recs(**f1):
        return {
            n: {
                "status": "done",
                "metrics": {"f1": v},
                "price_per_1k": prices[n],
                "price_prepare": 0.0,
            }
            for n, v in f1.items()
        }

    splits = [
        {"k": 1, "seed": 1, "strategies": recs(system_prompt=0.2, few_shot=0.2, rag=0.7, lora=0.3)},
        {"k": 2, "seed": 2, "strategies": recs(system_prompt=0.5, few_shot=0.1, rag=0.4, lora=0.1)},
    ]
    store.update_run(run_id, stability={"resplits": 2, "seed": 0, "skipped": [], "splits": splits})
    view = views.RunView.load(store, run_id)
    st = stability(view, "f1")
    assert st.wins == {"system_prompt": 1.0, "few_shot": 0.0, "rag": 2.0, "lora": 0.0}
    assert st.changes
    frame = stability_frame(st).set_index("strategy")
    assert list(frame.index)[0] == "rag"
    assert frame.loc["rag", "split 2"] == 0.4 and frame.loc["rag", "min"] == 0.4
    # at a bar of 0.25: lora (cheapest a month) meets it on the own split and split 1 only
    assert recommendations(view, "f1", 0.25, 10_000) == ["lora", "lora", "system_prompt"]
    words = " ".join(stability_sentences(view, "f1", 0.25, 10_000))
    assert "wins on F1: rag 2, system_prompt 1" in words and "same on 1 of 2 re-splits" in words
    assert stability_figures(view)["metrics"]["f1"]["wins"]["rag"] == 2.0


def test_html_report_carries_the_decision_figures(tmp_path):
    from eval.views.html_report import html_report
    from tests.test_dashboards import _store_run

    store, run_id = _store_run(tmp_path)
    split = {"system_prompt": 0.2, "few_shot": 0.2, "rag": 0.7, "lora": 0.3}
    recs = {n: {"status": "done", "metrics": {"f1": v}} for n, v in split.items()}
    store.update_run(
        run_id,
        stability={"resplits": 1, "seed": 0, "splits": [{"k": 1, "seed": 1, "strategies": recs}]},
    )
    page = html.unescape(html_report(store, run_id))
    for text in (
        "Chance of best F1",
        "Holm",
        "McNemar exact",
        "Cost per right answer",
        "Across re-drawn train/test splits",
        "rag is best with probability",
    ):
        assert text in page, text


def test_sentence_when_every_split_ties():
    own = {"a": 0.0, "b": 0.0}
    st = summarize(
        own, _stored([{"k": 1, "seed": 1, "strategies": _recs(a=0.0, b=0.0)}]), "f1", True
    )
    assert "every split ends in a tie" in sentence(st, "F1") and not st.changes


def test_progress_follows_the_reruns_on_resplits():
    from service.jobs.job import Job
    from service.jobs.progress_view import describe_job, run_plan

    config = {
        "strategies": ["system_prompt", "lora"],
        "stability": {"resplits": 2},
    }
    plan = run_plan(config)
    assert plan == ["system_prompt", "lora", "system_prompt#split1", "system_prompt#split2"]
    job = Job(
        "j1", "run", "running", stage="answer", strategy="system_prompt#split2", done=1, total=2
    )
    line = describe_job(job, plan, now=0.0)
    assert line.position == 4 and line.fraction > 0.75
    assert "Strategy 4 of 4: System prompt (closed book), re-split 2, answering" in line.text
