"""The judge inside a run: scored like any metric, rationales and cost stored, rescored on stored
answers, shown in the CLI; with a scripted judge (exact figures) and the tiny model (real path)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from eval import harness
from eval.cli import main
from eval.config import RunConfig
from eval.judge import Judge, JudgeConfig, agreement_by_strategy
from eval.store import RunStore
from tests.test_judge import FakeGeneration


class ScriptedJudge:
    """Says CORRECT when the answer shares a word with a gold answer, else INCORRECT; says
    something unreadable for one chosen question."""

    name = "scripted"

    def __init__(self, unreadable: str = "What do B cells produce?"):
        self.unreadable = unreadable

    def generate(self, conversations, max_new_tokens=32):
        out = []
        for conv in conversations:
            prompt = conv[-1]["content"]
            field = {k: v for k, _, v in (ln.partition(": ") for ln in prompt.splitlines())}
            golds = set(field["Gold answer(s)"].lower().replace("|", " ").split())
            right = bool(golds & set(field["Candidate answer"].lower().split()))
            text = "Verdict: CORRECT" if right else "Verdict: INCORRECT"
            if field["Question"] == self.unreadable:
                text = "I am not sure."
            out.append(FakeGeneration(f"{text}\nReason: scripted.", 10, 4))
        return out


def config(mini_corpus, tmp_path, **over) -> RunConfig:
    corpus, qa = mini_corpus
    data = {
        "corpus": str(corpus),
        "qa": str(qa),
        "strategies": ["fake"],
        "metrics": ["f1", "judge"],
        "split": {"test_fraction": 0.5},
        "store_path": str(tmp_path / "runs.sqlite"),
        "workdir": str(tmp_path / "work"),
        "bootstrap_resamples": 200,
        "retention_questions": 0,
    }
    return RunConfig.from_dict({**data, **over})


@pytest.fixture
def scripted(monkeypatch):
    """The harness's judge replaced by the scripted one (no model loaded)."""
    made = []

    def load(cfg):
        made.append(cfg.judge)
        return Judge(ScriptedJudge(), cfg.judge, "scripted")

    monkeypatch.setattr(harness, "_load_judge", load)
    return made


def test_run_scores_judge_and_stores_rationales_and_cost(mini_corpus, tmp_path, scripted):
    cfg = config(mini_corpus, tmp_path)
    run_id = harness.run_comparison(cfg)
    store = RunStore(cfg.store_path)
    run = store.get_run(run_id)
    result = run.results[0]
    assert result.status == "done", result.error
    answers = store.get_answers(run_id)
    assert all(set(a.scores) == {"f1", "judge"} for a in answers)
    assert all(a.details["judge"]["rationale"] == "scripted." for a in answers)
    unreadable = [a for a in answers if a.question == "What do B cells produce?"]
    n_unreadable = len(unreadable)
    assert all(a.scores["judge"] is None for a in unreadable)
    judged = [a.scores["judge"] for a in answers if a.scores["judge"] is not None]
    assert result.metrics["judge"]["n"] == len(judged)
    assert result.metrics["judge"]["mean"] == pytest.approx(sum(judged) / len(judged))
    # Judging cost is kept apart from the strategy's: its tokens are the judge's own.
    cost = result.extras["judge"]
    assert cost["model"] == "scripted" and cost["verdicts"] == len(answers)
    assert cost["unparsed"] == n_unreadable
    assert cost["prompt_tokens"] == 10 * len(answers) and cost["output_tokens"] == 4 * len(answers)
    assert result.cost["prompt_tokens_mean"] != 10
    # Exports carry the rationale.
    rows = list(csv.DictReader(io.StringIO(store.export_csv(run_id))))
    assert rows[0]["judge_rationale"] == "scripted." and "judge" in rows[0]
    assert json.loads(store.export_json(run_id))["answers"][0]["details"]["judge"]["raw"]
    assert agreement_by_strategy(answers)["fake"].n == len(judged)


def test_judge_is_not_scored_unless_named(mini_corpus, tmp_path, scripted):
    cfg = config(mini_corpus, tmp_path, metrics=[])
    run_id = harness.run_comparison(cfg)
    store = RunStore(cfg.store_path)
    assert not scripted
    assert "judge" not in store.get_run(run_id).results[0].metrics
    assert all("judge" not in a.scores and not a.details for a in store.get_answers(run_id))


def test_rescore_judge_on_stored_answers(mini_corpus, tmp_path, scripted, monkeypatch):
    cfg = config(mini_corpus, tmp_path, metrics=["f1"])
    run_id = harness.run_comparison(cfg)
    store = RunStore(cfg.store_path)
    before = {a.qid: a.answer.text for a in store.get_answers(run_id)}
    # Strategies never generate again: their class would fail if asked to.
    monkeypatch.setattr(harness, "create_strategy", lambda *a, **k: pytest.fail("generated"))
    harness.rescore(store, run_id, ["judge"], judge_config=JudgeConfig(max_tokens=9))
    assert scripted[-1].max_tokens == 9
    run = store.get_run(run_id)
    assert set(run.results[0].metrics) == {"f1", "judge"}
    assert run.results[0].extras["judge"]["verdicts"] == len(before)
    answers = store.get_answers(run_id)
    assert {a.qid: a.answer.text for a in answers} == before
    assert all(a.details["judge"]["rationale"] == "scripted." for a in answers)


def test_cli_judge_with_the_tiny_model(mini_corpus, tmp_path, capsys):
    corpus, qa = mini_corpus
    store = tmp_path / "runs.sqlite"
    args = ["--corpus", str(corpus), "--qa", str(qa), "--strategies", "fake"]
    args += ["--generator", "tiny", "--store", str(store), "--quiet", "--metrics", "f1"]
    rc = main(["run", *args, "--judge", "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert rc == 0
    run_id = json.loads((tmp_path / "s.json").read_text())["run_id"]
    assert (
        "Judge"
        in out.splitlines()[
            out.splitlines().index(next(ln for ln in out.splitlines() if ln.startswith("Strategy")))
        ]
    )
    assert "Judge (tiny):" in out and "not included in the strategies' costs" in out
    run = RunStore(store).get_run(run_id)
    assert run.config["metrics"] == ["f1", "judge"]
    verdicts = run.results[0].extras["judge"]["verdicts"]
    assert verdicts == run.results[0].metrics["f1"]["n"]
    # Rescored by another model name (here the same tiny one) on the stored answers.
    rc = main(
        ["rescore", run_id, "--metrics", "judge", "--judge-model", "tiny", "--store", str(store)]
    )
    assert rc == 0 and "Judge (tiny):" in capsys.readouterr().out
