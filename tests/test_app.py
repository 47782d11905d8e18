"""The web page, driven headless with Streamlit's AppTest (model-free strategy for speed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTLAB_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["show_hidden_strategies"] = True
    return at


def wait_for_results(at: AppTest, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        at.run()
        if len(at.dataframe) >= 2:
            return
        if any("run failed" in e.value for e in at.error):
            break
        time.sleep(0.3)
    raise AssertionError("results never appeared: " + " | ".join(e.value for e in at.error))


def test_page_renders_with_the_sample(app):
    app.run()
    assert not app.exception
    assert app.title[0].value == "AdaptLab"
    assert app.multiselect(key="strategies").value == ["system_prompt", "few_shot", "rag", "lora"]
    text = " ".join(m.value for m in app.markdown)
    assert "**367** Q/A pairs" in text and "**73** test (the run asks the first 20)" in text
    assert "No runs yet" in " ".join(i.value for i in app.info)


def test_run_from_the_page_shows_quality_and_cost(app, tmp_path):
    app.run()
    app.multiselect(key="strategies").set_value(["fake"]).run()
    app.number_input(key="n_test").set_value(5).run()
    app.number_input(key="cpu_per_hour").set_value(3.6).run()
    app.button(key="run").click().run()
    assert not app.exception
    wait_for_results(app)
    quality, cost = app.dataframe[0].value, app.dataframe[1].value
    assert list(quality["Strategy"]) == ["fake"]
    assert "F1" in quality.columns and "p50 s/q" in cost.columns
    assert "[" in quality["F1"][0]  # a confidence interval is shown
    assert not app.error
    from eval.store import RunStore

    store = RunStore(tmp_path / "home" / "runs.sqlite")
    run = store.get_run(store.list_runs()[0]["id"])
    assert run.config["prices"]["cpu_per_hour"] == 3.6  # the page's price table was used
    assert run.meta["split"]["test"] == 5


def test_bad_setting_is_a_message_not_a_traceback(app):
    app.run()
    app.multiselect(key="strategies").set_value(["fake"]).run()
    app.number_input(key="fake.answer_words").set_value(0).run()
    assert not app.exception
    assert any("answer_words" in e.value for e in app.error)
    assert app.button(key="run").disabled


def test_upload_own_files_with_a_broken_one(app):
    import json

    from tests.conftest import DOCS, QA

    app.run()
    app.radio(key="source").set_value("Upload my own").run()
    assert any("Upload at least one document" in i.value for i in app.info)
    docs = [(name, text.encode(), "text/plain") for name, text in DOCS.items()]
    docs.append(("broken.pdf", b"%PDF-1.4 not really a pdf", "application/pdf"))
    qa = "\n".join(json.dumps({"id": i, "question": q, "answers": a}) for i, q, a in QA)
    app.file_uploader(key="docs").set_value(docs).run()
    app.file_uploader(key="qa").set_value(("qa.jsonl", qa.encode(), "application/json")).run()
    assert not app.exception
    text = " ".join(m.value for m in app.markdown)
    assert "**2** documents" in text and "**10** Q/A pairs" in text
    assert any("broken.pdf" in w.value for w in app.warning)  # refused by name, rest kept
    app.multiselect(key="strategies").set_value(["fake"]).run()
    app.button(key="run").click().run()
    wait_for_results(app)
    assert list(app.dataframe[0].value["Strategy"]) == ["fake"]


def test_upload_of_a_bad_qa_file_is_explained(app):
    app.run()
    app.radio(key="source").set_value("Upload my own").run()
    app.file_uploader(key="docs").set_value(("a.txt", b"Some text here.", "text/plain")).run()
    app.file_uploader(key="qa").set_value(("qa.jsonl", b'{"question": "no answer"}', "x")).run()
    assert not app.exception
    assert any("qa.jsonl" in e.value for e in app.error)
    assert app.button(key="run").disabled
