"""Format and style tasks on a corpus of one's own: format pairs made from its Q/A pairs, schema
and style files uploaded through the browser, checked and kept in the owner's folder."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import jsonschema
import pytest
from streamlit.testing.v1 import AppTest

from core.bundled import SAMPLE_DIR
from core.format_pairs import build_format_task, format_record, format_schema, quote_for
from core.tasks import MAX_TASK_FILE_BYTES
from core.types import QAPair
from core.untrusted.allowlist import LocationRefused, check_run_settings
from eval.config import RunConfig
from service.corpus_library import CorpusLibrary
from service.jobs import JobQueue
from service.owner_state import OwnerStates
from service.owners import upload_folder
from service.quota import task_files_dir
from service.uploads import Upload, save_task_file
from tests.conftest import DOCS, QA
from tests.test_app import APP, OWNER, goto, texts

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
DOCUMENTS = {
    "immune.md": "The thymus is where T cells mature. Fever raises the body temperature.",
    "notes/pharmacy.txt": "Pharmacy is a science. The word comes from pharma.",
}


# --- the builder -----------------------------------------------------------------------------


def test_quote_is_the_sentence_holding_the_answer_passage_first():
    text = DOCUMENTS["immune.md"]
    assert quote_for("T cells", [text]) == "The thymus is where T cells mature."
    assert quote_for("body TEMPERATURE", [None, text]) == "Fever raises the body temperature."
    assert quote_for("fever", ["Fever, said the passage.", text]) == "Fever, said the passage."
    assert quote_for("antibodies", [text]) is None
    assert quote_for("  ", [text]) is None


def test_format_records_and_schema_on_known_pairs():
    pairs = [
        QAPair("a", "Where do T cells mature?", ("the thymus", "thymus"), "immune.md"),
        QAPair("b", "Where from?", ("pharma",), "notes/pharmacy.txt", group="g"),
        QAPair("c", "What rises?", ("temperature",), None, "It said the temperature rises."),
    ]
    made = build_format_task(pairs, DOCUMENTS)
    records, schema = made.records, made.schema
    assert records[0] == {
        "id": "a",
        "question": "Where do T cells mature?",
        "answers": [
            {
                "answer": "the thymus",
                "source": "immune",
                "quote": "The thymus is where T cells mature.",
            },
            {
                "answer": "thymus",
                "source": "immune",
                "quote": "The thymus is where T cells mature.",
            },
        ],
        "source": "immune.md",
    }
    assert records[1]["answers"] == [
        {"answer": "pharma", "source": "pharmacy", "quote": "The word comes from pharma."}
    ]
    assert records[1]["group"] == "g"
    # No source named: the passage gives the quote, and `source` is left out of `required`.
    assert records[2]["answers"] == [
        {"answer": "temperature", "quote": "It said the temperature rises."}
    ]
    assert records[2]["passage"] == "It said the temperature rises."
    assert (made.answers, made.quoted) == (4, 4)
    assert schema["required"] == ["answer", "quote"]
    assert schema["properties"]["source"] == {"type": "string", "enum": ["immune", "pharmacy"]}
    jsonschema.validators.validator_for(schema).check_schema(schema)
    for answer in (a for r in records for a in r["answers"]):
        jsonschema.validate(answer, schema)


def test_quote_left_out_of_required_when_an_answer_has_none():
    pair = QAPair("a", "q?", ("antibodies",), "immune.md")
    record = format_record(pair, {"immune": DOCUMENTS["immune.md"]})
    assert record["answers"] == [{"answer": "antibodies", "source": "immune"}]
    assert format_schema([record])["required"] == ["answer", "source"]
    # The sample's records: no quotes, the keys in the order its file has them.
    sample = format_record(pair, quotes=False)
    assert list(sample) == ["id", "question", "answers", "source"]


def test_the_sample_format_file_is_what_the_shared_builder_writes():
    from core.qa import load_qa

    lines = (SAMPLE_DIR / "format" / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    made = [format_record(p, quotes=False) for p in load_qa(SAMPLE_DIR / "qa.jsonl")]
    assert [json.dumps(r, ensure_ascii=False) for r in made] == lines


def test_the_library_keeps_format_pairs_beside_the_pairs_and_not_for_the_sample(tmp_path):
    from core.access import AccessDenied

    library = CorpusLibrary(tmp_path)
    entry = library.save("Mini", [("a.txt", b"The thymus is where T cells mature.")], owner="o")
    assert entry.format_qa is None and entry.format_schema is None
    made = build_format_task([QAPair("q1", "Where?", ("thymus",), "a.txt")], {"a.txt": "x"})
    kept = library.set_format_task(entry.id, made.records, made.schema)
    assert Path(kept.format_qa).name == "qa_format.jsonl" and kept.qa_path is None
    assert json.loads(Path(kept.format_schema).read_text()) == made.schema
    with pytest.raises(AccessDenied):
        library.set_format_task(library.sample().id, made.records, made.schema)


# --- uploads ---------------------------------------------------------------------------------


def test_an_uploaded_schema_is_checked_and_kept_by_its_hash(tmp_path):
    data = json.dumps(SCHEMA).encode()
    saved = save_task_file(("../my schema.json", data), "format", tmp_path)
    assert saved.parent == tmp_path.resolve() and saved.name.startswith("format-")
    assert saved.read_bytes() == data
    again = save_task_file(("other.json", data), "format", tmp_path)
    assert again == saved and [p.name for p in tmp_path.iterdir()] == [saved.name]


@pytest.mark.parametrize(
    "name, data, kind, reason",
    [
        ("bad.json", b'{"type": 12}', "format", "bad.json: not a valid JSON Schema"),
        ("broken.json", b'{\n "type": ', "format", "broken.json line 2: invalid JSON"),
        ("rules.yaml", b"max_words: 5\ntone: warm\n", "style", "rules.yaml line 2: unknown rule"),
        ("rules.yaml", b"max_words: many\n", "style", "max_words must be a whole number"),
        ("schema.yaml", b"{}", "format", "must be a .json file"),
    ],
)
def test_a_bad_task_file_is_refused_naming_it_and_nothing_is_kept(
    tmp_path, name, data, kind, reason
):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        save_task_file((name, data), kind, tmp_path)
    assert not any(tmp_path.rglob("*.*"))


def test_an_oversized_task_file_is_refused_before_it_is_read(tmp_path):
    def read() -> bytes:
        raise AssertionError("read before its size was checked")

    big = Upload("huge.json", MAX_TASK_FILE_BYTES + 1, read)
    with pytest.raises(ValueError, match="huge.json: file too large"):
        save_task_file(big, "format", tmp_path)
    assert not any(tmp_path.iterdir())


def test_run_settings_take_task_files_only_from_the_sample_or_the_users_folders(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "s.json").write_text("{}")
    (tmp_path / "other.json").write_text("{}")

    def settings(**files: str) -> dict:
        return {**RunConfig().to_dict(), **files}

    check_run_settings(settings(style=str(SAMPLE_DIR / "style" / "style.yaml")), tmp_path)
    mine_ok = settings(schema=str(mine / "s.json"))
    check_run_settings(mine_ok, tmp_path, roots=[mine])
    assert mine_ok["schema"] == str((mine / "s.json").resolve())
    with pytest.raises(LocationRefused, match="schema file"):
        check_run_settings(settings(schema=str(tmp_path / "other.json")), tmp_path, roots=[mine])
    with pytest.raises(LocationRefused, match="style file"):
        check_run_settings(settings(style="/etc/passwd"), tmp_path, roots=[mine])


# --- the pages -------------------------------------------------------------------------------


@pytest.fixture
def own_corpus(tmp_path, monkeypatch):
    """The app's home with OWNER's saved mini corpus (documents and Q/A pairs naming their
    sources) selected, and no worker started by the Run page."""
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    monkeypatch.setattr("service.jobs.ensure_worker", lambda *a, **k: False)
    sources = {"q1": "immune.md", "q2": "immune.md", "q5": "pharmacy.txt"}
    rows = [
        {"id": i, "question": q, "answers": a, **({"source": sources[i]} if i in sources else {})}
        for i, q, a in QA
    ]
    qa = ("qa.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    docs = [(name, text.encode()) for name, text in DOCS.items()]
    entry = CorpusLibrary(home / "corpora").save("Mini", docs, qa, owner=OWNER)
    OwnerStates(home / "runs.sqlite").update(OWNER, corpus_id=entry.id)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["owner"] = OWNER
    at.session_state["show_hidden_strategies"] = True
    at.run()
    assert not at.exception, at.exception
    return at, home, entry.id


def run_page_task(at: AppTest, kind: str) -> AppTest:
    goto(at, "run")
    at.multiselect(key="run.strategies").set_value(["fake"]).run()
    at.selectbox(key="run.task").set_value(kind).run()
    assert not at.exception, at.exception
    return at


def launched_config(at: AppTest, home: Path) -> dict:
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    (job,) = JobQueue(home / "runs.sqlite").list_jobs(owner=OWNER)
    with contextlib.closing(sqlite3.connect(home / "runs.sqlite")) as db:
        (stored,) = db.execute("SELECT config_json FROM jobs WHERE id=?", (job.id,)).fetchone()
    return json.loads(stored)


def make_format_pairs(at: AppTest) -> AppTest:
    goto(at, "corpus")
    at.button(key="make_format").click().run()
    assert not at.exception, at.exception
    return at


def test_own_corpus_format_task_takes_an_uploaded_schema(own_corpus):
    at, home, corpus_id = own_corpus
    run_page_task(at, "format")
    assert "Upload the JSON Schema" in texts(at.error)
    assert at.button(key="run").disabled
    make_format_pairs(at)
    run_page_task(at, "format")
    # Gold answers are JSON objects {answer, source, quote}: this schema asks less of them.
    schema = {"type": "object", "required": ["answer"]}
    upload = [("answers.json", json.dumps(schema).encode(), "application/json")]
    at.file_uploader(key="task_upload_format").set_value(upload)
    at.run()
    assert not at.exception and not at.error, texts(at.error)
    assert "answers.json" in texts(at.caption)
    config = launched_config(at, home)
    saved = Path(config["schema"])
    assert saved.parent == task_files_dir(home, OWNER).resolve()
    assert upload_folder(home, OWNER).resolve() in saved.parents
    assert json.loads(saved.read_text()) == schema
    assert Path(config["qa"]).name == "qa_format.jsonl"
    assert config["task"] == "format" and config["verdict"]["right_metric"] == "content_f1"


@pytest.mark.parametrize(
    "kind, name, data, reason",
    [
        ("format", "bad.json", b'{"type": "thing"}', "bad.json: not a valid JSON Schema"),
        ("format", "big.json", b" " * (MAX_TASK_FILE_BYTES + 1), "big.json: file too large"),
        ("style", "house.yaml", b"max_words: 9\nmood: calm\n", "house.yaml line 2: unknown rule"),
    ],
)
def test_own_corpus_bad_task_files_are_refused_naming_file_and_reason(
    own_corpus, kind, name, data, reason
):
    at, home, _ = own_corpus
    run_page_task(at, kind)
    at.file_uploader(key=f"task_upload_{kind}").set_value([(name, data, "x")])
    at.run()
    assert not at.exception, at.exception
    shown = texts(at.error)
    assert reason in shown and "Nothing was saved" in shown
    assert at.button(key="run").disabled
    folder = task_files_dir(home, OWNER)
    assert not folder.exists() or not any(folder.iterdir())


def test_gold_answers_that_break_an_uploaded_schema_are_refused_before_the_run(own_corpus):
    at, _, _ = own_corpus
    run_page_task(at, "format")  # text gold answers under a JSON Schema: not JSON objects
    plain = json.dumps({"type": "object"}).encode()
    at.file_uploader(key="task_upload_format").set_value([("plain.json", plain, "x")])
    at.run()
    shown = texts(at.error)
    assert "qa.jsonl line 1: the gold answer is not a JSON object" in shown, shown
    make_format_pairs(at)
    run_page_task(at, "format")
    strict = json.dumps({"type": "object", "required": ["page"]}).encode()
    at.file_uploader(key="task_upload_format").set_value([("strict.json", strict, "x")])
    at.run()
    shown = texts(at.error)
    assert "qa_format.jsonl line 1: the gold answer does not validate" in shown, shown
    assert "'page' is a required property" in shown
    assert at.button(key="run").disabled


def test_own_corpus_style_task_and_pattern_format(own_corpus):
    at, home, _ = own_corpus
    run_page_task(at, "style")
    rules = b"max_words: 12\nforbidden: [I think]\n"
    at.file_uploader(key="task_upload_style").set_value([("house.yml", rules, "x")])
    at.run()
    assert not at.exception and not at.error, texts(at.error)
    at.selectbox(key="run.task").set_value("format").run()
    at.radio(key="run.format_by").set_value("pattern").run()
    at.text_input(key="run.pattern").set_value("([").run()
    assert "not a regular expression" in texts(at.error)
    at.text_input(key="run.pattern").set_value(r"[\w ,.-]+").run()
    assert not at.error, texts(at.error)
    config = launched_config(at, home)
    assert config["pattern"] == r"[\w ,.-]+" and config["task"] == "format"


def test_corpus_page_makes_format_pairs_the_run_page_picks(own_corpus):
    at, home, corpus_id = own_corpus
    at.button(key="make_format").click().run()
    assert not at.exception, at.exception
    assert "Wrote 10 format pairs" in texts(at.success)
    entry = CorpusLibrary(home / "corpora").get(corpus_id)
    schema = json.loads(Path(entry.format_schema).read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    rows = [json.loads(line) for line in Path(entry.format_qa).read_text().splitlines()]
    assert len(rows) == 10
    for answer in (a for r in rows for a in r["answers"]):
        jsonschema.validate(answer, schema)
    by_id = {r["id"]: r for r in rows}
    assert by_id["q1"]["answers"][0] == {
        "answer": "antibodies",
        "source": "immune",
        "quote": "B cells produce antibodies that bind antigens.",
    }

    run_page_task(at, "format")
    assert at.selectbox(key="run.format_qa").value == "format"
    assert "made with the format pairs" in texts(at.caption)
    assert not at.error, texts(at.error)
    config = launched_config(at, home)
    assert Path(config["qa"]) == Path(entry.format_qa).resolve()
    assert Path(config["schema"]) == Path(entry.format_schema).resolve()
    assert RunConfig.from_dict(config).task == "format"
