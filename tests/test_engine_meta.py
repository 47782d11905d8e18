"""Runs on an OpenAI-compatible server: the server recorded with the run, the judge as an
endpoint, and the Run page refusing trained arms the server cannot serve, before the run."""

from __future__ import annotations

import pytest

from eval.config import RunConfig
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from eval.views.tables import render_run
from tests.test_engines import Stub, completion


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def config(mini_corpus, tmp_path, **over) -> RunConfig:
    corpus, qa = mini_corpus
    data = {
        "corpus": str(corpus),
        "qa": str(qa),
        "split": {"test_fraction": 0.3},
        "store_path": str(tmp_path / "runs.sqlite"),
        "workdir": str(tmp_path / "work"),
        "bootstrap_resamples": 200,
        "retention_questions": 0,
        "tuning": {"budget": "off"},
    }
    return RunConfig.from_dict({**data, **over})


def test_run_on_a_server_records_it_and_is_judged_there(stub, mini_corpus, tmp_path):
    stub.script["/v1/chat/completions"] = [
        (200, completion("Verdict: INCORRECT\nReason: stub says so.", 20, 6), {})
    ]
    models = {"engine": "openai", "base_url": stub.url, "generator": "tiny"}
    cfg = config(
        mini_corpus,
        tmp_path,
        strategies=["system_prompt"],
        models=models,
        metrics=["f1", "judge"],
        verdict={"oracle": False},  # only the strategy's answers and the verdicts reach the stub
    )
    run_id = run_comparison(cfg)
    run = RunStore(cfg.store_path).get_run(run_id)
    assert run.status == "done", run.error
    server = run.meta.models["server"]
    assert (server["model_id"], server["base_url"], server["kind"]) == (
        "stub-model",
        stub.url,
        "openai-compatible",
    )
    assert run.meta.models["engine"] == "openai"
    assert f"Engine: openai, model stub-model at {stub.url}" in render_run(run)
    # The judge asked the same server: its tokens are the server's usage counts.
    result = run.results[0]
    n = result.metrics["f1"].n
    assert result.metrics["judge"].mean == 0.0
    assert result.extras.judge.prompt_tokens == 20 * n
    assert len(stub.calls("/v1/chat/completions")) == 2 * n  # answers, then verdicts


def test_in_process_run_judged_by_an_endpoint(stub, mini_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    stub.script["/v1/chat/completions"] = [(200, completion("Score: 0.5 Reason: half"), {})]
    judge = {"engine": "openai", "base_url": stub.url, "api_key_env": "JUDGE_KEY"}
    cfg = config(mini_corpus, tmp_path, strategies=["fake"], metrics=["judge"], judge=judge)
    run_id = run_comparison(cfg)
    run = RunStore(cfg.store_path).get_run(run_id)
    assert run.results[0].metrics["judge"].mean == 0.5
    assert run.results[0].extras.judge.model == "stub-model"
    first = stub.calls("/v1/chat/completions")[0]
    assert "Candidate answer:" in first["body"]["messages"][-1]["content"]
    assert first["headers"]["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in str(run.config)  # only the variable's name is stored
    assert not run.meta.models  # the fake strategy loads no model; the judge is apart


def test_run_page_says_a_server_cannot_serve_adapters_before_the_run(stub, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP, goto, texts

    monkeypatch.setenv("ADAPTLAB_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    # The operator lets runs send MY_KEY (a browser may name no variable otherwise).
    # and reach the stub on its random loopback port (the default names a few fixed ports).
    (tmp_path / "home" / "allowed_paths.yaml").write_text(
        "api_key_envs: [MY_KEY]\nservers: [http://127.0.0.1]\n"
    )
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    goto(at, "run")
    at.multiselect(key="run.strategies").set_value(["system_prompt", "lora"]).run()
    at.selectbox(key="run.models.engine").set_value("openai").run()
    at.text_input(key="run.models.base_url").set_value(stub.url).run()
    at.text_input(key="run.models.api_key_env").set_value("MY_KEY").run()
    assert not at.exception
    assert "lora cannot run on engine 'openai'" in texts(at.error)
    assert at.button(key="run").disabled
    at.multiselect(key="run.strategies").set_value(["system_prompt"]).run()
    assert not at.error and not at.button(key="run").disabled
