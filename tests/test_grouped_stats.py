"""Group-aware statistics against known answers: the cluster bootstrap and the grouped sign-flip
and McNemar tests against exact enumeration, the d_z interval, power for the test run, ROUGE-L in
any script, stability with a failed re-split, and the calibration's bounds."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from rouge_score import rouge_scorer
from scipy.stats import binomtest

from cli.main import main
from core.config import SplitConfig
from core.qa import split_pairs, split_pairs_grouped
from core.types import QAPair
from eval.config import RunConfig
from eval.metrics import rouge_l
from eval.run.harness import run_comparison
from eval.stats.calibration import Settings, Synthetic, calibrate_scores, calibrate_synthetic
from eval.stats.decision import effect_size, mcnemar_exact, mcnemar_grouped, prob_best
from eval.stats.groups import group_codes, small_sample_scale
from eval.stats.intervals import bootstrap_ci, cluster_bootstrap_means
from eval.stats.paired import paired_test, sign_flip_p
from eval.stats.power import (
    SignFlipPower,
    mcnemar_power,
    power_line,
)
from eval.stats.stability import StabilityRecord, sentence, summarize
from eval.store.runs import RunStore
from eval.views import RunView
from tests.test_dashboards import _store_run

# --- the cluster bootstrap -----------------------------------------------------------------


def test_cluster_bootstrap_draws_whole_groups_as_exact_enumeration_says():
    # three groups: {1.0, 1.0}, {0.0}, {0.5, 0.0, 0.25}; every ordered draw of 3 groups
    x = np.array([1.0, 1.0, 0.0, 0.5, 0.0, 0.25])
    labels = ["a", "a", "b", "c", "c", "c"]
    codes = group_codes(labels, x.size)
    sums, sizes = [2.0, 0.0, 0.75], [2, 1, 3]
    exact: dict[float, float] = {}
    for draw in itertools.product(range(3), repeat=3):
        m = round(sum(sums[g] for g in draw) / sum(sizes[g] for g in draw), 10)
        exact[m] = exact.get(m, 0.0) + 1 / 27
    means = np.round(cluster_bootstrap_means(x, codes, 40_000, seed=3), 10)
    assert set(np.unique(means)) <= set(exact)  # no mean a whole-group draw cannot make
    for value, p in exact.items():
        assert np.mean(means == value) == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 40_000))


def test_singleton_groups_are_the_plain_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.random(30)
    plain = x[np.random.default_rng(7).integers(0, 30, size=(500, 30))].mean(axis=1)
    same = cluster_bootstrap_means(x, group_codes(None, 30), 500, seed=7)
    assert same == pytest.approx(plain)
    assert bootstrap_ci(list(x), seed=7) == bootstrap_ci(list(x), groups=list(range(30)), seed=7)


def test_bootstrap_interval_is_the_widened_percentile_interval_and_wider_for_groups():
    x = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0] * 5
    iv = bootstrap_ci(x, n_resamples=4000, seed=1)
    means = cluster_bootstrap_means(np.asarray(x), group_codes(None, 30), 4000, seed=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    scale = small_sample_scale(30)
    assert iv.low == pytest.approx(0.5 + (lo - 0.5) * scale)
    assert iv.high == pytest.approx(0.5 + (hi - 0.5) * scale)
    # the same scores where each run of three equal answers is one group: 10 units, not 30
    grouped = bootstrap_ci(x, groups=[i // 3 for i in range(30)], n_resamples=4000, seed=1)
    assert grouped.mean == iv.mean and grouped.high - grouped.low > 1.5 * (iv.high - iv.low)
    one = bootstrap_ci([0.2, 0.4, None], groups=["g", "g", "h"])  # one group left: no spread
    assert one.low == one.high == pytest.approx(0.3) and one.n == 2


def test_prob_best_resamples_groups_jointly():
    # b is right on one group of three questions, a on three single questions: drawn by
    # group, b is best when its group's three questions outnumber a's drawn singletons
    a = {f"q{i}": 0.0 for i in range(6)} | {"q3": 1.0, "q4": 1.0, "q5": 1.0}
    b = {f"q{i}": 0.0 for i in range(6)} | {"q0": 1.0, "q1": 1.0, "q2": 1.0}
    groups = {"q0": "g", "q1": "g", "q2": "g"}
    p = prob_best({"a": a, "b": b}, groups=groups, n_resamples=20_000, seed=2)
    # exact: 4 units (g, q3, q4, q5) drawn 4 times; b best when count(g) * 3 > count(q3..q5)
    win = tie = 0.0
    for draw in itertools.product(range(4), repeat=4):
        k = draw.count(0)
        win += (3 * k > 4 - k) / 256
        tie += (3 * k == 4 - k) / 256
    assert p["b"] == pytest.approx(win + tie / 2, abs=0.015)


# --- the grouped sign-flip and McNemar tests -----------------------------------------------


def _enumerated_p(sums: list[float], n: int) -> float:
    """Two-sided sign-flip p by brute force: every sign of every group sum."""
    observed = abs(sum(sums)) / n
    hits = [
        abs(sum(s * x for s, x in zip(signs, sums, strict=True))) / n >= observed - 1e-12
        for signs in itertools.product((1, -1), repeat=len(sums))
    ]
    return sum(hits) / len(hits)


def test_grouped_sign_flip_matches_enumeration():
    a = {"q1": 1.0, "q2": 0.5, "q3": 0.0, "q4": 1.0, "q5": 0.25, "q6": 0.25, "q7": 0.3}
    b = {"q1": 0.0, "q2": 0.0, "q3": 0.5, "q4": 0.0, "q5": 0.0, "q6": 0.0, "q7": 0.3}
    groups = {"q1": "g1", "q2": "g1", "q5": "g4", "q6": "g4"}
    t = paired_test(a, b, groups=groups)
    # group sums: g1 1.5, q3 -0.5, q4 1.0, g4 0.5, q7 0 (no difference: no part in the test)
    assert t.exact and t.groups == 5 and t.n == 7
    assert t.p_value == pytest.approx(_enumerated_p([1.5, -0.5, 1.0, 0.5], 7))
    # |±1.5 ±0.5 ±1 ±0.5| >= 2.5: 3.5, 2.5 (-0.5 flipped), 2.5 (0.5 flipped), and mirrored
    assert t.p_value == pytest.approx(6 / 16)
    # per question the same differences look far more certain
    assert paired_test(a, b).p_value < t.p_value


def test_sampled_sign_flip_agrees_with_enumeration_above_the_exact_limit():
    rng = np.random.default_rng(4)
    sums = list(np.round(rng.normal(0.3, 1.0, size=16), 3))  # 16 groups: sampled
    exact = _enumerated_p(sums, 40)
    p, was_exact = sign_flip_p(np.asarray(sums), 40, n_resamples=20_000, seed=1)
    assert not was_exact
    assert p == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4)


def test_mcnemar_without_groups_is_the_exact_binomial_and_with_groups_flips_them():
    diffs = [1, 1, 1, 1, 1, 1, 1, -1, 0, 0, 0]
    assert mcnemar_grouped(diffs)[0] == pytest.approx(mcnemar_exact(7, 1))
    assert mcnemar_grouped(diffs)[0] == pytest.approx(binomtest(7, 8, 0.5).pvalue)
    # the seven "only a right" come as two groups of three and one single: three units
    labels = ["g", "g", "g", "h", "h", "h", "x", "y", "z1", "z2", "z3"]
    p, test = mcnemar_grouped(diffs, labels)
    assert test == "McNemar, groups flipped"
    assert p == pytest.approx(_enumerated_p([3, 3, 1, -1], 11))
    assert p > mcnemar_exact(7, 1)


# --- effect size, ROUGE-L, stability -------------------------------------------------------


def test_dz_interval_keeps_all_zero_resamples_and_includes_zero_with_the_mean():
    e = effect_size([1.0] + [0.0] * 39)
    assert e.low <= 0.0 <= e.high
    assert e.d_low <= 0.0 <= e.d_high  # was [0.158, 0.329]: all-zero resamples dropped
    # all differences equal and non-zero in a resample: d_z is +inf there, kept
    e2 = effect_size([1.0, 1.0, 1.0, 0.0], n_resamples=4000)
    assert e2.d_high == math.inf and e2.d_low <= e2.d_z


def test_rouge_l_reads_any_script_and_keeps_rouge_score_on_ascii():
    assert rouge_l("Москва", "Москва") == 1.0
    assert rouge_l("café", "café") == 1.0
    assert rouge_l("Столица — Москва", "Москва") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert rouge_l("Le café noir", "cafe\u0301 noir") == pytest.approx(0.8)  # NFC
    ref = rouge_scorer.RougeScorer(["rougeL"])
    for pred, gold in [("The cat_sat on-the mat!", "the cat sat"), ("1945, in May", "May 1945")]:
        assert rouge_l(pred, gold) == ref.score(gold, pred)["rougeL"].fmeasure


def test_a_strategy_failing_on_a_resplit_is_listed_apart_never_a_loss():
    own = {"a": 0.5, "b": 0.4}
    stored = StabilityRecord.from_dict(
        {
            "strategies": ["a", "b"],
            "splits": [
                {"k": 1, "seed": 1, "strategies": {"a": {"status": "failed", "error": "OOM"}}}
                | {"strategies": {"a": {"status": "failed"}, "b": _done(0.6)}},
                {"k": 2, "seed": 2, "strategies": {"a": _done(0.7), "b": _done(0.3)}},
            ],
        }
    )
    st = summarize(own, stored, "f1", True)
    assert st.failed == {"a": [1]} and st.left_out == [1] and st.skipped == []
    assert [s.k for s in st.splits] == [0, 2]  # split 1 not compared
    assert st.wins == {"a": 2.0, "b": 0.0}
    words = sentence(st, "F1")
    assert "a on re-split 1" in words and "best on every split compared" in words
    assert "best on every split;" not in words and "they train" not in words
    # only the survivor on every re-split: never "b is best on every split"
    alone = StabilityRecord.from_dict(
        {
            "strategies": ["a", "b"],
            "splits": [{"k": 1, "seed": 1, "strategies": {"a": {"status": "failed"}} | {}}]
            + [{"k": 2, "seed": 2, "strategies": {"a": {"status": "failed"}, "b": _done(0.9)}}],
        }
    )
    st2 = summarize({"a": 0.3, "b": 0.4}, alone, "f1", True)
    words2 = sentence(st2, "F1")
    assert st2.n_splits == 1 and "b is best on every split" not in words2
    assert "no re-split could be compared" in words2 and "a on re-splits 1, 2" in words2


def _done(v: float) -> dict:
    return {"status": "done", "metrics": {"f1": v}}


# --- power for the test actually run -------------------------------------------------------


def test_mcnemar_power_is_exact():
    n, q, gap = 12, 0.5, 0.3
    theta = (1 + gap / q) / 2
    brute = 0.0
    for m in range(n + 1):
        pm = math.comb(n, m) * q**m * (1 - q) ** (n - m)
        for k in range(m + 1):
            p = 1.0 if m == 0 else binomtest(k, m, 0.5).pvalue
            if p < 0.05:
                brute += pm * math.comb(m, k) * theta**k * (1 - theta) ** (m - k)
    assert mcnemar_power(n, q, gap) == pytest.approx(brute)


def test_mdd_of_mcnemar_has_80_percent_power():
    a = {f"q{i}": float(i < 14) for i in range(40)}
    b = {f"q{i}": float(6 <= i < 16) for i in range(40)}  # 6 only-a, 2 only-b: q = 0.2
    line = power_line(a, b, names=("a", "b"), metric="em", target=0.1)
    assert line.test == "McNemar exact"
    assert mcnemar_power(40, 0.2, line.mdd) == pytest.approx(0.8, abs=0.005)
    assert mcnemar_power(40, 0.2, line.mdd - 0.01) < 0.8
    assert mcnemar_power(line.n_needed, 0.2, 0.1) >= 0.8


def test_simulated_sign_flip_mdd_reaches_80_percent_on_fresh_data():
    rng = np.random.default_rng(5)
    diffs = np.round(rng.normal(0.0, 0.3, size=30), 3)
    a = {f"q{i}": float(d) for i, d in enumerate(diffs)}
    b = {f"q{i}": 0.0 for i in range(30)}
    line = power_line(a, b, names=("a", "b"), metric="f1", target=0.1, seed=1)
    assert line.test == "sign-flip, simulated" and line.mdd is not None
    # fresh data sets from the same model at the MDD, tested by the real test
    centred, hits, trials = diffs - diffs.mean(), 0, 300
    for r in range(trials):
        draw = centred[rng.integers(0, 30, size=30)] + line.mdd
        x = {f"q{i}": float(v) for i, v in enumerate(draw)}
        hits += paired_test(x, b, n_resamples=1000, seed=r).significant
    assert hits / trials == pytest.approx(0.8, abs=3 * math.sqrt(0.16 / trials) + 0.02)
    assert SignFlipPower(diffs).power(0.0) < 0.1  # no gap: about alpha


# --- groups from the split, and calibration ------------------------------------------------


def test_split_gives_each_question_its_group():
    pairs = [
        QAPair("p1", "Where do T cells mature?", ("thymus",), passage="The thymus..."),
        QAPair("p2", "Which organ matures T cells?", ("thymus",), passage="The thymus..."),
        QAPair("p3", "What does a pharmacist do?", ("dispense",)),
        QAPair("p4", "Where do T cells mature in the body?", ("thymus",)),
        QAPair("p5", "What is insulin?", ("a hormone",)),
    ]
    train, test, groups = split_pairs_grouped(pairs, SplitConfig(test_fraction=0.4, seed=1))
    assert (train, test) == split_pairs(pairs, SplitConfig(test_fraction=0.4, seed=1))
    assert groups["p1"] == groups["p2"] == groups["p4"] == "p1"  # passage, then near-duplicate
    assert groups["p3"] == "p3" and groups["p5"] == "p5"


def test_calibration_holds_its_bounds_on_synthetic_clustered_data():
    settings = Settings(runs=200, resamples=300, flips=400, seed=11)
    for binary in (True, False):
        cal = calibrate_synthetic(Synthetic(binary=binary), settings)
        assert cal.within_goals, cal.lines()
        assert "false winners: " in cal.lines()[1] and "interval coverage: " in cal.lines()[2]
    # the same graded data with the groups ignored: the procedure the issue measured
    naive = calibrate_synthetic(Synthetic(binary=False), settings, grouped=False)
    assert naive.false_winners.share > 0.10 and not naive.within_goals


def test_calibration_on_a_runs_own_scores_swaps_labels_within_groups():
    rng = np.random.default_rng(2)
    qids = [f"q{i}" for i in range(30)]
    groups = {q: f"g{i // 2}" for i, q in enumerate(qids)}
    scores = {
        "rag": {q: float(rng.random() < 0.6) for q in qids},
        "lora": {q: float(rng.random() < 0.3) for q in qids},
    }
    cal = calibrate_scores(scores, groups, Settings(runs=150, resamples=300, flips=300))
    assert (cal.questions, cal.groups, cal.strategies) == (30, 15, 2)
    assert cal.within_goals, cal.lines()


def test_calibrate_command_prints_false_winners_and_coverage(tmp_path, capsys):

    store, run_id = _store_run(tmp_path)
    out = tmp_path / "cal.json"
    code = main(
        ["calibrate", run_id, "--store", str(store.path), "--runs", "40", "--json", str(out)]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert text.count("false winners: ") == 2 and text.count("interval coverage: ") == 2
    assert "4 strategies, 20 questions in 20 groups" in text  # an old run: singletons
    assert "synthetic clustered, binary (McNemar)" in text
    data = json.loads(out.read_text())
    assert data["own"]["false_winners"]["trials"] == 40
    assert main(["calibrate", run_id, "--store", str(store.path), "--metric", "nope"]) == 2


def test_a_run_stores_its_test_groups_and_its_intervals_resample_them(mini_corpus, tmp_path):

    corpus, qa = mini_corpus
    rows = [json.loads(line) for line in qa.read_text().splitlines()]
    for i, row in enumerate(rows):  # the first six pairs come from two passages
        if i < 6:
            row["passage"] = f"passage {i // 3}"
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": ["fake", "fake2"],
            "tuning": {"budget": "off"},
            "metrics": ["f1"],
            "split": {"test_fraction": 0.6, "seed": 3},
            "store_path": str(tmp_path / "runs.sqlite"),
            "workdir": str(tmp_path / "work"),
            "bootstrap_resamples": 300,
            "retention_questions": 0,
        }
    )
    store = RunStore(cfg.store_path)
    run = store.get_run(run_comparison(cfg, store=store))
    split = run.meta.split.to_dict()
    assert set(split["groups"]) == set(split["test_ids"])
    by_passage = {r["id"]: f"passage {i // 3}" for i, r in enumerate(rows) if i < 6}
    for q in split["test_ids"]:  # questions of one passage share a group id, others their own
        same = [p for p in split["test_ids"] if by_passage.get(p, p) == by_passage.get(q, q)]
        assert {split["groups"][p] for p in same} == {split["groups"][q]}
    view = RunView.load(store, run.id)
    assert view.n_groups() == len(set(split["groups"].values())) < len(split["test_ids"])
    scores = view.scores("fake", "f1")
    labels = [split["groups"][q] for q in scores]
    want = bootstrap_ci(list(scores.values()), groups=labels, n_resamples=300, seed=3)
    assert view.result("fake").metrics["f1"] == want
