"""Tuning decides only what the data can show: validation on every pair an arm never learns
from, racing, the evidence rule with a cross-fitted gain, failed trials and off-grid defaults."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cli.main import summary_with_diagnostics
from core.config import ConfigBase, check, option
from core.qa import near_duplicate_groups, split_validation
from core.tuning_space import Categorical, IntRange, spaces_of
from core.types import Answer, Corpus, Cost, PrepareReport, QAPair
from eval.records import TuningRecord
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from eval.tuning.arm import ALL_LEFT_OUT, ALL_PAIRS, HELD_OUT, OWN_PAIRS, tuning_pairs
from eval.tuning.config import TuningConfig
from eval.tuning.engine import _FAILED, Objective, TuningJob, study_name, tune
from eval.tuning.evidence import crossfit_diffs, halves
from eval.tuning.racing import (
    RacePruner,
    clearly_behind,
    expected_answers,
    not_ahead,
    rung_between,
)
from eval.views.tuning import tuning_table
from strategies import create_strategy, get_strategy_class, register_strategy
from strategies.base import Strategy, StrategyContext
from tests.test_harness import make_config

# --- throwaway strategies, registered here only --------------------------------------------

# How each setting answers: right on every pair, wrong on every pair, or right on every pair
# but one (`lucky` is right on one pair more than `base`, which misses two).
MODES = ("base", "right", "wrong", "lucky")


@dataclass
class ModeConfig(ConfigBase):
    mode: str = option("base", "How it answers.", tune=Categorical(MODES))


class ModeStrategy(Strategy):
    """Answers from the gold answers it is given by question: right, wrong, or right but for a
    few pairs, depending on `mode`. Untrained and reads no pairs: validates on all of them."""

    config_class = ModeConfig
    hidden = True
    uses_models = False
    reads_pairs = False
    gold: dict[str, str] = {}
    misses: dict[str, tuple[str, ...]] = {}  # mode -> questions it gets wrong
    answered: list[tuple[str, str]] = []  # (mode, question) in answering order

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        return PrepareReport()

    def answer(self, questions: list[str]) -> list[Answer]:
        out = []
        for q in questions:
            ModeStrategy.answered.append((self.config.mode, q))
            wrong = self.config.mode == "wrong" or q in self.misses.get(self.config.mode, ())
            out.append(Answer(q, "nothing at all" if wrong else self.gold[q], [], Cost()))
        return out


@dataclass
class EpochsConfig(ConfigBase):
    epochs: float = option(1.5, "Pretend epochs (off the grid by default).", tune=IntRange(1, 3))


class EpochsStrategy(Strategy):
    """Records the epochs each trial ran with; right only at 1.5 epochs."""

    config_class = EpochsConfig
    hidden = True
    uses_models = False
    reads_pairs = False
    ran: list[float] = []

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        EpochsStrategy.ran.append(self.config.epochs)
        return PrepareReport()

    def answer(self, questions: list[str]) -> list[Answer]:
        text = "antibodies" if self.config.epochs == 1.5 else "x"
        return [Answer(q, text, [], Cost()) for q in questions]


@dataclass
class RankConfig(ConfigBase):
    r: int = option(8, "Pretend rank; 32 runs out of memory.", tune=Categorical((8, 16, 32)))


class RankStrategy(Strategy):
    """A trainer whose rank 32 raises a CUDA-style out-of-memory error in prepare()."""

    config_class = RankConfig
    hidden = True
    uses_models = False
    trains = True

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        if self.config.r == 32:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return PrepareReport()

    def answer(self, questions: list[str]) -> list[Answer]:
        return [
            Answer(q, "antibodies" if self.config.r == 16 else "x", [], Cost()) for q in questions
        ]


@dataclass
class RefusingConfig(ConfigBase):
    n: int = option(1, "A setting whose 3 the config refuses.", tune=IntRange(1, 3))

    def validate(self) -> None:
        check(self.n != 3, "n 3 is refused")


class RefusingStrategy(EpochsStrategy):
    config_class = RefusingConfig

    def prepare(self, corpus, train):
        return PrepareReport()

    def answer(self, questions):
        return [Answer(q, "antibodies", [], Cost()) for q in questions]


class TrainedReader(Strategy):
    """Trains on the pairs and holds none out of its own: validated on a grouped share."""

    config_class = ModeConfig
    hidden = True
    uses_models = False
    trains = True

    def prepare(self, corpus, train):
        return PrepareReport()

    def answer(self, questions):
        return [Answer(q, "", [], Cost()) for q in questions]


THROWAWAYS = {
    "ev_mode": ModeStrategy,
    "ev_epochs": EpochsStrategy,
    "ev_rank": RankStrategy,
    "ev_trained": TrainedReader,
    "ev_refusing": RefusingStrategy,
}


@pytest.fixture(autouse=True, scope="module")
def _throwaways():
    import strategies.registry

    for name, cls in THROWAWAYS.items():
        register_strategy(name)(cls)
    yield
    for name in THROWAWAYS:
        strategies.registry._REGISTRY.pop(name, None)


def _pairs(n: int) -> list[QAPair]:
    # Distinct content words per question, so no two are near-duplicates.
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]
    return [
        QAPair(f"p{i}", f"Which {words[i % 12]} {words[(i // 12) % 12]}x{i} holds?", (f"gold{i}",))
        for i in range(n)
    ]


def _job(tmp_path, name: str, val: list[QAPair], **over) -> TuningJob:
    def build(cfg, workdir, progress, cancelled):
        ctx = StrategyContext(workdir=workdir, progress=progress, cancelled=cancelled)
        return create_strategy(name, cfg, ctx)

    kind = get_strategy_class(name)
    fields = dict(
        label=name,
        base=kind.config_class(),
        trains=bool(kind.trains),
        fit=list(val),
        val=list(val),
        corpus=Corpus([], []),
        build=build,
        workdir=tmp_path / "trials",
        journal=tmp_path / "trials.journal",
        batch_size=4,
    )
    fields.update(over)
    return TuningJob(**fields)


def _same_answer(n: int) -> list[QAPair]:
    return [QAPair(f"e{i}", f"What do B cells produce {i}?", ("antibodies",)) for i in range(n)]


def _modes(pairs: list[QAPair], misses: dict[str, tuple[str, ...]]) -> None:
    ModeStrategy.gold = {p.question: p.answers[0] for p in pairs}
    ModeStrategy.misses = misses
    ModeStrategy.answered = []


# --- 1. which pairs validate ---------------------------------------------------------------


def test_the_validation_split_keeps_near_duplicates_and_passages_on_one_side():
    base = _pairs(30)
    pairs = list(base)
    # Paraphrases of p0..p4 and two pairs drawn from one passage.
    pairs += [QAPair(f"d{i}", base[i].question.replace("Which", "What"), ("x",)) for i in range(5)]
    pairs += [
        QAPair("s1", "Who wrote the ledger?", ("a",), passage="The ledger was written by Ann."),
        QAPair("s2", "When was it written?", ("b",), passage="The ledger was written by Ann."),
    ]
    groups = [{pairs[i].id for i in g} for g in near_duplicate_groups(pairs, 0.6)]
    assert {"p0", "d0"} in groups and {"s1", "s2"} in groups
    for seed in range(12):
        fit, val = split_validation(pairs, 0.3, seed)
        assert len(val) == int(len(pairs) * 0.3) and len(fit) + len(val) == len(pairs)
        held = {p.id for p in val}
        for g in groups:
            assert g <= held or not g & held, (seed, g)
    assert split_validation(pairs, 0.3, 3) == split_validation(pairs, 0.3, 3)
    assert split_validation(pairs, 0.0, 3) == (pairs, [])


def test_arms_that_learn_nothing_from_the_pairs_validate_on_all_of_them():
    train = _pairs(40)
    seen = {}
    for name in ("system_prompt", "rag", "few_shot", "few_shot+rag", "ev_mode"):
        kind = get_strategy_class(name)
        got = tuning_pairs(kind, kind.config_class(), train, 0.1, seed=3)
        assert sorted(p.id for p in got.val) == sorted(p.id for p in train), name
        assert got.fit == train and not got.own
        seen[name] = got
    assert seen["system_prompt"].scheme == seen["rag"].scheme == ALL_PAIRS
    assert seen["few_shot"].scheme == seen["few_shot+rag"].scheme == ALL_LEFT_OUT
    # Each question leaves out itself (its group) from few-shot's pool.
    assert all(seen["few_shot"].leave_out[p.question] == {p.id} for p in train)
    assert [p.id for p in seen["rag"].val] != [p.id for p in train]  # seeded order, for racing
    # Arms that train: LoRA on what it holds out itself, the others on a grouped share.
    for name in ("lora", "lora+rag"):
        kind = get_strategy_class(name)
        got = tuning_pairs(kind, kind.config_class(), train, 0.1, seed=3)
        assert got.own and got.scheme == OWN_PAIRS and 0 < len(got.val) < len(train)
        assert got.val == kind.held_out_pairs(kind.config_class(), train)
    kind = get_strategy_class("ev_trained")
    got = tuning_pairs(kind, kind.config_class(), train, 0.25, seed=3)
    assert got.scheme == HELD_OUT and len(got.val) == 10 and not got.own
    assert not {p.id for p in got.val} & {p.id for p in got.fit}


def test_few_shot_never_shows_a_question_its_own_group(tiny_models, tmp_path):
    train = _pairs(12)
    twin = QAPair("t0", train[0].question.replace("Which", "What"), ("gold0",))
    train.append(twin)
    kind = get_strategy_class("few_shot")
    pairs = tuning_pairs(kind, kind.config_class(), train, 0.1, seed=0)
    assert pairs.leave_out[train[0].question] == {"p0", "t0"}
    for selection in ("similar", "random"):
        ctx = StrategyContext(models=tiny_models, workdir=tmp_path, leave_out=pairs.leave_out)
        settings = {"k": 12, "selection": selection, "max_shot_tokens": 4000}
        shots = create_strategy("few_shot", settings, ctx)
        shots.prepare(Corpus([], []), train)
        for p, chosen in zip(train, shots.select([p.question for p in train]), strict=True):
            ids = {s.id for s in chosen}
            assert chosen and not ids & pairs.leave_out[p.question], (selection, p.id, ids)
        # Outside tuning nothing is left out but an identical question.
        ctx = StrategyContext(models=tiny_models, workdir=tmp_path)
        plain = create_strategy("few_shot", settings, ctx)
        plain.prepare(Corpus([], []), train)
        assert "t0" in {s.id for s in plain.select([train[0].question])[0]}


def _pool_readers() -> list[str]:
    """Every registered strategy scored on its own training pairs while it reads them."""
    from strategies import strategy_names

    return [
        n
        for n in strategy_names(include_hidden=True)
        if get_strategy_class(n).validates_on_training() and get_strategy_class(n).reads_pairs
    ]


@pytest.mark.parametrize("name", _pool_readers())
def test_a_strategy_validated_on_its_training_pairs_never_shows_their_answers(
    name, chunked_mini, tiny_models, tmp_path
):
    corpus, pairs = chunked_mini
    # A near-duplicate of each of four questions (the same words in capitals), which the
    # identical-question filter alone would let through as a shot.
    asked = pairs[:4]
    twins = [QAPair(f"twin{i}", p.question.upper(), p.answers) for i, p in enumerate(asked)]
    kind = get_strategy_class(name)
    got = tuning_pairs(kind, kind.config_class(), pairs + twins, 0.1, seed=0)
    for p, twin in zip(asked, twins, strict=True):
        assert got.leave_out[p.question] == {p.id, twin.id}
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path, leave_out=got.leave_out)
    strategy = create_strategy(name, None, ctx)
    strategy.prepare(corpus, got.fit)
    for p, answer in zip(asked, strategy.answer([p.question for p in asked]), strict=True):
        shown = " ".join(c.text for c in answer.contexts if c.kind == "shot")
        assert p.question.lower() not in shown.lower(), (name, p.id)
        assert shown or not got.fit[1:], name  # the others still serve as shots


# --- 2. racing ------------------------------------------------------------------------------


def test_a_clearly_worse_setting_is_raced_out_and_the_finalists_see_every_pair(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    val = _pairs(64)
    _modes(val, {"base": (val[5].question,), "lucky": ()})
    job = _job(tmp_path, "ev_mode", val)
    _, rec = tune(job, TuningConfig(budget="quick", n_trials=4, racing="clear"))
    by_mode = {t.values["mode"]: t for t in rec.trials}
    assert set(by_mode) == set(MODES)  # four settings, each tried once
    wrong = by_mode["wrong"]
    assert wrong.state == "pruned" and wrong.answered == 16  # the first race point of 64
    assert sum(m == "wrong" for m, _ in ModeStrategy.answered) == 16
    for mode in ("base", "right", "lucky"):  # close to the leader: measured on every pair
        assert by_mode[mode].state == "complete" and by_mode[mode].answered == 64, mode
    # The running score went to Optuna batch by batch (step = pairs answered).
    study = optuna.load_study(
        study_name=study_name(job), storage=JournalStorage(JournalFileBackend(str(job.journal)))
    )
    raced = next(t for t in study.trials if t.number == wrong.number)
    assert sorted(raced.intermediate_values) == [4, 8, 12, 16]
    assert all(v == 0.0 for v in raced.intermediate_values.values())


def test_rungs_stop_a_setting_that_is_not_ahead_and_let_the_better_one_finish(tmp_path):
    val = _pairs(64)
    # base misses pair 5 (inside the first rung of 16); "right" and "lucky" answer alike.
    _modes(val, {"base": (val[5].question,), "lucky": ()})
    job = _job(tmp_path, "ev_mode", val)
    _, rec = tune(job, TuningConfig(budget="quick", n_trials=4))
    by_mode = {t.values["mode"]: t for t in rec.trials}
    assert by_mode["base"].state == "complete" and by_mode["base"].answered == 64  # the default
    assert by_mode["wrong"].state == "pruned" and by_mode["wrong"].answered == 16
    # Of the two settings that answer alike, the first one tried is ahead of the default at
    # every rung and answers all 64; the second only ties it (the new leader) at 16 and stops.
    first, second = sorted((by_mode["right"], by_mode["lucky"]), key=lambda t: t.number)
    assert first.state == "complete" and first.answered == 64
    assert second.state == "pruned" and second.answered == 16
    answered = len(ModeStrategy.answered)
    assert answered == 64 + 16 + 64 + 16  # against 64 * 3 + 16 racing only when clearly behind
    # The default answered its first rung in its own trial, the rest for the rival that went
    # on (each pair before that rival was raced on it); its row counts them all.
    base = [q for m, q in ModeStrategy.answered if m == "base"]
    assert base == [p.question for p in val]
    assert [m for m, _ in ModeStrategy.answered[:16]] == ["base"] * 16
    assert rec.default_score.n == 64 and rec.gain.n == 64


def test_the_default_answers_only_as_far_as_a_rival_goes(tmp_path):
    val = _pairs(64)
    # Every rival is behind the default by the first rung (16 pairs): none goes on, so the
    # default is never asked past it.
    _modes(val, {"base": (val[5].question,), "right": (val[3].question, val[5].question)})
    ModeStrategy.misses["lucky"] = (val[3].question, val[5].question, val[9].question)
    chosen, rec = tune(_job(tmp_path, "ev_mode", val), TuningConfig(budget="quick", n_trials=4))
    assert chosen.mode == "base" and rec.chosen_trial == 0 and not rec.changed
    assert [(t.default, t.state, t.answered) for t in rec.trials] == [(True, "complete", 16)] + [
        (False, "pruned", 16)
    ] * 3
    assert len(ModeStrategy.answered) == 4 * 16  # against 64 + 3 * 16 with a default on all
    assert rec.val_pairs == 64 and rec.default_score.n == 16
    assert rec.note == (
        "default kept: no other setting stayed ahead of it; it answered 16 of the 64 "
        "validation pairs, as far as the other settings went"
    )


def test_rung_arithmetic():
    assert [rung_between(b, n) for b, n in ((0, 8), (8, 16), (16, 24), (40, 48), (48, 56))] == [
        None,
        16,
        None,
        48,
        None,
    ]
    assert rung_between(0, 20) == 16 and rung_between(140, 150) == 144
    assert rung_between(10, 20, first=5) == 15  # batches that skip past a rung still meet it
    assert not_ahead([1.0, 0.0], [1.0, 0.0, 1.0]) and not_ahead([0.5, 0.5], [1.0, 0.0])
    assert not not_ahead([1.0, 0.5], [1.0, 0.0, 0.0])
    # 16 for sure, half of the trials on to 48, a quarter to 144, an eighth to the end.
    assert expected_answers(294) == 16 + 32 / 2 + 96 / 4 + 150 / 8
    assert expected_answers(10) == 10 and expected_answers(30) == 16 + 14 / 2


def test_racing_stops_only_a_trial_behind_beyond_noise():
    leader = [1.0] * 40
    assert clearly_behind([0.0] * 16, leader)
    assert not clearly_behind([0.0] * 15, leader)  # too few pairs yet
    assert not clearly_behind([1.0] * 16, leader)
    assert not clearly_behind([1.0] * 15 + [0.0], leader)  # one miss: within noise
    assert not clearly_behind([0.0] * 16, None)  # nothing finished to race against
    # Eight misses that are one near-duplicate group are one unit of evidence, not eight.
    running = [0.0] * 8 + [1.0] * 8
    assert clearly_behind(running, [1.0] * 16)
    assert not clearly_behind(running, [1.0] * 16, groups=[0] * 8 + list(range(1, 9)))


# --- 3. a default is replaced only on evidence ----------------------------------------------


def test_a_setting_better_beyond_noise_replaces_the_default(tmp_path):
    val = _pairs(40)
    _modes(val, {"base": tuple(p.question for p in val[::2])})  # base misses half
    _, rec = tune(_job(tmp_path, "ev_mode", val), TuningConfig(budget="quick", n_trials=4))
    assert rec.adopt == "evidence" and rec.chosen["mode"] in ("right", "lucky")
    assert rec.gain.low > 0 and rec.crossfit_gain.low > 0
    assert rec.crossfit_gain.mean == pytest.approx(0.5)
    assert rec.note.startswith("replaced on evidence")


def test_a_lead_within_noise_keeps_the_default_and_says_why(tmp_path):
    val = _pairs(40)
    # lucky is right on one pair base misses: the best mean, a gain of 1/40 within noise.
    _modes(val, {"base": (val[7].question,), "right": (val[3].question, val[7].question)})
    ModeStrategy.misses["lucky"] = ()
    quick = TuningConfig(budget="quick", n_trials=4)
    chosen, rec = tune(_job(tmp_path / "e", "ev_mode", val), quick)
    assert chosen.mode == "base" and rec.chosen == {"mode": "base"} and not rec.changed
    assert rec.best == {"mode": "lucky"} and rec.gain.mean == pytest.approx(1 / 40)
    assert rec.gain.low <= 0
    assert rec.note.startswith("default kept") and "lower bound not above 0" in rec.note
    assert rec.chosen_trial == 0  # the default trial (its artifacts would serve the arm)
    row = tuning_table_row(rec)
    assert row["decision"] == rec.note and row["changed settings"] == "none"
    # Under the old rule the highest score wins, however small its lead.
    ModeStrategy.answered = []
    best = TuningConfig(budget="quick", n_trials=4, adopt="best")
    chosen, rec = tune(_job(tmp_path / "b", "ev_mode", val), best)
    assert chosen.mode == "lucky" and rec.changed == {"mode": "lucky"}
    assert rec.adopt == "best" and rec.note.startswith("replaced by the highest")


def tuning_table_row(rec: TuningRecord) -> dict:
    from eval.store.rows import RunMeta
    from eval.store.runs import Run, StrategyResult

    result = StrategyResult("ev_mode", "done")
    result.extras.tuning = rec
    config = {"tuning": {"budget": "quick"}}
    run = Run("r", "r", "done", 0.0, None, config, None, RunMeta(), None, [result])
    (row,) = tuning_table(run).to_dict("records")
    return row


def test_the_cross_fitted_gain_is_measured_on_pairs_that_did_not_choose_it():
    # Eight pairs, halves A = 0..3 and B = 4..7. X beats the default on A and loses on B: on all
    # eight it "gains" +0.25, but chosen on A it is measured on B (-0.5 each), and on B the
    # default is chosen (0 on A): cross-fitted, -0.25.
    default = [0.0] * 4 + [0.5] * 4
    x = [1.0] * 4 + [0.0] * 4
    split = ([0, 1, 2, 3], [4, 5, 6, 7])
    assert sum(a - d for a, d in zip(x, default, strict=True)) / 8 == 0.25
    assert crossfit_diffs(default, [default, x], split) == [0.0] * 4 + [-0.5] * 4
    # Y better on both halves is chosen on both and measured on the other half.
    y = [1.0] * 8
    assert crossfit_diffs(default, [default, y, x], split) == [1.0] * 4 + [0.5] * 4


def test_the_halves_keep_near_duplicate_groups_whole():
    pairs = _pairs(20)
    pairs += [QAPair(f"d{i}", pairs[i].question.replace("Which", "What"), ("x",)) for i in range(6)]
    a, b = halves(pairs, 0.6, seed=1)
    assert sorted(a + b) == list(range(len(pairs))) and abs(len(a) - len(b)) <= 2
    for g in near_duplicate_groups(pairs, 0.6):
        assert set(g) <= set(a) or set(g) <= set(b)
    assert halves(pairs[:1], 0.6, seed=1) is None
    assert TuningConfig().adopt == "evidence"


# --- 4. defects -----------------------------------------------------------------------------


def test_a_trial_that_raises_fails_alone_and_the_search_goes_on(tmp_path):
    job = _job(tmp_path, "ev_rank", _same_answer(4), trains=True)
    # A trained arm's other trials get one default training's time: here seconds of their own.
    chosen, rec = tune(job, TuningConfig(budget="quick", n_trials=3, max_seconds=60))
    by_r = {t.values["r"]: t for t in rec.trials}
    assert set(by_r) == {8, 16, 32}
    assert by_r[32].state == "fail" and "CUDA out of memory" in by_r[32].error
    assert by_r[16].state == "complete" and rec.n_failed == 1
    assert rec.best == {"r": 16}  # the search went on past the failure


def test_a_setting_the_config_refuses_is_a_failed_trial_with_its_reason(tmp_path):
    job = _job(tmp_path, "ev_refusing", _same_answer(4))
    _, rec = tune(job, TuningConfig(budget="quick", n_trials=3))
    by_n = {t.values["n"]: t for t in rec.trials}
    assert set(by_n) == {1, 2, 3} and rec.n_failed == 1
    assert by_n[3].state == "fail" and "n 3 is refused" in by_n[3].error


def test_an_off_grid_default_runs_as_it_is(tmp_path):
    EpochsStrategy.ran = []
    job = _job(tmp_path, "ev_epochs", _same_answer(8))
    chosen, rec = tune(job, TuningConfig(budget="quick", n_trials=12))
    assert EpochsStrategy.ran[0] == 1.5 and rec.trials[0].values == {"epochs": 1.5}
    assert rec.default == {"epochs": 1.5} and rec.trials[0].value == 1.0
    # The grid point nearest the default (1) is a setting of its own, tried on its own.
    assert sorted(EpochsStrategy.ran) == [1, 1.5, 2, 3]  # each once; the search then stops
    assert chosen.epochs == 1.5


def test_loras_off_grid_epochs_default_is_what_its_trial_builds(tmp_path):
    kind = get_strategy_class("lora+rag")
    base = kind.config_class.from_dict({"lora": {"training": {"epochs": 1.5}}})
    built: list[float] = []

    def build(cfg, workdir, progress, cancelled):
        built.append(cfg.lora.training.epochs)
        raise RuntimeError("no model on this test: the trial fails after its build")

    job = _job(tmp_path, "lora+rag", _pairs(4), base=base, trains=True, build=build)
    _, rec = tune(job, TuningConfig(budget="quick", n_trials=1))
    (trial,) = rec.trials
    assert built == [1.5] and trial.values["lora.training.epochs"] == 1.5
    assert trial.state == "fail" and "no model" in trial.error
    assert rec.status == "skipped"  # the default could not be scored: it stands


def test_a_tuning_error_fails_its_arm_and_the_run_goes_on(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    import eval.tuning.arm

    real = eval.tuning.arm.tune

    def broken(job, tuning):
        if job.label == "fake":
            return real(job, tuning)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("eval.tuning.arm.tune", broken)
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["ev_mode", "fake"],
        retention_questions=0,
        tuning={"budget": "quick", "n_trials": 2},
    )
    store = RunStore(cfg.store_path)
    run = store.get_run(run_comparison(cfg))
    assert run.status == "done"
    by = {r.strategy: r for r in run.results}
    assert by["ev_mode"].status == "failed" and "illegal memory access" in by["ev_mode"].error
    assert by["ev_mode"].extras.tuning.status == "failed"
    assert by["ev_mode"].prepare.traceback
    assert by["fake"].status == "done"


def test_a_run_shows_each_arms_validation_size_and_decision(mini_corpus, tiny_models, tmp_path):
    from core.qa import load_qa

    _modes(load_qa(mini_corpus[1]), {"base": ()})
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["ev_mode"],
        retention_questions=0,
        tuning={"budget": "quick", "n_trials": 4},
    )
    store = RunStore(cfg.store_path)
    run_id = run_comparison(cfg)
    run = store.get_run(run_id)
    (result,) = run.results
    rec = result.extras.tuning
    assert rec.val_pairs == run.meta.split.train >= 2 and rec.validation == ALL_PAIRS
    (row,) = tuning_table(run).to_dict("records")
    assert row["validation pairs"] == rec.val_pairs and row["validated on"] == ALL_PAIRS
    assert row["default answered"] == rec.default_score.n
    assert row["decision"] == rec.note
    summary = summary_with_diagnostics(store, run_id)
    assert summary["tuning"]["ev_mode"]["val_pairs"] == rec.val_pairs
    assert summary["tuning"]["ev_mode"]["validation"] == ALL_PAIRS


def test_a_tuning_record_stored_before_these_fields_still_reads():
    old = {
        "status": "tuned",
        "budget": "quick",
        "val_pairs": 15,
        "gain": {"mean": 0.04, "low": -0.003, "high": 0.08, "n": 15},
        "trials": [{"number": 0, "state": "complete", "value": 0.1, "values": {}, "seconds": 1.0}],
    }
    rec = TuningRecord.from_dict(old)
    assert rec.val_pairs == 15 and rec.validation == "" and rec.crossfit_gain is None
    assert rec.trials[0].answered is None and rec.trials[0].error == ""
    assert rec.within_noise is True and rec.n_failed == 0


def test_a_redraw_of_a_pruned_setting_is_pruned_not_complete(tmp_path):
    import optuna

    val = _pairs(32)
    _modes(val, {})
    job = _job(tmp_path, "ev_mode", val)
    objective = Objective(job, spaces_of(ModeConfig), {})
    study = optuna.create_study(direction="maximize", pruner=RacePruner(None))
    study.enqueue_trial(objective.default_params(), user_attrs={"default": True})
    study.enqueue_trial({"mode": "wrong"})
    study.enqueue_trial({"mode": "wrong"})  # drawn again: the first outcome stands
    study.optimize(objective, n_trials=3, catch=_FAILED)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "PRUNED"]
    # Optuna keeps the pruned trial's running score (0 on 16 pairs) as its value; the repeat
    # does not turn it into a complete trial that could be chosen on 16 pairs.
    assert study.trials[2].user_attrs["repeat_of"] == 1
    assert study.best_trial.number == 0
