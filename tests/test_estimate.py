"""Dry-run estimate: measured on a probe, extrapolated for training, nothing stored."""

from __future__ import annotations

from eval.config import RunConfig
from eval.store.runs import RunStore
from service.estimate.probe import estimate_run, oracle_seconds
from service.estimate.records import StrategyEstimate
from tests.test_harness import make_config


def test_estimate_covers_every_strategy_and_stores_nothing(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "rag", "lora", "fake"],
        strategy_configs={"lora": {"epochs": 2, "batch_size": 2}},
        learning_curve=[0.5],
    )
    est = estimate_run(cfg)
    assert est.questions == 3 and est.train == 7
    by = {e.strategy: e for e in est.strategies}
    assert list(by) == cfg.strategies
    for e in by.values():
        assert e.error is None
        assert e.seconds_per_question > 0 and e.total_s >= e.answer_s > 0
    # passages make RAG prompts longer than closed-book ones
    assert by["rag"].prompt_tokens_mean > by["system_prompt"].prompt_tokens_mean
    assert "trains 8 steps" in by["lora"].prepare_note  # ceil(7 / 2) * 2
    assert by["lora"].variants_s > 0 and by["rag"].variants_s == 0
    assert est.total_s >= sum(e.total_s for e in by.values())
    assert RunStore(cfg.store_path).list_runs() == []


def test_a_strategy_that_cannot_prepare_is_reported_not_raised(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["fake", "system_prompt"],
        strategy_configs={"fake": {"fail_on_prepare": True}},
    )
    by = {e.strategy: e for e in estimate_run(cfg).strategies}
    assert "asked to fail" in by["fake"].error
    assert by["system_prompt"].error is None


def test_estimate_runs_as_a_worker_job_and_scales_a_sampled_preparation(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    from service.estimate import probe as estimate
    from service.jobs import JobQueue, work

    monkeypatch.setattr(estimate, "PREPARE_SAMPLE", 1)  # every corpus is bigger than this
    monkeypatch.setattr(estimate, "SAMPLED_NOTE_S", 0.0)
    cfg = make_config(mini_corpus, tiny_models, tmp_path, strategies=["rag", "system_prompt"])
    queue = JobQueue(cfg.store_path)
    job = queue.submit_estimate(cfg, owner="someone")
    work(cfg.store_path, once=True)
    snap = queue.get(job)
    assert snap.status == "done", snap
    assert snap.kind == "estimate" and snap.run_id is None
    est = queue.estimate_result(job)
    by = {e.strategy: e for e in est.strategies}
    assert "measured on a sample, scaled" in by["rag"].prepare_note
    assert by["system_prompt"].seconds_per_question > 0
    assert RunStore(cfg.store_path).list_runs() == []


def _pairs(n: int) -> list:
    from core.types import QAPair

    return [QAPair(f"q{i}", f"Question {i}?", (f"answer {i}",)) for i in range(n)]


def test_the_estimate_counts_each_arms_search_within_its_budget():
    from eval.config import RunConfig
    from service.estimate.probe import tuning_seconds
    from strategies import make_config as strategy_config

    train = _pairs(20)
    prompt = strategy_config("system_prompt", None)
    lora = strategy_config("lora", {"val_fraction": 0.2})
    off = RunConfig()
    off.tuning.budget = "off"
    assert tuning_seconds(off, "system_prompt", prompt, train, 2.0, 1.0) == (0.0, "")

    quick = RunConfig.from_dict({"tuning": {"budget": "quick", "val_fraction": 0.25}})
    # Four instructions, each tried once at most (2 s to prepare + 20 validation answers at
    # 1 s): the system prompt learns nothing from the training pairs, so all 20 validate.
    # Racing stops each trial after the default at 16 half the time (18 answers), and the
    # default answers as far as they go: 18 answers each.
    s, note = tuning_seconds(quick, "system_prompt", prompt, train, 2.0, 1.0)
    assert s == 4 * (2.0 + 18.0) and "4 trials on 20 validation pairs" in note
    assert "about 18 answers a trial, the default's included" in note
    # Racing only what is clearly behind: every trial counted on every pair.
    clear = RunConfig.from_dict(
        {"tuning": {"budget": "quick", "val_fraction": 0.25, "racing": "clear"}}
    )
    assert tuning_seconds(clear, "system_prompt", prompt, train, 2.0, 1.0)[0] == 4 * 22.0
    # A seconds cap stops the trials after the default one.
    capped = RunConfig.from_dict(
        {"tuning": {"budget": "quick", "val_fraction": 0.25, "max_seconds": 10}}
    )
    assert tuning_seconds(capped, "system_prompt", prompt, train, 2.0, 1.0)[0] == 20.0 + 10.0
    # LoRA validates on its own 4 pairs and keeps its default trial's training: that training
    # is the arm's, so the search adds its 4 validation answers and about one more training.
    s, note = tuning_seconds(quick, "lora", lora, train, 100.0, 1.0)
    assert s == 4.0 + 104.0 and "6 trials on 4 validation pairs" in note
    # On Ray the arm trains again: the default trial is a training of its own.
    ray = RunConfig.from_dict({"tuning": {"budget": "quick"}, "executor": {"kind": "ray"}})
    assert tuning_seconds(ray, "lora", lora, train, 100.0, 1.0)[0] == 104.0 + 104.0
    # A training longer than quick's ten minutes: nothing is trained after the default.
    s, note = tuning_seconds(quick, "lora", lora, train, 1000.0, 1.0)
    assert s == 4.0 and "only the default runs" in note
    # Too few validation pairs: the run skips the search, the estimate counts none.
    assert tuning_seconds(quick, "system_prompt", prompt, _pairs(1), 2.0, 1.0) == (0.0, "")


def test_a_tuned_runs_estimate_includes_the_search_in_preparation(
    mini_corpus, tiny_models, tmp_path
):
    over = {"strategies": ["system_prompt", "fake"], "retention_questions": 0}
    plain = estimate_run(make_config(mini_corpus, tiny_models, tmp_path / "a", **over))
    tuned = estimate_run(
        make_config(
            mini_corpus,
            tiny_models,
            tmp_path / "b",
            tuning={"budget": "quick", "val_fraction": 0.3},
            **over,
        )
    )
    p, t = ({e.strategy: e for e in est.strategies} for est in (plain, tuned))
    assert p["system_prompt"].tuning_s == 0 and "tuning" not in p["system_prompt"].prepare_note
    # The system prompt validates on all 7 training pairs of the mini corpus's 10.
    assert (
        t["system_prompt"].tuning_s > 0 and "7 validation pairs" in t["system_prompt"].prepare_note
    )
    assert t["system_prompt"].prepare_s >= t["system_prompt"].tuning_s
    assert t["fake"].tuning_s == 0  # nothing of it has a search space


def test_the_oracle_reading_is_estimated_only_when_a_strategy_retrieves():
    measured = [
        StrategyEstimate("system_prompt", seconds_per_question=1.0),
        StrategyEstimate("rag", seconds_per_question=3.0),
    ]
    assert oracle_seconds(RunConfig(strategies=["system_prompt", "rag"]), measured, 20) == 60.0
    closed = RunConfig(strategies=["system_prompt"])
    assert oracle_seconds(closed, measured[:1], 20) == 0.0
    off = RunConfig(strategies=["rag"], verdict={"oracle": False})
    assert oracle_seconds(off, measured, 20) == 0.0


def test_a_second_estimate_reuses_earlier_probes_and_probes_only_what_is_new(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    import service.estimate.probe as probe

    cfg = make_config(
        mini_corpus, tiny_models, tmp_path, strategies=["system_prompt", "rag"], n_test=3
    )
    first = estimate_run(cfg)
    assert first.reused == [] and first.load_s > 0
    probed = []
    real = probe._measure
    monkeypatch.setattr(probe, "_measure", lambda b, n, c, q: probed.append(n) or real(b, n, c, q))
    # Other counts, same machine, models, settings and files: nothing probed, nothing loaded.
    fewer = RunConfig.from_dict({**cfg.to_dict(), "retention_questions": 0})
    again = estimate_run(fewer)
    assert probed == [] and again.reused == ["system_prompt", "rag"]
    before = {e.strategy: e for e in first.strategies}
    for e in again.strategies:
        assert e.seconds_per_question == before[e.strategy].seconds_per_question
        assert "reused: probed" in e.prepare_note
        assert e.answer_s == e.seconds_per_question * again.questions  # no general set now
    assert again.load_s == first.load_s  # the loading measured before
    # One strategy's settings changed: only that one is probed.
    changed = RunConfig.from_dict({**cfg.to_dict(), "strategy_configs": {"rag": {"top_k": 1}}})
    third = estimate_run(changed)
    assert probed == ["rag"] and third.reused == ["system_prompt"]
    # An edited document is new input: everything is probed again.
    doc = next(p for p in sorted(mini_corpus[0].iterdir()) if p.is_file())
    doc.write_text(doc.read_text() + "\nOne more sentence.\n")
    probed.clear()
    assert estimate_run(cfg).reused == [] and probed == ["system_prompt", "rag"]
