"""End to end in a real browser: save the sample as the user's own corpus, run two strategies
with the real default models in the background worker, read the Compare page, ask the
Playground, look at History. A screenshot of every page is kept.

Skipped without Chromium or Playwright (an error under CI=true). The steps are the helpers in
tests/browser_support.py, which hold every selector.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.browser_support import (
    ROOT,
    choose_strategies,
    click_button,
    dataframe_rows,
    fill_text,
    go_to_page,
    open_app,
    open_expander,
    open_tab,
    save_screenshot,
    set_number,
    upload_files,
    wait_for_any,
    wait_for_text,
    wait_until_idle,
)

SAMPLE = ROOT / "sample_data"
# A folder that also receives a screenshot of each page (docs/ for the README); unset: tmp only.
SCREENSHOTS = os.environ.get("ADAPTLAB_SCREENSHOTS", "")
RUN_TIMEOUT_S = 600  # first run loads (fresh machine: converts) the models: 2-5 min on 2 cores


def shoot(page, tmp_path: Path, name: str) -> None:
    paths = [tmp_path / f"{name}.png"] + (
        [Path(SCREENSHOTS) / f"{name}.png"] if SCREENSHOTS else []
    )
    save_screenshot(page, *paths)


@pytest.mark.browser
@pytest.mark.slow
def test_upload_run_and_compare_in_the_browser(app_url, page, tmp_path):
    started = time.monotonic()
    open_app(page, app_url, ready_text="Saved corpora")

    open_tab(page, "Upload a new one")
    fill_text(page, "Name", "Health articles", commit=False)
    upload_files(page, 0, sorted((SAMPLE / "corpus").glob("*.md")))
    upload_files(page, 1, [SAMPLE / "qa.jsonl"])
    click_button(page, "Save corpus")
    wait_for_text(page, "it is now the selected corpus", timeout=60)
    wait_for_text(page, "Q/A pairs:", timeout=60)
    shoot(page, tmp_path, "page-corpus")

    go_to_page(page, "Run", ready_text="Strategies")
    wait_for_text(page, "Health articles")
    strategies = ["system_prompt", "few_shot"]
    choose_strategies(page, strategies)
    open_expander(page, "Run settings")
    set_number(page, "Test questions", 3)
    set_number(page, "General-knowledge questions", 0)
    click_button(page, "Run comparison")
    wait_for_any(
        page,
        ["Open the Compare page"],
        fail=[": failed", "Settings:"],
        timeout=RUN_TIMEOUT_S,
    )
    shoot(page, tmp_path, "page-run")

    go_to_page(page, "Compare", ready_text="Side by side")
    wait_for_text(page, "Recommendation")
    # Before reading the tables: reading focuses a grid, which draws a focus ring.
    shoot(page, tmp_path, "page-compare")
    table = dataframe_rows(page, 0)
    assert "F1" in table[0], table[0]
    assert sorted(r[0] for r in table[1:]) == sorted(strategies), table
    f1 = table[0].index("F1")
    assert all("[" in r[f1] for r in table[1:]), table  # a mean with its bootstrap interval
    open_tab(page, "Cost")
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(state="visible")
    wait_for_text(page, "Break-even")
    shoot(page, tmp_path, "page-compare-cost")

    go_to_page(page, "Playground", ready_text="Ask one question")
    click_button(page, "Prepare this run's strategies")
    wait_for_text(page, "Ask every strategy", timeout=120)
    fill_text(page, "Question", "What do B cells produce?", commit=False)
    click_button(page, "Ask every strategy")
    wait_for_text(page, "prompt tokens", timeout=120)
    wait_until_idle(page)
    shoot(page, tmp_path, "page-playground")

    go_to_page(page, "History", ready_text="Compare two runs")
    shoot(page, tmp_path, "page-history")
    print(f"browser e2e: {time.monotonic() - started:.0f} s; screenshots in {tmp_path}")
