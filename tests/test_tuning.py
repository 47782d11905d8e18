"""Tuning: spaces read from config fields, the test split untouched, pruning, resuming, and a
throwaway strategy tuned and shown with no other change."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import main, summary_with_diagnostics
from core.config import ConfigBase, ConfigError, check, option
from core.tuning_space import Categorical, FloatRange, IntRange, spaces_of, value_at, with_values
from core.types import Answer, Corpus, Cost, PrepareReport, QAPair
from eval.config import RunConfig
from eval.records import TuningRecord
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from eval.tuning.config import TuningConfig
from eval.tuning.engine import TuningJob, study_name, tune
from eval.views.html_report import html_report
from eval.views.tuning import tuned_config_yaml, tuning_table
from strategies import Strategy, get_strategy_class, register_strategy
from strategies.base import RunCancelled
from tests.test_harness import make_config

# --- throwaway strategies, registered here only --------------------------------------------


@dataclass
class DialConfig(ConfigBase):
    words: int = option(1, "Words of the gold-free answer.", tune=IntRange(1, 6))


class DialStrategy(Strategy):
    """Answers every question with its first `words` words; remembers what it saw."""

    config_class = DialConfig
    hidden = True
    uses_models = False
    seen_train: list[str] = []
    seen_questions: list[str] = []

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        DialStrategy.seen_train += [p.question for p in train]
        return PrepareReport()

    def answer(self, questions: list[str]) -> list[Answer]:
        DialStrategy.seen_questions += questions
        return [Answer(q, " ".join(q.split()[: self.config.words]), [], Cost()) for q in questions]


@dataclass
class SlopeConfig(ConfigBase):
    lr: float = option(
        0.1, "Pretend learning rate: the loss it reports.", tune=Categorical((0.1, 0.9))
    )
    steps: int = option(20, "Pretend training steps.")

    def validate(self) -> None:
        check(0 < self.lr < 1, "lr must be in (0, 1)")


class SlopeStrategy(Strategy):
    """A pretend trainer: reports validation loss `lr` every step, polling cancel like the loop."""

    config_class = SlopeConfig
    hidden = True
    uses_models = False
    trains = True
    prepared = 0

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        SlopeStrategy.prepared += 1
        for step in range(1, self.config.steps + 1):
            if self.ctx.cancelled():
                raise RunCancelled
            self.ctx.progress({"stage": "validate", "step": step, "eval_loss": self.config.lr})
        return PrepareReport()

    def answer(self, questions: list[str]) -> list[Answer]:
        return [
            Answer(q, "antibodies" if self.config.lr < 0.5 else "x", [], Cost()) for q in questions
        ]


@dataclass
class FormConfig(ConfigBase):
    form: str = option("loose", "How the answer is written.", tune=Categorical(("loose", "json")))


class FormStrategy(Strategy):
    """'loose': every word of the gold object, not JSON; 'json': a valid object, half of its
    content wrong. Plain F1 prefers the first, a format task's content F1 the second."""

    config_class = FormConfig
    hidden = True
    uses_models = False

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        return PrepareReport()

    def answer(self, questions: list[str]) -> list[Answer]:
        text = (
            "answer: antibodies, source: Immune_system"
            if self.config.form == "loose"
            else json.dumps({"answer": "antibodies", "source": "Pharmacy"})
        )
        return [Answer(q, text, [], Cost()) for q in questions]


@pytest.fixture(autouse=True, scope="module")
def _throwaways():
    """Registered for this module's tests only, then removed so no other test sees them."""
    import strategies.registry

    register_strategy("tuning_dial")(DialStrategy)
    register_strategy("tuning_slope")(SlopeStrategy)
    register_strategy("tuning_form")(FormStrategy)
    yield
    for name in ("tuning_dial", "tuning_slope", "tuning_form"):
        strategies.registry._REGISTRY.pop(name, None)


def _pairs(n: int) -> list[QAPair]:
    return [QAPair(f"p{i}", f"What do B cells produce {i}?", ["antibodies"]) for i in range(n)]


def _job(tmp_path, name: str, **over) -> TuningJob:
    from strategies import create_strategy
    from strategies.base import StrategyContext

    def build(cfg, workdir, progress, cancelled):
        ctx = StrategyContext(workdir=workdir, progress=progress, cancelled=cancelled)
        return create_strategy(name, cfg, ctx)

    fields = dict(
        label=name,
        base=get_strategy_class(name).config_class(),
        trains=bool(get_strategy_class(name).trains),
        fit=_pairs(6),
        val=_pairs(4),
        corpus=Corpus([], []),
        build=build,
        workdir=tmp_path / "trials",
        journal=tmp_path / "trials.journal",
    )
    fields.update(over)
    return TuningJob(**fields)


# --- spaces ---------------------------------------------------------------------------------


def test_combination_inherits_its_parts_spaces_and_values_are_validated():
    spaces = spaces_of(get_strategy_class("lora+rag").config_class)
    # LoRA's loop settings sit in its nested `training` section: searched under that path.
    assert isinstance(spaces["lora.training.learning_rate"], FloatRange)
    assert isinstance(spaces["lora.training.epochs"], IntRange)
    assert isinstance(spaces["rag.top_k"], IntRange)
    assert spaces["lora.target_modules"].contains(["all-linear"])
    cfg = with_values(get_strategy_class("lora+rag").config_class(), {"rag.top_k": 6})
    assert cfg.rag.top_k == 6 and cfg.lora.mode == "raft"  # the rest unchanged
    with pytest.raises(ConfigError):
        with_values(cfg, {"rag.top_k": 0})
    with pytest.raises(ConfigError):
        with_values(cfg, {"rag.nope": 1})


def test_tuned_values_land_in_loras_nested_training_section():
    lora_class = get_strategy_class("lora").config_class
    assert {"r", "target_modules", "training.learning_rate", "training.epochs"} <= set(
        spaces_of(lora_class)
    )
    base = lora_class.from_dict({"batch_size": 2})  # a flat (older) key still migrates in
    cfg = with_values(base, {"training.learning_rate": 2e-4, "training.epochs": 2, "r": 16})
    assert (cfg.training.learning_rate, cfg.training.epochs, cfg.r) == (2e-4, 2.0, 16)
    assert cfg.training.batch_size == 2  # the rest of the section kept
    with pytest.raises(ConfigError):
        with_values(base, {"training.learning_rate": 5.0})


def test_rag_cuts_its_own_chunks_when_asked(chunked_mini, tiny_models, tmp_path):
    from strategies import create_strategy
    from strategies.base import StrategyContext

    corpus, _ = chunked_mini
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path)
    rag = create_strategy("rag", {"chunk_tokens": 16}, ctx)
    report = rag.prepare(corpus, [])
    assert report.details["chunks_indexed"] > len(corpus.chunks)
    assert all(c.n_tokens <= 16 for c in rag.chunks.values())
    assert corpus.fingerprint in report.artifact_path and "-c16" in report.artifact_path


def test_a_tunable_field_appears_as_a_search_space_in_the_cli(capsys):
    assert main(["spaces", "rag", "tuning_dial"]) == 0
    out = capsys.readouterr().out
    assert "top_k" in out and "integer 1..8" in out
    assert "words" in out and "integer 1..6" in out
    assert main(["spaces", "no-such"]) == 2


def test_budgets_resolve_per_arm_and_explicit_settings_win():
    quick = TuningConfig(budget="quick")
    assert quick.budget_for(False).n_trials == 12
    trained = quick.budget_for(True)
    assert trained.n_trials == 6 and trained.seconds_after_default(100.0) == 100.0
    # Ten minutes at most, and a training longer than that is not searched at all.
    assert trained.seconds_after_default(2000.0) == 600.0 and trained.too_short(2000.0) == 600.0
    assert trained.too_short(100.0) is None
    own = TuningConfig(budget="quick", n_trials=3, max_seconds=5)
    assert own.budget_for(True).n_trials == 3
    assert own.budget_for(True).seconds_after_default(100.0) == 5
    with pytest.raises(ConfigError):
        TuningConfig(budget="lavish")


# --- the engine -----------------------------------------------------------------------------


def test_a_pruned_trial_stops_early(tmp_path):
    import optuna

    SlopeStrategy.prepared = 0
    # lr 0.9 reports loss 0.9 (-0.9 to the maximising study): below the threshold, pruned.
    pruner = optuna.pruners.ThresholdPruner(lower=-0.5)
    chosen, rec = tune(
        _job(tmp_path, "tuning_slope"), TuningConfig(budget="quick", n_trials=6), pruner
    )
    pruned = [t for t in rec.trials if t.state == "pruned"]
    assert pruned and all(t.values["lr"] == 0.9 for t in pruned)
    assert all(t.steps == 1 for t in pruned)  # stopped at the first validation of 20
    assert all(t.steps == 20 for t in rec.trials if t.state == "complete")
    assert rec.n_pruned == len(pruned) and chosen.lr == 0.1


def test_the_first_trial_after_the_default_is_pruned_against_the_defaults_curve(tmp_path):
    # The shipped pruner, not a test's: lr 0.9 reports a loss of 0.9 where the default reported
    # 0.1, so it stops at its first validation instead of training all 20 steps.
    _, rec = tune(_job(tmp_path, "tuning_slope"), TuningConfig(budget="quick", n_trials=2))
    default, trial = rec.trials
    assert default.default and default.state == "complete" and default.steps == 20
    assert trial.values["lr"] == 0.9 and trial.state == "pruned" and trial.steps == 1


def test_a_small_space_is_tried_once_per_setting_then_the_search_stops(tmp_path, monkeypatch):
    # Three settings (IntRange 1..3) and a budget of ten: three passes, not ten, and the record
    # still holds the default and the best.
    calls: list[int] = []
    real = DialStrategy.prepare

    def counted(self, corpus, train):
        calls.append(self.config.words)
        return real(self, corpus, train)

    monkeypatch.setattr(DialStrategy, "prepare", counted)
    monkeypatch.setattr("eval.tuning.engine.spaces_of", lambda cls: {"words": IntRange(1, 3)})
    _, rec = tune(_job(tmp_path, "tuning_dial"), TuningConfig(budget="quick", n_trials=10))
    assert sorted(calls) == [1, 2, 3]  # each setting prepared and answered once
    assert len(rec.trials) <= 10 and {t.values["words"] for t in rec.trials} == {1, 2, 3}
    assert all(t.seconds == 0.0 for t in rec.trials[3:])  # any redraw reused, not re-run


def test_every_setting_of_a_space_the_budget_covers_is_tried(tmp_path, monkeypatch):
    # Eight settings and eight trials: each once. Drawn at random, seven draws after the default
    # would leave some untried (the sample's system prompt arm missed one instruction of four).
    monkeypatch.setattr("eval.tuning.engine.spaces_of", lambda cls: {"words": IntRange(1, 8)})
    _, rec = tune(_job(tmp_path, "tuning_dial"), TuningConfig(budget="quick", n_trials=8))
    assert sorted(t.values["words"] for t in rec.trials) == list(range(1, 9))
    assert rec.trials[0].default and rec.trials[0].values["words"] == 1


def test_a_format_run_tunes_on_the_content_of_valid_answers_not_on_plain_f1(tmp_path):
    from core.tasks import TaskSpec

    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "source": {"type": "string"}},
        "required": ["answer", "source"],
    }
    gold = json.dumps({"answer": "antibodies", "source": "Immune_system"})
    val = [QAPair(f"v{i}", f"Question{i} about topic{i}?", [gold]) for i in range(32)]
    budget = TuningConfig(budget="quick", n_trials=2)
    job = _job(tmp_path / "qa", "tuning_form", val=val)
    _, plain = tune(job, budget)  # Q/A: the loose answer has every gold word
    assert plain.metric == "f1" and plain.chosen == {"form": "loose"}
    task = TaskSpec("format", schema=schema)
    job = _job(tmp_path / "format", "tuning_form", val=val, task=task)
    _, rec = tune(job, budget)
    # The loose answer is invalid (content F1 0); the JSON one gets "antibodies" right (0.5).
    assert rec.metric == "content_f1" and rec.chosen == {"form": "json"}
    assert rec.default_score.mean == 0.0 and rec.tuned_score.mean == pytest.approx(0.5)


def test_a_trial_still_running_when_the_budget_runs_out_is_stopped(tmp_path, monkeypatch):
    # Optuna's timeout only refuses new trials: a trial begun just inside the cap would train to
    # its end, a whole training past the budget. The deadline stops it at its next cancel poll.
    import time

    def slow(self, corpus, train):
        for step in range(1, self.config.steps + 1):
            if self.ctx.cancelled():
                raise RunCancelled
            # The default trains inside the cap (else nothing more is tried); the others not.
            time.sleep(0.001 if self.config.lr == 0.1 else 0.02)
            self.ctx.progress({"stage": "validate", "step": step, "eval_loss": self.config.lr})
        return PrepareReport()

    monkeypatch.setattr(SlopeStrategy, "prepare", slow)
    settings = TuningConfig(budget="quick", n_trials=4, max_seconds=0.1)
    chosen, rec = tune(_job(tmp_path, "tuning_slope"), settings, _never_prune())
    default, *others = rec.trials
    assert default.default and default.state == "complete" and default.steps == 20
    assert others and all(t.state == "pruned" and t.steps < 20 for t in others)
    assert chosen.lr == 0.1


def test_a_trained_arm_whose_training_outlasts_the_cap_trains_nothing_more(tmp_path, monkeypatch):
    # A trial cut off before it finishes cannot win, so a training longer than the whole cap is
    # not begun: the default stands, and the note says why rather than "no setting scored higher".
    import time

    real = SlopeStrategy.prepare

    def slow(self, corpus, train):
        time.sleep(0.2)
        return real(self, corpus, train)

    monkeypatch.setattr(SlopeStrategy, "prepare", slow)
    SlopeStrategy.prepared = 0
    settings = TuningConfig(budget="quick", n_trials=4, max_seconds=0.1)
    chosen, rec = tune(_job(tmp_path, "tuning_slope"), settings, _never_prune())
    assert SlopeStrategy.prepared == 1 and [t.default for t in rec.trials] == [True]
    assert chosen.lr == 0.1 and rec.status == "tuned"
    assert rec.note.startswith("default kept: no other setting was trained")
    assert "than the 0.1 s the 'quick' budget" in rec.note


def test_a_cancelled_run_is_not_taken_for_a_trial_out_of_time(tmp_path):
    # The run is cancelled while the second trial is being built, which takes past the budget's
    # deadline: at its first cancel poll both hold, and the run stops (RunCancelled) instead of
    # recording a pruned trial and going on to the next arm.
    import time

    from strategies import create_strategy
    from strategies.base import StrategyContext

    builds: list[int] = []

    def build(cfg, workdir, progress, cancelled):
        builds.append(1)
        if len(builds) == 2:
            time.sleep(0.2)  # past the 0.05 s left after the default trial
        ctx = StrategyContext(workdir=workdir, progress=progress, cancelled=cancelled)
        return create_strategy("tuning_slope", cfg, ctx)

    SlopeStrategy.prepared = 0
    job = _job(tmp_path, "tuning_slope", build=build, cancelled=lambda: len(builds) >= 2)
    with pytest.raises(RunCancelled):
        tune(job, TuningConfig(budget="quick", n_trials=2, max_seconds=0.05), _never_prune())
    assert SlopeStrategy.prepared == 2  # the default trial, and the one cancelled


def test_an_untrained_trial_is_stopped_between_validation_batches_at_the_deadline(
    tmp_path, monkeypatch
):
    import time

    real = DialStrategy.answer
    batches: list[int] = []

    def slow(self, questions):
        batches.append(self.config.words)
        time.sleep(0.05)
        return real(self, questions)

    monkeypatch.setattr(DialStrategy, "answer", slow)
    job = _job(tmp_path, "tuning_dial", val=_pairs(8), batch_size=1)
    _, rec = tune(job, TuningConfig(budget="quick", n_trials=4, max_seconds=0.1))
    default, *others = rec.trials
    assert default.state == "complete" and batches.count(1) == 8
    assert others and all(t.state == "pruned" for t in others)
    assert len(batches) < 16  # the second trial did not answer all eight pairs


def test_real_lora_trial_is_pruned_through_the_training_loop(tmp_path, chunked_mini, tiny_models):
    import optuna

    from strategies import create_strategy
    from strategies.base import StrategyContext

    corpus, pairs = chunked_mini
    base = get_strategy_class("lora").config_class.from_dict(
        {"training": {"max_steps": 8, "eval_every": 1, "batch_size": 2}, "val_fraction": 0.3}
    )

    def build(cfg, workdir, progress, cancelled):
        ctx = StrategyContext(
            models=tiny_models, workdir=workdir, progress=progress, cancelled=cancelled
        )
        return create_strategy("lora", cfg, ctx)

    job = _job(
        tmp_path,
        "lora",
        base=base,
        trains=True,
        fit=pairs[:7],
        val=pairs[7:],
        corpus=corpus,
        build=build,
    )
    # Any finite loss is "below" this: every trial is pruned at its first validation.
    pruner = optuna.pruners.ThresholdPruner(lower=0.0)
    _, rec = tune(job, TuningConfig(budget="quick", n_trials=2), pruner)
    assert [t.state for t in rec.trials] == ["pruned", "pruned"]
    assert all(t.steps == 1 for t in rec.trials)  # of 8 planned steps
    assert rec.status == "skipped"  # nothing scored: the defaults stand


def test_a_killed_tuning_run_resumes_without_repeating_finished_trials(tmp_path, monkeypatch):
    calls: list[int] = []
    killed: list[bool] = []
    real = DialStrategy.prepare

    def dying(self, corpus, train):
        calls.append(self.config.words)
        if len(calls) == 3 and not killed:
            killed.append(True)
            raise KeyboardInterrupt  # the process killed during the third trial
        return real(self, corpus, train)

    monkeypatch.setattr(DialStrategy, "prepare", dying)
    settings = TuningConfig(budget="quick", n_trials=5)
    with pytest.raises(KeyboardInterrupt):
        tune(_job(tmp_path, "tuning_dial"), settings)
    assert len(calls) == 3
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    # A harder kill leaves a trial marked running: it is failed and run anew, not counted.
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "trials.journal")))
    job = _job(tmp_path, "tuning_dial")
    optuna.load_study(study_name=study_name(job), storage=storage).ask()
    calls.clear()
    _, rec = tune(_job(tmp_path, "tuning_dial"), settings)
    finished = [t for t in rec.trials if t.state == "complete"]
    assert len(finished) == 5 and calls  # 2 kept, 3 more now
    kept = {t.values["words"] for t in finished[:2]}
    # No setting is prepared twice: neither the kept trials' nor a redraw of a new one.
    assert not kept & set(calls) and len(calls) == len(set(calls))
    assert sum(t.default for t in rec.trials) == 1  # the default trial is not run again
    numbers = [t.number for t in finished]
    assert numbers[:2] == [0, 1]


# --- the run --------------------------------------------------------------------------------


def test_tuning_never_sees_the_test_split(mini_corpus, tiny_models, tmp_path, monkeypatch):
    """Spy on every prompt generated and every training example made while tuning."""
    import eval.tuning.arm as run_tuning
    from core.engines.in_process import load_generator

    phase = {"tuning": False}
    prompts: list[str] = []
    examples: list[str] = []
    gen = load_generator(tiny_models)
    real_generate, real_tune = gen.generate, run_tuning.tune
    lora_module = sys.modules[get_strategy_class("lora").__module__]
    real_train = lora_module.train_adapter

    def spy_generate(convs, *a, **k):
        if phase["tuning"]:
            prompts.extend(m["content"] for conv in convs for m in conv)
        return real_generate(convs, *a, **k)

    def spy_train(model, ex, val_ex, *a, **k):
        if phase["tuning"]:
            examples.extend(gen.tokenizer.decode(ids) for ids, _ in [*ex, *val_ex])
        return real_train(model, ex, val_ex, *a, **k)

    def spy_tune(job, tuning, pruner=None):
        phase["tuning"] = True
        try:
            return real_tune(job, tuning, pruner)
        finally:
            phase["tuning"] = False

    monkeypatch.setattr(gen, "generate", spy_generate)
    monkeypatch.setattr(lora_module, "train_adapter", spy_train)
    monkeypatch.setattr(run_tuning, "tune", spy_tune)
    DialStrategy.seen_train, DialStrategy.seen_questions = [], []
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["few_shot", "lora", "tuning_dial"],
        strategy_configs={"lora": {"training": {"max_steps": 2, "batch_size": 4, "eval_every": 1}}},
        retention_questions=0,
        tuning={"budget": "quick", "n_trials": 2, "val_fraction": 0.3},
    )
    run_id = run_comparison(cfg)
    run = RunStore(cfg.store_path).get_run(run_id)
    assert run.status == "done"
    test_questions = {a.question for a in RunStore(cfg.store_path).get_answers(run_id)}
    assert test_questions and prompts and examples
    for text in [*prompts, *examples, *DialStrategy.seen_train]:
        assert not any(q in text for q in test_questions), text
    tuned = {r.strategy: r.extras.tuning for r in run.results}
    assert all(isinstance(rec, TuningRecord) for rec in tuned.values())
    assert all(rec.status == "tuned" and rec.n_trials == 2 for rec in tuned.values())
    # LoRA's chosen settings, nested ones included, are what it was measured with and what
    # the tuned YAML reruns with.
    lora = next(r for r in run.results if r.strategy == "lora")
    assert "training.learning_rate" in tuned["lora"].chosen
    path = tmp_path / "tuned.yaml"
    path.write_text(tuned_config_yaml(run), encoding="utf-8")
    again = RunConfig.load(path)
    rerun = get_strategy_class("lora").config_class.from_dict(again.strategy_configs["lora"])
    measured = get_strategy_class("lora").config_class.from_dict(lora.config)
    for field_path, value in tuned["lora"].chosen.items():
        assert value_at(rerun, field_path) == value_at(measured, field_path) == value
    assert rerun.training.max_steps == 2 and again.tuning.budget == "off"
    # The trials answered the validation pairs: none of them is a test question either.
    assert not set(DialStrategy.seen_questions[:4]) & test_questions


def test_a_throwaway_strategy_is_tuned_charged_and_shown(
    mini_corpus, tiny_models, tmp_path, capsys
):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["tuning_dial", "fake"],
        retention_questions=0,
        tuning={"budget": "quick", "n_trials": 6, "val_fraction": 0.3},
    )
    run_id = run_comparison(cfg)
    store = RunStore(cfg.store_path)
    run = store.get_run(run_id)
    by = {r.strategy: r for r in run.results}
    rec = by["tuning_dial"].extras.tuning
    assert rec.status == "tuned" and rec.n_trials == 6 and rec.space == {"words": "integer 1..6"}
    assert rec.default == {"words": 1} and rec.default_score.mean is not None
    prepared = by["tuning_dial"].prepare.seconds
    assert rec.seconds > 0  # paid for in the cost columns: preparation plus the search
    assert by["tuning_dial"].cost.prepare_s == pytest.approx(prepared + rec.seconds)
    assert by["tuning_dial"].config["words"] == rec.chosen["words"]
    assert by["fake"].extras.tuning.status == "no_space"
    # --json, the HTML report and the verdict carry it
    summary = summary_with_diagnostics(store, run_id)
    assert summary["tuning"]["tuning_dial"]["trials"]
    assert any("fake was not tuned" in h for h in summary["verdict"]["headline"])
    json.dumps(summary)
    page = html_report(store, run_id)
    assert "<h2>Tuning</h2>" in page and "tuning_dial" in page
    # the tuned settings rerun through --config without searching again
    yaml_text = tuned_config_yaml(run)
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    again = RunConfig.load(path)
    assert again.tuning.budget == "off"
    assert again.strategy_configs["tuning_dial"]["words"] == rec.chosen["words"]
    assert main(["tuned", run_id, "--store", cfg.store_path]) == 0
    assert "tuning_dial" in capsys.readouterr().out


def test_a_resumed_run_re_splits_a_kept_arm_with_its_tuned_settings(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["tuning_dial"],
        retention_questions=0,
        tuning={"budget": "quick", "n_trials": 6, "val_fraction": 0.3},
        stability={"resplits": 1},
    )

    def chooses_four(job, tuning):  # a search whose choice differs from the default (1)
        record = TuningRecord("tuned", "quick", default={"words": 1}, chosen={"words": 4})
        return with_values(job.base, {"words": 4}), record

    monkeypatch.setattr("eval.tuning.arm.tune", chooses_four)
    run_id = run_comparison(cfg)
    store = RunStore(cfg.store_path)
    chosen = store.get_run(run_id).results[0].extras.tuning.chosen["words"]
    assert chosen == 4 and store.get_run(run_id).results[0].config["words"] == 4
    # Interrupted after the arm, before its re-split: the arm is kept, the re-split redone.
    store.update_run(run_id, stability={})
    store.finish_run(run_id, "interrupted", "killed")
    seen: list[int] = []
    real = DialStrategy.prepare

    def spy(self, corpus, train):
        seen.append(self.config.words)
        return real(self, corpus, train)

    monkeypatch.setattr(DialStrategy, "prepare", spy)
    run_comparison(cfg, store=store, run_id=run_id, resume=True)
    assert seen == [chosen]  # the re-split only, with the kept arm's choice


# --- the app --------------------------------------------------------------------------------


@pytest.fixture
def ui_home(tmp_path, monkeypatch):
    import contextlib
    import os
    import signal

    from service.jobs import worker_pid

    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    yield home
    pid = worker_pid(home / "runs.sqlite")  # a page may start one: it must not linger
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
def ui(ui_home):
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP, OWNER

    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["owner"] = OWNER
    at.session_state["show_hidden_strategies"] = True
    at.run()
    return at


def test_run_page_shows_each_strategys_search_spaces(ui):
    from tests.test_app import goto

    goto(ui, "run")
    ui.multiselect(key="run.strategies").set_value(["rag", "tuning_dial"]).run()
    assert not ui.exception, ui.exception
    shown = [df.value for df in ui.dataframe if "space" in df.value.columns]
    fields = {f for df in shown for f in df["field"]}
    assert {"top_k", "chunk_tokens", "words"} <= fields
    assert ui.selectbox(key="run.tuning.budget").options == ["off", "quick", "thorough"]


def test_run_page_estimate_counts_the_budgets_search(ui, ui_home):
    from service.jobs import JobQueue
    from tests.test_app import frame, goto, texts

    goto(ui, "run")
    ui.multiselect(key="run.strategies").set_value(["system_prompt"]).run()
    ui.text_input(key="run.models.generator").set_value("tiny").run()
    ui.number_input(key="run.n_test").set_value(4).run()
    ui.number_input(key="run.retention_questions").set_value(0).run()
    ui.selectbox(key="run.tuning.budget").set_value("quick").run()
    ui.button(key="estimate").click().run()
    assert not ui.exception and not ui.error, texts(ui.error)
    queue = JobQueue(ui_home / "runs.sqlite")
    estimate = queue.list_jobs()[0]
    assert queue.wait(estimate.id, timeout=120).status == "done"
    ui.run()
    how = frame(ui, "How")["How"][0]
    assert "tuning: up to 4 trials on" in how  # the four built-in instructions, each once
    assert "Of which tuning" in texts(ui.caption)


def test_compare_page_tuning_tab_shows_each_arms_tuning(
    ui, ui_home, mini_corpus, tiny_models, tmp_path
):
    from tests.test_app import OWNER, frame, goto

    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["tuning_dial", "fake"],
        retention_questions=0,
        tuning={"budget": "quick", "n_trials": 4, "val_fraction": 0.3},
        store_path=str(ui_home / "runs.sqlite"),
        workdir=str(ui_home / "work"),
    )
    run_comparison(cfg, owner=OWNER)
    goto(ui, "compare")
    table = frame(ui, "changed settings")
    assert list(table["strategy"]) == ["tuning_dial", "fake"]
    assert list(table["trials"]) == [4, 0]
    # Each arm's validation size and the decision, in words, in the table and below it.
    assert table["validation pairs"][0] > 0 and table["decision"][0]
    why = [m.value for m in ui.markdown if "dial" in m.value]
    assert any("default kept" in m or "replaced" in m for m in why), why


# --- a trained arm's chosen trial serves the arm -------------------------------------------


def test_only_the_chosen_trials_artifacts_are_kept(tmp_path, monkeypatch):
    import strategies.registry

    class Saving(SlopeStrategy):
        def prepare(self, corpus, train):
            super().prepare(corpus, train)
            folder = self.ctx.workdir / "adapter"
            folder.mkdir(parents=True)
            (folder / "weights").write_text(str(self.config.lr), encoding="utf-8")
            return PrepareReport(artifact_path=str(folder))

    monkeypatch.setitem(strategies.registry._REGISTRY, "tuning_saving", Saving)
    job = _job(tmp_path, "tuning_saving", keep=True)
    _, rec = tune(job, TuningConfig(budget="quick", n_trials=2), pruner=_never_prune())
    number, folder, report = job.kept
    assert number == rec.chosen_trial and rec.chosen == {"lr": 0.1}  # lr 0.1 answers right
    assert (folder / "adapter" / "weights").read_text(encoding="utf-8") == "0.1"
    assert report.artifact_path == str(folder / "adapter")
    assert [p.name for p in (tmp_path / "trials").iterdir()] == [folder.name]


def _never_prune():
    import optuna

    return optuna.pruners.NopPruner()


def test_lora_is_tuned_on_what_it_holds_out_and_answers_with_the_chosen_trials_adapter(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    """No second training after tuning; the validation pairs are never training examples."""
    from core.engines.in_process import load_generator

    lora = get_strategy_class("lora")
    module = sys.modules[lora.__module__]
    gen = load_generator(tiny_models)
    calls: list[tuple[list[QAPair], list[str], int]] = []
    real_prepare, real_train = lora.prepare, module.train_adapter

    def spy_prepare(self, corpus, train):
        calls.append((list(train), [], 0))
        return real_prepare(self, corpus, train)

    def spy_train(model, ex, val_ex, *a, **k):
        train, texts, _ = calls[-1]
        calls[-1] = (train, [gen.tokenizer.decode(ids) for ids, _ in ex], len(val_ex))
        return real_train(model, ex, val_ex, *a, **k)

    monkeypatch.setattr(lora, "prepare", spy_prepare)
    monkeypatch.setattr(module, "train_adapter", spy_train)
    settings = {"training": {"max_steps": 2, "batch_size": 4, "eval_every": 1}}
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["lora"],
        strategy_configs={"lora": {**settings, "val_fraction": 0.3}},
        retention_questions=0,
        tuning={"budget": "quick", "n_trials": 3},
    )
    run = RunStore(cfg.store_path).get_run(run_comparison(cfg))
    (result,) = run.results
    rec = result.extras.tuning
    trained = [t for t in rec.trials if t.seconds > 0]  # complete or pruned, not a redraw
    # One training per trial that prepared; the arm itself loaded the chosen trial's adapter.
    assert len([c for c in calls if c[1]]) == len(trained) and len(calls) == len(trained) + 1
    assert rec.reused_trial == rec.chosen_trial == result.prepare.details["tuning_trial"]
    assert result.prepare.training is not None and result.prepare.training.steps_done
    assert Path(result.prepare.artifact_path).is_dir()
    assert str(tmp_path / "work") in result.prepare.artifact_path
    assert result.config["adapter_path"] == ""  # what was chosen, rerunnable as it is
    base = lora.config_class.from_dict(cfg.strategy_configs["lora"])
    for train, texts, n_val in calls[:-1]:
        held = lora.held_out_pairs(base, train)
        assert held and n_val == len(held) and rec.val_pairs == len(held)
        assert not any(p.question in t for p in held for t in texts)
    assert not list((tmp_path / "work").rglob("trial-*"))  # the other trials' folders are gone
    (row,) = tuning_table(run).to_dict("records")
    assert row["prepared by"] == f"trial {rec.chosen_trial}"


def test_a_combination_holds_out_its_trained_parts_pairs_only_when_no_part_reads_them():
    pairs = [QAPair(f"p{i}", f"q{i}", ("a",)) for i in range(20)]
    lora_rag = get_strategy_class("lora+rag")
    held = lora_rag.held_out_pairs(lora_rag.config_class(), pairs)
    lora = get_strategy_class("lora")
    assert held and held == lora.held_out_pairs(lora.config_class(), pairs)
    few_shot_rag = get_strategy_class("few_shot+rag")
    assert few_shot_rag.held_out_pairs(few_shot_rag.config_class(), pairs) == []


def test_an_arm_whose_trial_left_no_adapter_trains_itself_and_claims_no_reuse(tmp_path):
    from eval.records import PreparedRecord
    from eval.store.runs import StrategyResult
    from eval.tuning.arm import ArmTuner

    tuner = ArmTuner(None, tmp_path, lambda event: None, lambda: False)
    trial = tmp_path / "trial-3"
    trial.mkdir()
    tuner.kept["lora"] = (3, trial, PrepareReport(artifact_path=str(tmp_path / "gone")))
    settings = get_strategy_class("lora").config_class()
    assert tuner.prepared("lora", "lora", settings, tmp_path / "arm") is settings
    assert not trial.exists()
    result = StrategyResult("lora", "done", settings.to_dict(), PreparedRecord())
    record = TuningRecord(status="tuned", budget="quick")
    tuner.adopt("lora", result, settings, record)
    assert record.reused_trial is None and result.prepare.training is None
    assert "tuning_trial" not in result.prepare.details
