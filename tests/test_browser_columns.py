"""In a real browser at 1400x1000: no table runs off the page.

A home is seeded through the library (a run of the model-free strategies beside the tiny
model's closed book, with general-knowledge questions; a failed run with a long error), the app
serves it with the test strategies offered, and History, the Compare page's quality, cost and
per-question tables and the Run page's estimate are read: each shown st.dataframe's grid must not
scroll sideways (its scroller's scrollWidth within its clientWidth) and must end inside the
viewport, and the columns people asked for (Took, Where, general knowledge, median latency, every
strategy's score) must be among its headers. Skipped without Chromium or Playwright (an error
under CI=true), like the other browser tests.
"""

from __future__ import annotations

import json

import pytest

from eval.views.format import display_name
from tests.browser_support import (
    VIEWPORT,
    browser_unavailable,
    choose_radio,
    choose_strategies,
    click_button,
    dataframe_rows,
    go_to_page,
    open_app,
    open_expander,
    open_tab,
    serve_app,
    set_number,
    visible_frames,
    wait_for_text,
    wait_until_idle,
)

pytestmark = pytest.mark.browser
OWNER = "browser-owner-token-02"  # the runs are this owner's; the browser opens their link
STRATEGIES = ["fake", "fake2", "system_prompt"]
# The grid's own scroller: Glide draws the cells on a canvas inside it.
SCROLLER = ".dvn-scroller"


@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory):
    """The app (test strategies offered, like `fake_app_url`) over a home holding a finished run
    of three strategies and a failed run; yields the owner's URL."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    from eval.config import RunConfig
    from eval.run.harness import run_comparison
    from eval.store.runs import RunStore

    tmp = tmp_path_factory.mktemp("columns")
    home, corpus = tmp / "home", tmp / "corpus"
    corpus.mkdir()
    # Each answer is the first four words of the one sentence naming its topic: `fake` (four
    # words) answers exactly, `fake2` (two) half, the tiny model not at all, so the scores
    # differ and the quality table has its standing column.
    facts = [(f"topic{i}", f"Fact{i} alpha{i} beta{i} gamma{i}") for i in range(12)]
    (corpus / "facts.txt").write_text(
        "\n".join(f"{answer} holds for {topic}." for topic, answer in facts), encoding="utf-8"
    )
    qa = tmp / "qa.jsonl"
    qa.write_text(
        "".join(
            json.dumps({"id": topic, "question": f"What holds for {topic}?", "answers": [answer]})
            + "\n"
            for topic, answer in facts
        ),
        encoding="utf-8",
    )
    cfg = RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": STRATEGIES,
            "strategy_configs": {"fake2": {"answer_words": 2}},  # scores apart from fake's
            "n_test": 6,
            "retention_questions": 4,  # the quality table's general-knowledge columns
            "bootstrap_resamples": 200,
            "store_path": str(home / "runs.sqlite"),
            "workdir": str(home / "work"),
            "models": {"generator": "tiny", "max_new_tokens": 8},
            "tuning": {"budget": "off"},
        }
    )
    run_comparison(cfg, owner=OWNER)
    store = RunStore(home / "runs.sqlite")
    failed = store.create_run(
        {"strategies": ["fake"], "workdir": str(home / "work")}, "failed on purpose", owner=OWNER
    )
    store.finish_run(failed, "failed", "RuntimeError: the corpus could not be read. " * 6)
    env = {"ADAPTLAB_TEST_STRATEGIES": "1"}
    for url in serve_app(home, tmp / "streamlit.log", env=env):
        yield f"{url}?owner={OWNER}"


def assert_tables_fit(page, where: str, expect: dict[int, list[str]] | None = None) -> None:
    """Every shown st.dataframe fits: no sideways scroll, right edge inside the viewport; the
    n-th shown one (`expect`) has those headers. Headers are read from the grid's accessible
    table, which holds the columns drawn, so a column off-screen would be missing there too."""
    shown = visible_frames(page)
    assert shown, f"{where}: no table shown"
    frames = page.locator('[data-testid="stDataFrame"]')
    for n, i in enumerate(shown):
        frame = frames.nth(i)
        scroll, client, right = frame.locator(SCROLLER).first.evaluate(
            "e => [e.scrollWidth, e.clientWidth, e.getBoundingClientRect().right]"
        )
        header = dataframe_rows(page, i)[0]
        assert scroll <= client, f"{where}, table {n} {header}: {scroll} px wide in {client}"
        assert right <= VIEWPORT["width"], f"{where}, table {n} ends at {right} px"
        for label in (expect or {}).get(n, []):
            assert label in header, f"{where}, table {n}: no {label!r} in {header}"


def test_no_table_runs_off_the_page(seeded_app, page):
    open_app(page, seeded_app, ready_text="Saved corpora", timeout=180)

    go_to_page(page, "History", ready_text="Show runs with nothing finished")
    page.get_by_text("Show runs with nothing finished", exact=True).click()  # the failed run too
    wait_until_idle(page)
    # The grid's accessible table holds the cells (hidden: the canvas shows them).
    page.locator('[data-testid="stDataFrame"] td', has_text="failed on purpose").wait_for(
        state="attached"
    )
    assert_tables_fit(page, "History", {0: ["Run", "Strategies", "Status", "Took", "Where"]})
    page.get_by_text("Show runs with nothing finished", exact=True).click()  # as it was
    wait_until_idle(page)

    go_to_page(page, "Compare", ready_text="Quality", timeout=120)
    set_number(page, "Minimum F1", 0)
    page.locator('[data-testid="stDataFrame"]:visible').nth(1).wait_for()  # quality, cost
    names = [display_name(n) for n in STRATEGIES]
    quality = ["Strategy", "F1", "F1 95% interval", "Standing", "General knowledge vs base model"]
    cost = ["Strategy", "Cost a month", "Median latency (s)", "CPU time (s)"]
    assert_tables_fit(page, "Decision", {0: quality, 1: cost})
    choose_radio(page, "cheapest per correct answer")  # the cost table adds the column it ranks
    per_right = [*cost, "Cost per right answer"]
    assert_tables_fit(page, "Decision per right answer", {1: per_right})

    open_tab(page, "Questions")
    wait_until_idle(page)
    assert_tables_fit(page, "Questions", {0: ["Question", "Gold answers", *names]})

    go_to_page(page, "Run", ready_text="Strategies")
    choose_strategies(page, [display_name("fake"), display_name("fake2")])
    open_expander(page, "What to run")
    set_number(page, "General-knowledge questions", 0)
    click_button(page, "Estimate")
    wait_for_text(page, "in all.", timeout=180)
    wait_until_idle(page)
    estimate = ["Strategy", "Prompt tokens", "Seconds per question", "In all"]
    assert_tables_fit(page, "Run estimate", {0: estimate})
    for name in names[:2]:  # the How sentence of each, written out in full under the table
        wait_for_text(page, f"{name}: ")
