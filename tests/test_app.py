"""The web app's pages, driven headless with Streamlit's AppTest (model-free strategy for speed)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from eval.config import RunConfig
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from eval.views.format import display_name
from service.jobs import JobQueue, worker_pid
from tests.conftest import DOCS
from tests.test_harness import make_config

APP = str(Path(__file__).resolve().parents[1] / "app.py")
OWNER = "test-owner-token-0001"  # the app's visitor; runs made here belong to them


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    yield home
    pid = worker_pid(home / "runs.sqlite")  # the Run page started one: it must not linger
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
def app(home):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["owner"] = OWNER
    at.session_state["show_hidden_strategies"] = True
    at.run()
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"ui/{page}_page.py")
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    """The elements' text as the reader sees it (Markdown escapes of untrusted text removed)."""
    return re.sub(r"\\([\\`*_{}\[\]()<>!:$~|#])", r"\1", " | ".join(e.value for e in elements))


def frame(at: AppTest, column: str):
    """The shown table having `column` (AppTest keeps no dataframe keys)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    shown = [list(df.value.columns) for df in at.dataframe]
    raise AssertionError(f"no table with column {column!r}; tables: {shown}")


@pytest.fixture
def stored_run(home, mini_corpus, tiny_models, tmp_path):
    """A finished run in the app's store: three strategies, tiny model, mini corpus."""
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "rag", "lora"],
        strategy_configs={"lora": {"epochs": 1, "batch_size": 4}},
        learning_curve=[0.5],
        store_path=str(home / "runs.sqlite"),
        workdir=str(home / "work"),
    )
    return run_comparison(cfg, owner=OWNER)


def test_corpus_page_starts_on_the_sample(app):
    assert not app.exception
    md = texts(app.markdown)
    assert "**2** documents" in md and "**367** Q/A pairs" in md
    assert app.selectbox(key="corpus_pick").value == "sample"


def test_upload_keeps_good_files_names_refused_ones_and_generates_pairs(app):
    docs = [(name, text.encode(), "text/plain") for name, text in DOCS.items()]
    docs.append(("broken.pdf", b"%PDF-1.4 not really a pdf", "application/pdf"))
    app.text_input(key="up_name").set_value("Mini")
    app.file_uploader(key="docs").set_value(docs)
    app.button(key="FormSubmitter:upload_form-Save corpus").click().run()
    assert not app.exception
    assert "Saved **Mini**" in texts(app.success)
    md = texts(app.markdown)
    assert "**2** documents" in md or "**3** documents" in md
    assert "broken.pdf" in texts(app.warning) + texts(app.error)
    assert "no Q/A pairs" in texts(app.info)
    # Run refuses to start without pairs and says where to get them
    goto(app, "run")
    assert "no question/answer pairs" in texts(app.warning)
    goto(app, "corpus")
    app.button(key="FormSubmitter:gen_form-Generate pairs").click().run()
    assert not app.exception
    assert "pairs generated" in texts(app.success)
    edited = app.data_editor(key="gen_editor")
    assert len(edited.value) > 0
    app.button(key="gen_save").click().run()
    assert not app.exception
    assert "Q/A pairs" in texts(app.markdown)
    goto(app, "run")
    assert "Mini" in texts(app.caption)


def test_the_picker_shows_the_corpus_just_saved_and_a_refused_upload_keeps_the_form(app):
    assert app.selectbox(key="corpus_pick").value == "sample"
    docs = [(name, text.encode(), "text/plain") for name, text in DOCS.items()]
    app.text_input(key="up_name").set_value("Kept")
    app.file_uploader(key="docs").set_value(docs)
    bad_qa = [("qa.csv", b"wrong,header\n1,2\n", "text/csv")]
    app.file_uploader(key="qa").set_value(bad_qa)
    app.button(key="FormSubmitter:upload_form-Save corpus").click().run()
    assert "Nothing was saved" in texts(app.error)
    assert app.text_input(key="up_name").value == "Kept"  # the form is not emptied
    assert app.selectbox(key="corpus_pick").value == "sample"

    app.file_uploader(key="qa").set_value([])
    app.button(key="FormSubmitter:upload_form-Save corpus").click().run()
    assert not app.exception
    assert "Saved **Kept**" in texts(app.success)
    picked = app.selectbox(key="corpus_pick")
    assert picked.value != "sample" and picked.format_func(picked.value).startswith("Kept (")
    assert "Selected corpus: Kept" in texts(app.subheader)
    app.run()  # the next run draws an empty form under new keys, the picker stays
    assert app.selectbox(key="corpus_pick").value == picked.value
    assert app.text_input(key="up_name_1").value == ""


def test_a_running_run_stays_on_the_run_page_whatever_corpus_is_selected(app, home):
    queue = JobQueue(home / "runs.sqlite")
    sample = Path(__file__).resolve().parents[1] / "sample_data"
    config = RunConfig(
        corpus=str(sample / "corpus"),
        qa=str(sample / "qa.jsonl"),
        strategies=["fake"],
        store_path=str(home / "runs.sqlite"),
        workdir=str(home / "work"),
    )
    job_id = queue.submit(config, owner=OWNER)
    assert queue.claim().id == job_id  # running, held by this process: no worker starts
    run_id = queue.get(job_id).run_id
    docs = [(name, text.encode(), "text/plain") for name, text in DOCS.items()]
    app.text_input(key="up_name").set_value("No pairs yet")
    app.file_uploader(key="docs").set_value(docs)
    app.button(key="FormSubmitter:upload_form-Save corpus").click().run()
    assert "Saved **No pairs yet**" in texts(app.success)

    goto(app, "run")
    assert "no question/answer pairs" in texts(app.warning)
    bars = [e for e in app.get("progress") if f"Run {run_id}" in str(e.proto)]
    assert bars, "the running run's progress bar is missing"
    app.button(key=f"run_cancel_{job_id}").click().run()
    assert queue.get(job_id).cancel_requested


def test_model_generation_runs_in_the_worker_and_lands_in_the_review(app, home):
    app.selectbox(key="gen_method").set_value("model")
    app.text_input(key="gen_generator").set_value("tiny")
    app.button(key="FormSubmitter:gen_form-Generate pairs").click().run()
    assert not app.exception
    job_id = app.session_state["qagen_job"]  # queued for the worker, not run in the page
    assert JobQueue(home / "runs.sqlite").get(job_id).kind == "qagen"
    deadline = time.monotonic() + 120
    while app.session_state["qagen_job"] is not None:
        assert time.monotonic() < deadline, JobQueue(home / "runs.sqlite").get(job_id)
        time.sleep(0.5)
        app.run()
        assert not app.exception
    notes = texts(app.success) + texts(app.warning)
    assert "pairs generated from 60 candidates" in notes  # the tiny model writes noise
    assert JobQueue(home / "runs.sqlite").get(job_id).status == "done"


def test_operator_limits_file_is_enforced_and_a_broken_one_is_reported(home):
    home.mkdir(parents=True)
    (home / "upload_limits.yaml").write_text("max_files: 1\n")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert "up to 1 file," in at.file_uploader(key="docs").label
    docs = [(name, text.encode(), "text/plain") for name, text in sorted(DOCS.items())]
    at.file_uploader(key="docs").set_value(docs)
    at.button(key="FormSubmitter:upload_form-Save corpus").click().run()
    assert not at.exception
    assert "more than 1 file in one upload" in texts(at.warning)
    assert "**1** document," in texts(at.markdown)
    picked = at.selectbox(key="corpus_pick")
    assert "(1 document)" in picked.format_func(picked.value)  # the new one, in the singular

    (home / "upload_limits.yaml").write_text("max_files: none of your business\n")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert "upload_limits.yaml" in texts(at.error) and "defaults" in texts(at.error)
    assert "up to 200 files" in at.file_uploader(key="docs").label


def test_bad_setting_is_a_message_not_a_traceback(app):
    goto(app, "run")
    app.multiselect(key="run.strategies").set_value(["fake"]).run()
    app.number_input(key="run.fake.answer_words").set_value(0).run()
    assert not app.exception
    assert "answer_words" in texts(app.error)
    assert app.button(key="run").disabled
    app.text_input(key="run.learning_curve").set_value("half").run()
    assert "Settings" in texts(app.error)


def test_a_server_or_key_typed_in_the_browser_must_be_allowed(app):
    """A base URL is a request the server makes and an API-key variable a secret it sends:
    neither may point anywhere a visitor likes."""
    goto(app, "run")
    app.multiselect(key="run.strategies").set_value(["fake"]).run()
    app.selectbox(key="run.models.engine").set_value("openai").run()
    app.text_input(key="run.models.base_url").set_value("http://attacker.example/v1").run()
    assert not app.exception
    assert "attacker.example is not one this server lets users reach" in texts(app.error)
    assert app.button(key="run").disabled and app.button(key="estimate").disabled
    app.text_input(key="run.models.base_url").set_value("http://127.0.0.1:9/v1").run()
    assert "127.0.0.1:9 is not one this server lets users reach" in texts(app.error)  # any port
    app.text_input(key="run.models.base_url").set_value("http://127.0.0.1:8000/v1").run()
    app.text_input(key="run.models.api_key_env").set_value("AWS_SECRET_ACCESS_KEY").run()
    assert "'AWS_SECRET_ACCESS_KEY' is not one this server sends" in texts(app.error)
    assert app.button(key="run").disabled
    app.toggle(key="track_on").set_value(True).run()
    app.text_input(key="run.models.api_key_env").set_value("").run()
    app.text_input(key="track_uri").set_value("sqlite:////tmp/anywhere.db").run()
    assert "not in the app's mlruns/ folder" in texts(app.error)


def test_training_on_the_cpu_is_offered_with_its_time_not_by_default(app):
    goto(app, "run")
    strategies = app.multiselect(key="run.strategies")
    lora = next(o for o in strategies.options if o.startswith(display_name("lora")))
    assert "trains, about" in lora and "on this CPU" in lora
    assert "lora" not in strategies.value  # not in the default selection
    assert not [o for o in strategies.options if "(lora)" in o]  # no registry name beside it


def test_settings_survive_a_page_change_and_a_new_session(app, home):
    goto(app, "run")
    app.multiselect(key="run.strategies").set_value(["fake", "system_prompt"]).run()
    app.number_input(key="run.n_test").set_value(7).run()
    goto(app, "history")
    goto(app, "run")
    assert sorted(app.multiselect(key="run.strategies").value) == ["fake", "system_prompt"]
    assert app.number_input(key="run.n_test").value == 7
    # a reload is a new session with the same owner: the store brings the settings back
    owner = app.query_params["owner"]
    again = AppTest.from_file(APP, default_timeout=120)
    again.session_state["show_hidden_strategies"] = True
    again.query_params["owner"] = owner
    again.run()
    goto(again, "run")
    assert sorted(again.multiselect(key="run.strategies").value) == ["fake", "system_prompt"]
    assert again.number_input(key="run.n_test").value == 7


def test_an_unreadable_qa_file_is_refused_and_nothing_saved(app, home):
    docs = [(name, text.encode(), "text/plain") for name, text in DOCS.items()]
    app.text_input(key="up_name").set_value("Bad QA")
    app.file_uploader(key="docs").set_value(docs)
    app.file_uploader(key="qa").set_value([("qa.csv", b"wrong,header\n1,2\n", "text/csv")])
    app.button(key="FormSubmitter:upload_form-Save corpus").click().run()
    assert not app.exception
    assert "Refused" in texts(app.error) and "Nothing was saved" in texts(app.error)
    assert not app.success
    assert "Bad QA" not in " ".join(app.selectbox(key="corpus_pick").options)
    assert str(home) not in texts(app.error)


def test_a_binary_text_file_is_refused_not_saved(app, home):
    app.text_input(key="up_name").set_value("Binary")
    blob = bytes(range(256)) * 64
    app.file_uploader(key="docs").set_value([("blob.txt", blob, "text/plain")])
    app.button(key="FormSubmitter:upload_form-Save corpus").click().run()
    assert not app.exception
    assert "Refused" in texts(app.error) and not app.success
    assert "Binary" not in " ".join(app.selectbox(key="corpus_pick").options)
    assert str(home) not in texts(app.error) + texts(app.warning)


def test_estimate_then_run_in_the_worker(app, home):
    goto(app, "run")
    app.multiselect(key="run.strategies").set_value(["fake"]).run()
    app.number_input(key="run.n_test").set_value(5).run()
    app.number_input(key="run.prices.cpu_per_hour").set_value(3.6).run()
    app.button(key="estimate").click().run()
    assert not app.exception
    assert not app.error, texts(app.error)
    queue = JobQueue(home / "runs.sqlite")
    estimate = queue.list_jobs()[0]
    assert estimate.kind == "estimate"  # probed in the worker, not in the page
    assert queue.wait(estimate.id, timeout=120).status == "done"
    app.run()
    est = frame(app, "Prompt tokens per question")
    assert list(est["Strategy"]) == ["Fake (test)"]
    app.button(key="run").click().run()
    assert not app.exception
    job = next(j for j in queue.list_jobs() if j.kind == "run")
    assert app.button(key="run").disabled  # one run at a time per owner
    snap = queue.wait(job.id, timeout=120)
    assert snap.status == "done", snap
    run = RunStore(home / "runs.sqlite").get_run(snap.run_id)
    assert run.config["prices"]["cpu_per_hour"] == 3.6  # the page's price table was used
    assert run.meta.split.test == 5
    assert run.meta.estimate["strategies"][0]["strategy"] == "fake"  # kept with the run
    app.run()
    assert "Open the Compare page" in texts(app.success)
    assert not app.button(key="run").disabled
    goto(app, "history")
    assert "How close the estimate was" in texts(app.subheader)
    assert len(frame(app, "answer_ratio")) == 1


SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")  # a field or column name left raw


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def shown_labels(at: AppTest) -> list[str]:
    """Every label a reader sees on the page: widgets, expanders, tabs, headings, and the
    column headers of every table (its column_config label, else the frame's column name)."""
    out = []
    for node in _nodes(at._tree):
        if node.type == "dataframe":
            config = json.loads(node.proto.columns or "{}")
            for col in node.value.columns:
                out.append((config.get(str(col)) or {}).get("label") or str(col))
        elif node.type in ("title", "header", "subheader"):
            out.append(node.value)
        elif isinstance(getattr(node, "label", None), str):
            out.append(node.label)
    return out


@pytest.fixture
def varied_run(home, mini_corpus, tiny_models, tmp_path):
    """A finished run whose strategies score apart (the fake lookup against the tiny model),
    re-run on one re-drawn split: every table of the Compare page has rows."""
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "rag", "fake", "lora"],
        strategy_configs={"lora": {"epochs": 1, "batch_size": 4}},
        learning_curve=[0.5],
        stability={"resplits": 1},
        store_path=str(home / "runs.sqlite"),
        workdir=str(home / "work"),
    )
    return run_comparison(cfg, owner=OWNER)


def test_no_raw_field_or_column_name_on_any_page_or_tab(app, varied_run):
    leaks = {}
    goto(app, "run")
    app.multiselect(key="run.strategies").set_value(["system_prompt", "rag", "lora"]).run()
    pages = {"corpus": None, "run": None, "compare": None, "playground": None, "history": None}
    for page in pages:
        goto(app, page)
        found = [w for w in shown_labels(app) if SNAKE.search(w)]
        if found:
            leaks[page] = found
        if page == "compare":  # the tables that once showed raw column names are there
            frames = [list(n.value.columns) for n in _nodes(app._tree) if n.type == "dataframe"]
            print(frames)
            assert any("p_holm" in f for f in frames) and any("wins" in f for f in frames)
    assert not leaks, leaks


def test_compare_page_opens_with_a_decision_and_readable_tables(app, stored_run):
    goto(app, "compare")
    assert app.selectbox(key="cmp_run").value == stored_run
    quality = frame(app, "f1")
    assert set(quality["name"]) == {"system_prompt", "rag", "lora"}  # no learning-curve point
    cost = frame(app, "monthly")
    assert len(cost) == 3 and all(str(v).startswith("$") for v in cost["monthly"])
    assert "None" not in quality.to_string() + cost.to_string()
    assert "★" not in quality.to_string() + cost.to_string()
    headline = texts(app.success) + texts(app.warning)
    assert headline.startswith("Use **") or "No strategy reaches" in headline
    assert app.get("vega_lite_chart")  # charts are drawn
    app.number_input(key="cmp.threshold").set_value(0.99).run()
    assert not app.exception
    assert "No strategy" in texts(app.warning) or "none" in texts(app.warning).lower()
    app.radio(key="explorer_filter").set_value("All wrong").run()
    assert not app.exception
    assert "prob_best" in quality and quality["prob_best"].sum() == pytest.approx(1.0)
    app.number_input(key="cmp.threshold").set_value(0.0).run()
    app.radio(key="cmp.rank_by").set_value("per_right").run()
    assert not app.exception and "per right answer" in texts(app.success)
    app.selectbox(key="axis").set_value("money_per_right").run()
    assert not app.exception
    assert app.download_button(key="dl_yaml")
    app.button(key="build_html").click().run()
    assert not app.exception
    assert app.download_button(key="dl_html")


def test_compare_why_tab_shows_oracle_attribution_and_power(app, stored_run):
    goto(app, "compare")
    md = texts(app.markdown)
    assert "Reading each question's gold passage" in md  # the oracle ceiling
    assert "**rag**:" in md and ("reading failures" in md or "retrieval failures" in md)
    power = frame(app, "Detectable gap (MDD)")
    assert len(power) == 2 and power["n"].astype(int).gt(0).all()  # each against the best
    caps = texts(app.caption)  # the tiny model scores 0 everywhere: no spread to judge from
    assert any(
        words in caps
        for words in ("questions detect a gap of", "cannot detect any gap", "no spread to judge")
    )
    assert "contended" in frame(app, "monthly").columns  # the flag sits with the costs


def until_done(app: AppTest, home: Path, key: str, timeout: float = 180) -> dict:
    """Rerun the page, as its polling would, until the job in session state `key` finishes."""
    queue = JobQueue(home / "runs.sqlite")
    job_id = app.session_state[key]
    deadline = time.monotonic() + timeout
    while (job := queue.get(job_id)).status in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    app.run()
    assert not app.exception, app.exception
    return job


def test_playground_answers_with_every_strategy(app, stored_run, home):
    goto(app, "playground")
    app.button(key="pg_prepare").click().run()
    assert not app.exception
    job = until_done(app, home, "pg_job")
    assert job.kind == "playground" and job.status == "done", job  # done by the worker
    ready = ", ".join(display_name(n) for n in ("system_prompt", "rag", "lora"))
    assert f"Ready: {ready}." in texts(app.success)
    app.text_input(key="pg_question").set_value("Where do T cells mature?")
    app.button(key="FormSubmitter:pg_form-Ask every strategy").click().run()
    assert until_done(app, home, "pg_job").status == "done"
    md = texts(app.markdown)
    for name in ("system_prompt", "rag", "lora"):
        assert f"**{display_name(name)}**" in md
    assert "prompt tokens" in texts(app.caption)
    # an exported adapter (here: the run's own folder) answers next to them
    lora = next(
        r
        for r in RunStore(home / "runs.sqlite").get_run(stored_run).results
        if r.strategy == "lora"
    )
    app.text_input(key="pg_adapter_dir").set_value(lora.prepare.artifact_path).run()
    app.button(key="pg_load").click().run()
    assert not app.exception and not app.error, texts(app.error)
    assert "answers as 'adapter:" in texts(app.success)
    app.button(key="FormSubmitter:pg_form-Ask every strategy").click().run()
    assert until_done(app, home, "pg_job").status == "done"
    assert "**adapter: " in texts(app.markdown)
    app.text_input(key="pg_adapter_dir").set_value(str(home / "nowhere")).run()
    app.button(key="pg_load").click().run()
    assert not app.exception and app.error  # a clear message, the others still answer


def test_history_filters_compares_and_deletes(
    app, stored_run, home, mini_corpus, tiny_models, tmp_path
):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["fake"],
        store_path=str(home / "runs.sqlite"),
        workdir=str(home / "work"),
    )
    other = run_comparison(cfg, owner=OWNER)
    goto(app, "history")
    assert len(frame(app, "Run")) == 2
    assert all(w.startswith("local") for w in frame(app, "Run")["Where"])  # where each ran
    app.text_input(key="hist_text").set_value("lora").run()
    assert list(frame(app, "Run")["Run"]) == [stored_run]
    app.text_input(key="hist_text").set_value("").run()
    assert not app.exception
    app.selectbox(key="hist_pick").set_value(other).run()
    app.button(key="hist_delete").click().run()
    assert not app.exception
    assert [r.id for r in RunStore(home / "runs.sqlite").list_runs()] == [stored_run]
