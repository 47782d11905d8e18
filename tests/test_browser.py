"""End to end in a real browser: upload the sample as the user's own files, run two strategies
with the real default models, read the results tables, keep a screenshot.

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
    choose_radio,
    choose_strategies,
    click_button,
    dataframe_rows,
    open_app,
    open_expander,
    save_screenshot,
    set_number,
    upload_files,
    wait_for_results,
    wait_for_text,
)

SAMPLE = ROOT / "sample_data"
# Where the screenshot of the finished page goes besides the pytest tmp dir ("" for nowhere).
SCREENSHOT = os.environ.get("ADAPTLAB_SCREENSHOT", str(ROOT / "docs" / "browser-e2e.png"))
RUN_TIMEOUT_S = 600  # first run loads (fresh machine: converts) the models: 2-5 min on 2 cores


@pytest.mark.browser
@pytest.mark.slow
def test_upload_run_and_compare_in_the_browser(app_url, page, tmp_path):
    started = time.monotonic()
    open_app(page, app_url, ready_text="Run comparison")

    choose_radio(page, "Upload my own")
    upload_files(page, 0, sorted((SAMPLE / "corpus").glob("*.md")))
    upload_files(page, 1, [SAMPLE / "qa.jsonl"])
    wait_for_text(page, "367 Q/A pairs", timeout=60)

    strategies = ["system_prompt", "few_shot"]
    choose_strategies(page, strategies)
    open_expander(page, "Run settings")
    set_number(page, "Test questions", 3)
    wait_for_text(page, "the run asks the first 3")

    click_button(page, "Run comparison")
    wait_for_results(page, tables=2, timeout=RUN_TIMEOUT_S)

    # Before reading the tables: reading focuses a grid, which draws a focus ring.
    shots = [tmp_path / "browser-e2e.png"] + ([Path(SCREENSHOT)] if SCREENSHOT else [])
    save_screenshot(page, *shots)

    quality = dataframe_rows(page, 0)
    header, rows = quality[0], quality[1:]
    assert header[0] == "Strategy" and "F1" in header
    assert sorted(r[0] for r in rows) == sorted(strategies)
    f1 = header.index("F1")
    assert all("[" in r[f1] for r in rows), rows  # a mean with its bootstrap interval
    cost = dataframe_rows(page, 1)
    assert sorted(r[0] for r in cost[1:]) == sorted(strategies)
    print(f"browser e2e: {time.monotonic() - started:.0f} s; screenshots: {shots}")
