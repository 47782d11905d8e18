"""The bounded parser child on a shared server (issue 18): no secrets in its environment, one
pool of children per process, and Q/A files parsed and grouped there, not in the web process."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

import core.qa
from core.qa import QAFormatError, load_qa_bounded
from core.untrusted import sandbox
from core.untrusted.sandbox import FileParser, ParseLimits, ParseRefused
from eval.run.inputs import preview_split


def environment_of(path: Path) -> dict[str, str]:
    """Run in the child: what it sees of the environment."""
    return dict(os.environ)


def test_a_secret_in_the_servers_environment_is_not_visible_to_the_parser(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-the-server")
    monkeypatch.setenv("ADAPTLAB_SERVER_KEY", "another-secret")
    with FileParser() as parser:
        seen = parser.call(environment_of, __file__)
    assert "sk-secret-of-the-server" not in json.dumps(seen)
    assert "another-secret" not in json.dumps(seen)
    assert seen.get("PATH") == os.environ["PATH"]  # what a parser needs is still there


def test_one_pool_of_children_for_every_session(monkeypatch):
    monkeypatch.setattr(sandbox, "_SLOTS", threading.BoundedSemaphore(1))
    first = FileParser()
    first.call(environment_of, __file__)  # holds the only slot while its batch lasts
    second = FileParser(ParseLimits(wall_s=0.5))
    with pytest.raises(ParseRefused, match="busy"):
        second.call(environment_of, __file__)
    first.close()  # the slot comes back
    with FileParser() as third:
        assert "PATH" in third.call(environment_of, __file__)


def test_qa_files_are_parsed_in_the_child(tmp_path, monkeypatch):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{oops\n')
    with pytest.raises(QAFormatError, match="qa.jsonl line 2: invalid JSON"):
        load_qa_bounded(bad)
    good = tmp_path / "good.csv"
    good.write_text("question,answer\nWhat?,That\n")
    assert [p.question for p in load_qa_bounded(good)] == ["What?"]


def test_the_preview_groups_40000_copies_in_the_child_not_the_page(
    tmp_path, mini_corpus, monkeypatch
):
    corpus, _ = mini_corpus
    qa = tmp_path / "attack.jsonl"
    qa.write_text(
        "\n".join(json.dumps({"question": "alpha beta", "answer": f"x{i}"}) for i in range(40_000))
    )

    def never(*args, **kwargs):
        raise AssertionError("grouped in the web process")

    monkeypatch.setattr(core.qa, "near_duplicate_groups", never)  # this process only
    monkeypatch.setattr(core.qa, "load_qa", never)
    preview = preview_inputs_whitespace(corpus, qa)
    assert preview["problem"] is None, preview["problem"]
    assert preview["split"]["pairs"] == 40_000 and preview["split"]["test_split"] == 0


def preview_inputs_whitespace(corpus: Path, qa: Path) -> dict:
    from eval.config import RunConfig
    from eval.run.inputs import preview_inputs

    # The fake strategy loads no model: the page's preview without a tokenizer.
    return preview_inputs(RunConfig(corpus=str(corpus), qa=str(qa), strategies=["fake"]))


def test_preview_split_reports_a_bad_file_as_a_problem(tmp_path, mini_corpus):
    corpus, _ = mini_corpus
    qa = tmp_path / "qa.jsonl"
    qa.write_text("not json\n")
    assert "line 1" in preview_split(corpus, qa)["problem"]
