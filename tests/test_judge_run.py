"""The judge inside a run: scored like any metric, rationales and cost stored, rescored on stored
answers, shown in the CLI; with a scripted judge (exact figures) and the tiny model (real path)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cli.main import main
from eval.config import RunConfig
from eval.judge import Judge, JudgeConfig
from eval.run import harness, scoring
from eval.run.workbench import Workbench
from eval.stats.agreement import agreement_by_strategy
from eval.store.runs import RunStore
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
        "tuning": {"budget": "off"},
    }
    return RunConfig.from_dict({**data, **over})


@pytest.fixture
def scripted(monkeypatch):
    """The harness's judge replaced by the scripted one (no model loaded)."""
    made = []

    def load(cfg):
        made.append(cfg.judge)
        return Judge(ScriptedJudge(), cfg.judge, "scripted")

    monkeypatch.setattr(scoring, "load_judge", load)
    return made


def test_run_scores_judge_and_stores_rationales_and_cost(mini_corpus, tmp_path, scripted):
    cfg = config(mini_corpus, tmp_path)
    events = []
    run_id = harness.run_comparison(cfg, progress=events.append)
    judged = [e for e in events if e.stage == "judge"]
    assert judged and judged[-1].done == judged[-1].total and judged[-1].strategy == "fake"
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
    assert result.metrics["judge"].n == len(judged)
    assert result.metrics["judge"].mean == pytest.approx(sum(judged) / len(judged))
    # Judging cost is kept apart from the strategy's: its tokens are the judge's own.
    cost = result.extras.judge
    assert cost.model == "scripted" and cost.verdicts == len(answers)
    assert cost.unparsed == n_unreadable
    assert cost.prompt_tokens == 10 * len(answers) and cost.output_tokens == 4 * len(answers)
    assert result.cost.prompt_tokens_mean != 10
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
    monkeypatch.setattr(Workbench, "strategy", lambda *a, **k: pytest.fail("generated"))
    scoring.rescore(store, run_id, ["judge"], judge_config=JudgeConfig(max_tokens=9))
    assert scripted[-1].max_tokens == 9
    run = store.get_run(run_id)
    assert set(run.results[0].metrics) == {"f1", "judge"}
    assert run.results[0].extras.judge.verdicts == len(before)
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
    summary = json.loads((tmp_path / "s.json").read_text())
    run_id = summary["run_id"]
    assert summary["strategies"]["fake"]["judge_cost"]["model"] == "tiny"  # apart from "cost"
    assert (
        "Judge"
        in out.splitlines()[
            out.splitlines().index(next(ln for ln in out.splitlines() if ln.startswith("Strategy")))
        ]
    )
    assert "Judge (tiny):" in out and "not included in the strategies' costs" in out
    run = RunStore(store).get_run(run_id)
    assert run.config["metrics"] == ["f1", "judge"]
    verdicts = run.results[0].extras.judge.verdicts
    assert verdicts == run.results[0].metrics["f1"].n
    # Rescored by another model name (here the same tiny one) on the stored answers.
    rc = main(
        ["rescore", run_id, "--metrics", "judge", "--judge-model", "tiny", "--store", str(store)]
    )
    assert rc == 0 and "Judge (tiny):" in capsys.readouterr().out


def test_html_report_has_the_judge_section(mini_corpus, tmp_path, scripted):
    from eval.views.html_report import html_report

    cfg = config(mini_corpus, tmp_path)
    run_id = harness.run_comparison(cfg)
    page = html_report(RunStore(cfg.store_path), run_id)
    assert "<th>Judge</th>" in page  # the judge column of the side-by-side table
    assert "Judge and F1" in page and "Cohen&#x27;s kappa" in page
    assert "Judge (scripted):" in page and "not included in the strategies" in page
    plain = harness.run_comparison(config(mini_corpus, tmp_path, metrics=["f1"]))
    assert "Judge and F1" not in html_report(RunStore(cfg.store_path), plain)


def test_compare_page_shows_judge_against_f1(mini_corpus, tmp_path, scripted, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP, OWNER, frame, goto

    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    cfg = config(mini_corpus, tmp_path, store_path=str(home / "runs.sqlite"))
    harness.run_comparison(cfg, owner=OWNER)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["owner"] = OWNER  # the run's owner opens the app
    at.run()
    goto(at, "compare")
    agree = frame(at, "Cohen's kappa")
    assert list(agree["Strategy"]) == ["all", "fake"]
    assert "Judge" in frame(at, "F1").columns  # the judge column of the side-by-side table
    assert "Judge's reason" in frame(at, "Judge's reason").columns
    assert list(frame(at, "Verdicts")["Judge model"]) == ["scripted"]


def test_run_page_judge_and_tracking_reach_the_stored_run(mini_corpus, tmp_path, monkeypatch):
    """Through the page and the background worker: the tiny model judges, MLflow logs."""
    pytest.importorskip("mlflow", reason="optional: requirements-tracking.txt")
    from streamlit.testing.v1 import AppTest

    from service.jobs import JobQueue
    from tests.test_app import APP, goto, texts

    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["show_hidden_strategies"] = True
    at.run()
    goto(at, "run")
    at.multiselect(key="run.strategies").set_value(["fake"]).run()
    at.number_input(key="run.n_test").set_value(3).run()
    at.number_input(key="run.retention_questions").set_value(0).run()
    at.text_input(key="run.models.generator").set_value("tiny").run()
    at.checkbox(key="judge_on").check().run()
    at.text_input(key="judge.model").set_value("tiny").run()
    at.number_input(key="judge.max_tokens").set_value(5).run()
    at.toggle(key="track_on").set_value(True).run()
    assert not at.exception and not at.error, texts(at.error)
    at.button(key="run").click().run()
    try:
        queue = JobQueue(home / "runs.sqlite")
        job = next(j for j in queue.list_jobs() if j.kind == "run")
        snap = queue.wait(job.id, timeout=300)
        assert snap.status == "done", snap
        run = RunStore(home / "runs.sqlite").get_run(snap.run_id)
        assert "judge" in run.config["metrics"] and run.config["judge"]["max_tokens"] == 5
        assert run.results[0].extras.judge.verdicts == 3
        assert run.meta.tracking["ok"], run.meta.tracking
        assert (home / "mlruns" / "mlflow.db").exists()
        goto(at, "compare")
        assert "Logged to mlflow" in texts(at.caption)
    finally:
        from tests.test_app import worker_pid

        pid = worker_pid(home / "runs.sqlite")
        if pid:
            import os
            import signal

            os.kill(pid, signal.SIGTERM)
