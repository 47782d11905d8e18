"""Dashboards, charts and exports over runs written straight into a store with chosen numbers."""

from __future__ import annotations

import html
import json
import re
import sqlite3

import numpy as np
import pytest

from cli.args import parser as _parser
from cli.main import build_config
from core.types import Answer, Context, Cost
from eval import views
from eval.config import RunConfig
from eval.metrics import METRICS, Metric
from eval.records import CostSummary, PreparedRecord, ResultExtras
from eval.stats.intervals import Interval, bootstrap_ci
from eval.store.runs import RunStore, StoredAnswer, StrategyResult
from eval.views import charts
from eval.views.format import display_name
from eval.views.html_report import chart_svg, cli_command, html_report, run_config_yaml
from eval.views.verdict.diagnostics import diagnose

N = 20
QIDS = [f"q{i}" for i in range(N)]


def _f1(strategy: str) -> list[float]:
    """Chosen per-question F1: system_prompt knows q0-q4; rag gets q0-q14; lora trades q0-q4
    (regressions) for q5-q9; few_shot equals system_prompt."""
    right = {
        "system_prompt": range(0, 5),
        "few_shot": range(0, 5),
        "rag": range(0, 15),
        "lora": range(5, 10),
        "lora@50%": range(5, 7),
    }[strategy]
    return [1.0 if i in right else 0.0 for i in range(N)]


COSTS = {
    # strategy: (prepare_s, latency_p50_s, price_prepare, price_per_1k)
    "system_prompt": (0.0, 0.20, 0.0, 0.05),
    "few_shot": (0.5, 0.40, 0.0, 0.08),
    "rag": (3.0, 0.50, 0.01, 0.10),
    "lora": (100.0, 0.15, 1.0, 0.02),
    "lora@50%": (50.0, 0.15, 0.5, 0.02),
}


def _result(name: str, scores: dict[str, list[float | None]]) -> StrategyResult:
    prep_s, p50, pp, p1k = COSTS[name]
    metrics = {m: bootstrap_ci(v, n_resamples=500) for m, v in scores.items()}
    extras: dict = {}
    details: dict = {}
    if name.startswith("lora"):
        extras = {"train_fraction": 1.0, "train_pairs": 20}
        if name == "lora@50%":
            extras = {"variant_of": "lora", "train_fraction": 0.5, "train_pairs": 10}
        else:
            extras["retention"] = {
                "metric": "f1",
                "n": 6,
                "score": {"mean": 0.30, "low": 0.2, "high": 0.4},
                "base": {"mean": 0.35, "low": 0.25, "high": 0.45},
                "delta": -0.05,
            }
            details = {
                "loss_curve": [2.0, 1.5, 1.2, 1.0],
                "eval_loss_curve": [{"step": 2, "loss": 1.6}, {"step": 4, "loss": 1.4}],
                "best_step": 4,
            }
    return StrategyResult(
        strategy=name,
        status="done",
        config={"top_k": 3} if name == "rag" else {},
        prepare=PreparedRecord(seconds=prep_s, details=details),
        cost=CostSummary(
            prepare_s=prep_s,
            latency_p50_s=p50,
            latency_p95_s=p50 * 2,
            price_prepare=pp,
            price_per_1k=p1k,
            trainable_params=1000 if name.startswith("lora") else 0,
            currency="USD",
        ),
        metrics=metrics,
        extras=ResultExtras.from_dict(extras),  # the stored JSON shape of the extras
    )


def _store_run(tmp_path, strategies=("system_prompt", "few_shot", "rag", "lora", "lora@50%")):
    store = RunStore(tmp_path / "runs.sqlite")
    cfg = RunConfig(strategies=["system_prompt", "few_shot", "rag", "lora"], name="synthetic")
    run_id = store.create_run(cfg.to_dict(), cfg.name)
    store.update_run(run_id, device="cpu", models={"generator": "tiny", "embedder": "minilm"})
    for name in strategies:
        f1 = _f1(name)
        recall = [1.0] * 15 + [0.0] * 5 if name == "rag" else [None] * N
        answers = []
        for i, q in enumerate(QIDS):
            ctx = [Context(f"passage about {q}", "doc.md", 0.9)] if name == "rag" else []
            answers.append(
                StoredAnswer(
                    name,
                    q,
                    f"Question {i}?",
                    [f"gold {i}"],
                    Answer(f"Question {i}?", f"{name} says {i}", ctx, Cost(10, 3, 0.1 + i / 100)),
                    {"f1": f1[i], "recall_at_k": recall[i]},
                )
            )
        store.save_strategy(run_id, _result(name, {"f1": f1, "recall_at_k": recall}), answers)
    store.finish_run(run_id, "done")
    return store, run_id


@pytest.fixture
def synthetic(tmp_path):
    store, run_id = _store_run(tmp_path)
    return store, run_id, views.RunView.load(store, run_id)


def test_side_by_side_marks_best_per_direction_and_excludes_variants(synthetic, monkeypatch):
    store, run_id, _ = synthetic
    # A lower-is-better metric: the best is the smallest value.
    monkeypatch.setitem(METRICS, "err", Metric("err", "Err", lambda i, e: [], False))
    for s, v in {"system_prompt": 0.3, "few_shot": 0.1, "rag": 0.5, "lora": 0.2}.items():
        store.save_scores(
            run_id, s, {"err": dict.fromkeys(QIDS, v)}, {"err": Interval(v, v, v, len(QIDS))}
        )
    sbs = views.side_by_side(views.RunView.load(store, run_id))
    assert list(sbs.table.index) == ["system_prompt", "few_shot", "rag", "lora"]  # no lora@50%
    assert sbs.best["f1"] == "rag"
    assert sbs.best["err"] == "few_shot"
    assert sbs.best["prepare_s"] == "system_prompt"
    assert sbs.best["latency_p50_s"] == "lora"
    assert sbs.best["price_per_1k"] == "lora"
    assert sbs.best["trainable_params"] == "system_prompt"
    assert sbs.table.loc["rag", "f1"] == pytest.approx(0.75)
    disp = sbs.display.set_index("Strategy")
    assert disp.loc["rag", "F1"].startswith("★")
    assert not disp.loc["lora", "F1"].startswith("★")
    sig = sbs.significance.set_index(["metric", "strategy"])
    # system_prompt is 10 questions behind rag: a clear, significant gap.
    assert sig.loc[("f1", "system_prompt"), "significant"]
    assert sig.loc[("f1", "system_prompt"), "p_value"] < 0.01
    assert sig.loc[("f1", "system_prompt"), "diff"] == pytest.approx(-0.5)


def test_paired_test_clear_difference_noise_and_identical(synthetic):
    _, _, view = synthetic
    clear = views.compare_strategies(view, "rag", "system_prompt")
    assert clear.significant and clear.mean_diff == pytest.approx(0.5) and clear.n == N
    same = views.compare_strategies(view, "few_shot", "system_prompt")
    assert same.p_value == 1.0 and not same.significant
    rng = np.random.default_rng(1)
    base = {q: float(x) for q, x in zip(QIDS, rng.uniform(0, 1, N), strict=True)}
    noise = rng.normal(0, 0.05, N)
    noisy = {q: base[q] + noise[i] - noise.mean() for i, q in enumerate(QIDS)}
    t = views.paired_test(base, noisy)
    assert not t.significant and t.p_value > 0.5
    # Exact small case: 5 differences all +1 -> only all-plus and all-minus reach |mean| = 1.
    five = views.paired_test(dict.fromkeys("abcde", 1.0), dict.fromkeys("abcde", 0.0))
    assert five.exact and five.p_value == pytest.approx(2 / 32)
    with pytest.raises(KeyError, match="no finished strategy 'nope'"):
        views.compare_strategies(view, "nope", "rag")
    with pytest.raises(ValueError, match="metric 'bleu' is not in run"):
        views.compare_strategies(view, "rag", "lora", metric="bleu")


def test_compare_runs_matches_questions_by_qid(tmp_path):
    store_a, id_a = _store_run(tmp_path / "a")
    store_b, id_b = _store_run(tmp_path / "b")
    a, b = views.RunView.load(store_a, id_a), views.RunView.load(store_b, id_b)
    t = views.compare_runs(a, b, "rag")
    assert t.n == N and t.p_value == 1.0
    t2 = views.compare_runs(a, b, "rag", strategy_b="system_prompt")
    assert t2.significant and t2.mean_diff == pytest.approx(0.5)


def test_quality_vs_cost_pareto(synthetic):
    _, _, view = synthetic
    df = views.quality_vs_cost(view, "f1", "price_per_1k").set_index("strategy")
    assert set(df.index[df.pareto]) == {"lora", "rag"}
    by_time = views.quality_vs_cost(view, "f1", "prepare_s").set_index("strategy")
    assert set(by_time.index[by_time.pareto]) == {"system_prompt", "rag"}
    with pytest.raises(ValueError, match="unknown cost"):
        views.quality_vs_cost(view, "f1", "bananas")
    assert views.pareto_mask([1, 2, 3], [1, 2, 3]) == [True, True, True]
    assert views.pareto_mask([1, 1], [2, 1]) == [False, True]


def test_break_even_crossings_exact(synthetic):
    _, _, view = synthetic
    be = views.break_even(view)
    cross = {(r.a, r.b): r for r in be.crossings.itertuples()}
    # rag 0.01 + n*0.0001 = lora 1.0 + n*0.00002  ->  n = 0.99 / 0.00008
    assert cross[("rag", "lora")].volume == pytest.approx(0.99 / 0.00008)
    assert cross[("rag", "lora")].cost == pytest.approx(0.01 + 0.0001 * 0.99 / 0.00008)
    assert cross[("rag", "lora")].cheaper_after == "lora"
    assert cross[("system_prompt", "lora")].volume == pytest.approx(1.0 / 0.00003)
    # Lines starting at the same point never cross at a positive volume.
    assert ("system_prompt", "few_shot") not in cross
    pays = be.pays_off.set_index("other")
    assert pays.loc["rag", "from_volume"] == pytest.approx(12375)
    assert "12,375 questions" in pays.loc["rag", "sentence"]
    assert be.x_max == pytest.approx(1.5 * 1.0 / 0.00003)
    assert set(be.curve.strategy) == {"system_prompt", "few_shot", "rag", "lora"}
    assert views.crossing(0, 1, 0, 1) is None and views.crossing(1, 1, 0, 2) == 1


def test_recommendation_cheapest_meeting_threshold_and_volume(synthetic):
    _, _, view = synthetic
    rec = views.recommend(view, 10_000, "f1", 0.5)
    assert rec.choice == "rag"
    assert rec.reasons[0].startswith("rag meets F1 ≥ 0.5 (0.750 [")
    assert "$1.00 a month at 10,000 questions" in rec.reasons[0]
    assert any(r.startswith("lora is cheaper ($0.28 a month) but its F1 0.25") for r in rec.reasons)
    # A lower bar: at 10,000 a month lora's cheap answers beat its preparation; at 1,000 not.
    assert views.recommend(view, 10_000, "f1", 0.2).choice == "lora"
    assert views.recommend(view, 1_000, "f1", 0.2).choice == "system_prompt"
    none = views.recommend(view, 1_000, "f1", 0.9)
    assert none.choice is None and none.best == "rag"
    assert none.reasons[0].startswith("No strategy meets F1 ≥ 0.9; the best is rag")
    # rag's interval reaches 0.8 though its mean 0.75 does not.
    upper = views.recommend(view, 1_000, "f1", 0.8)
    assert upper.table.set_index("strategy").loc["rag", "status"] == "upper bound only"
    assert any("only its interval's upper bound" in r for r in upper.reasons)
    with pytest.raises(ValueError, match="months"):
        views.recommend(view, 1_000, months=0)


def test_explorer_and_filters(synthetic):
    _, _, view = synthetic
    df = views.question_explorer(view, "f1")
    assert len(df) == N and list(df.columns[:3]) == ["qid", "question", "golds"]
    assert df.loc[0, "rag answer"] == "rag says 0" and df.loc[0, "rag score"] == 1.0
    assert "[chunk: doc.md] passage about q0" in df.loc[0, "rag contexts"]
    assert df.loc[0, "lora contexts"] == ""
    assert set(views.disagreements(df).qid) == set(QIDS[:15])
    assert set(views.all_wrong(df).qid) == set(QIDS[15:])
    only_two = views.question_explorer(view, "f1", ["system_prompt", "few_shot"])
    assert views.disagreements(only_two).empty


def test_knowledge_slices_counts_and_regressions(synthetic, tmp_path):
    _, _, view = synthetic
    ks = views.knowledge_slices(view)
    t = ks.table.set_index("strategy")
    assert ks.known == QIDS[:5]
    assert t.loc["lora", "known_n"] == 5 and t.loc["lora", "new_n"] == 15
    assert t.loc["lora", "known_mean"] == 0.0
    assert t.loc["lora", "new_mean"] == pytest.approx(5 / 15)
    assert t.loc["lora", "regressions"] == 5
    assert t.loc["rag", "regressions"] == 0 and t.loc["rag", "new_mean"] == pytest.approx(10 / 15)
    store, run_id = _store_run(tmp_path / "nobase", strategies=("rag", "lora"))
    missing = views.knowledge_slices(views.RunView.load(store, run_id))
    assert missing.table is None and "no finished 'system_prompt'" in missing.reason


def test_retention_learning_and_loss_curves(synthetic):
    _, _, view = synthetic
    ret = views.retention_vs_gain(view).set_index("strategy")
    assert ret.loc["rag", "domain_gain"] == pytest.approx(0.5)
    assert ret.loc["lora", "retention_delta"] == pytest.approx(-0.05)
    assert np.isnan(ret.loc["rag", "retention_delta"])
    lc = views.learning_curve(view)
    assert list(lc.train_pairs) == [10, 20] and list(lc.label) == ["lora@50%", "lora"]
    assert list(lc["mean"]) == pytest.approx([0.1, 0.25])
    assert list(lc.prepare_s) == [50.0, 100.0]
    loss = views.loss_curves(view)
    assert list(loss[loss.kind == "train"].step) == [1, 2, 3, 4]
    assert list(loss[loss.best].step) == [4]
    lat = views.latency_frame(view)
    assert len(lat) == 4 * N and lat.latency_s.max() == pytest.approx(0.29)
    rec = views.retrieval_recall(view)
    assert list(rec.strategy) == ["rag"] and rec.loc[0, "mean"] == pytest.approx(0.75)


def test_charts_render_to_svg(synthetic):
    _, _, view = synthetic
    built = [
        charts.quality_cost_chart(views.quality_vs_cost(view)),
        charts.break_even_chart(views.break_even(view)),
        charts.learning_curve_chart(views.learning_curve(view)),
        charts.loss_curve_chart(views.loss_curves(view)),
        charts.latency_chart(views.latency_frame(view)),
        charts.recall_chart(views.retrieval_recall(view)),
        charts.retention_chart(views.retention_vs_gain(view)),
        charts.loss_curve_chart(views.loss_curves(view).iloc[0:0]),  # the empty case
        charts.attribution_chart(diagnose(view).cells, 0.3),
        charts.attribution_chart([]),
    ]
    for c in built:
        assert chart_svg(c).lstrip().startswith(("<svg", "<?xml"))


def test_html_report_self_contained(synthetic):
    store, run_id, _ = synthetic
    page = html_report(store, run_id)
    assert page.startswith("<!DOCTYPE html>") and "<table" in page
    assert page.count("<svg") >= 7
    # the Compare page's first screen opens it, for the default inputs or the given ones
    decision = page.index("<h2>Decision</h2>")
    assert decision < page.index("<h2>Quality</h2>") < page.index("<h2>Cost</h2>")
    assert f"Use <b>{display_name('lora')}</b>: it meets your bar (F1 ≥ 0.1)" in page
    assert f"Use <b>{display_name('rag')}</b>: it meets your bar (F1 ≥ 0.5)" in html_report(
        store, run_id, threshold=0.5
    )
    assert "★" not in page and "None" not in page
    assert not re.search(r"<script|<link|(src|href)\s*=\s*['\"]?https?://", page, re.I)
    assert "python -m eval run --config run.yaml" in page
    named = html_report(store, run_id, corpus_name="Health articles")
    assert "Corpus: Health articles — " in named  # the name, not the folder (the YAML keeps it)
    assert "<h2>Why strategies lost</h2>" in page and "Detectable gap (MDD)" in page


def test_html_report_caveats_warn_tables_scroll_and_no_server_path(synthetic, tmp_path):
    store, run_id, view = synthetic
    folders = {k: str(tmp_path / "srv" / k) for k in ("corpus", "qa", "workdir", "store_path")}
    config = {**store.get_run(run_id).config, **folders}
    with sqlite3.connect(tmp_path / "runs.sqlite") as c:  # a run made on a server's folders
        c.execute("UPDATE runs SET config_json=? WHERE id=?", (json.dumps(config), run_id))
    page = html_report(store, run_id)
    assert str(tmp_path) not in page  # not in the header, the YAML nor any message
    assert "<h2>Reproduce</h2>" in page and "corpus: corpus" in page
    caveats = diagnose(view).headline
    assert caveats  # this run's test set cannot tell every strategy apart
    for text in caveats:
        assert f"<p class='caution'><b>{html.escape(text)}</b></p>" in page
    assert ".caution{" in page and "#eef7ee" not in page.split(".caution{")[1].split("}")[0]
    assert page.count("<table") == page.count("<div class='wide'><table")  # wide ones scroll
    headers = re.findall(r"<th>(.*?)</th>", page)
    assert headers and not [h for h in headers if re.search(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b", h)]


def test_yaml_round_trips_and_command_is_accepted(synthetic, tmp_path):
    store, run_id, _ = synthetic
    run = store.get_run(run_id)
    text = run_config_yaml(run)
    assert RunConfig.from_yaml(text).to_dict() == run.config
    cmd = cli_command(run)
    assert cmd == "python -m eval run --config run.yaml"
    (tmp_path / "run.yaml").write_text(text, encoding="utf-8")
    args = _parser().parse_args(cmd.split()[3:])
    args.config = str(tmp_path / args.config)
    assert build_config(args).to_dict() == run.config


def test_every_piece_from_a_real_harness_run(mini_corpus, tiny_models, tmp_path):
    from eval.run.harness import run_comparison

    from .test_harness import make_config

    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["fake"],
        metrics=["exact_match", "f1", "groundedness", "recall_at_k"],
    )
    run_id = run_comparison(cfg)
    store = RunStore(cfg.store_path)
    view = views.RunView.load(store, run_id)
    assert view.run.status == "done"
    assert len(views.side_by_side(view).table) == 1
    views.compare_strategies(view, "fake", "fake")
    views.quality_vs_cost(view)
    views.break_even(view)
    assert views.recommend(view, 10_000, "f1", 0.0).choice == "fake"
    assert len(views.question_explorer(view)) == 3
    assert views.knowledge_slices(view).table is None
    views.retention_vs_gain(view)
    assert views.learning_curve(view).empty
    views.loss_curves(view)
    views.latency_frame(view)
    views.retrieval_recall(view)
    page = html_report(store, run_id)
    assert "<svg" in page and "fake" in page
    assert RunConfig.from_yaml(run_config_yaml(view.run)).to_dict() == view.run.config


def test_verdict_names_the_best_its_lead_its_cost_and_the_break_even(synthetic):
    view = synthetic[2]
    text = views.verdict(view, views.side_by_side(view), views.break_even(view))
    assert text.startswith("**rag** scores the best F1")
    assert "It is significantly ahead of the next one" in text  # 15 right vs 5 of 20
    assert "+0.500 over the base model" in text
    assert "costs $0.10 per 1,000 questions" in text and "Fine-tuning: lora" in text
