"""Untrusted text (questions, gold answers, corpus, file and run names) reaching st.markdown:
an image must not be fetched nor a link drawn by whoever views the page."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from service.corpus_library import CorpusLibrary
from service.jobs import worker_pid
from service.owner_state import OwnerStates
from ui.common import md

APP = str(Path(__file__).resolve().parents[1] / "app.py")
OWNER = "markup-owner-token-0001"
ATTACKS = [
    "![x](http://evil/img)",
    "[l](http://evil)",
    "<img src=http://evil/i.png>",
    "<http://evil>",
    "![x][r]\n\n[r]: http://evil/img",
    ":red[alarm] **$1 + $2**",
]


def rendered(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


@pytest.mark.parametrize("attack", ATTACKS)
def test_md_makes_images_and_links_inert(attack):
    active = rendered(attack)
    if "evil" in attack:  # the control: unescaped, it is an image, a link or raw HTML
        assert "<img" in active or "<a " in active or "<http" in active
    html = rendered(f"**{md(attack)}**  \nGold: {md(attack)}")
    assert "<img" not in html and "<a " not in html and "<http" not in html
    assert "$" not in md(attack).replace("\\$", "")  # no formula either


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    yield home
    pid = worker_pid(home / "runs.sqlite")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_a_corpus_name_on_the_run_page_draws_no_image_or_link(home):
    name = "![x](http://evil/img) [l](http://evil)"
    files = [("a.txt", b"Aspirin thins the blood.")]
    entry = CorpusLibrary(home / "corpora").save(name, files, owner=OWNER)
    OwnerStates(home / "runs.sqlite").update(OWNER, corpus_id=entry.id)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["owner"] = OWNER
    at.run()
    at.switch_page("ui/run_page.py")
    at.run()
    assert not at.exception, at.exception
    shown = [e.value for kind in ("caption", "warning", "markdown") for e in getattr(at, kind)]
    named = [t for t in shown if "evil" in t]
    assert named, shown  # the name is on the page...
    for text in named:  # ...as text
        html = rendered(text)
        assert "<img" not in html and "<a " not in html, text
