"""End to end in a real browser: save the sample as the user's own corpus, run two strategies
with the real default models in the background worker, read the Compare page, ask the
Playground, look at History. A screenshot of every page is kept.

Skipped without Chromium or Playwright (an error under CI=true). The steps are the helpers in
tests/browser_support.py, which hold every selector.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from eval.views.format import display_name
from tests.browser_support import (
    ROOT,
    choose_option,
    choose_strategies,
    chosen_strategies,
    click_button,
    dataframe_rows,
    fill_text,
    go_to_page,
    number_value,
    open_app,
    open_expander,
    open_tab,
    save_screenshot,
    selected_option,
    set_number,
    upload_files,
    visible_frames,
    wait_for_any,
    wait_for_text,
    wait_until_idle,
)

SAMPLE = ROOT / "sample_data"
# A folder that also receives a screenshot of each page (docs/ for the README); unset: tmp only.
SCREENSHOTS = os.environ.get("ADAPTLAB_SCREENSHOTS", "")
# The first run loads (fresh machine: converts) the models, 2-5 min on 2 cores, and searches
# each strategy's settings under the default `quick` budget: each untrained arm validates on
# every training pair now, within the budget's 600 s cap per arm.
RUN_TIMEOUT_S = 2400


def option(name: str) -> str:
    """How the Run page lists strategy `name`."""
    return display_name(name)


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
    choose_strategies(page, [option(n) for n in strategies])
    open_expander(page, "What to run")
    set_number(page, "Test questions", 3)
    open_expander(page, "What to run")
    set_number(page, "General-knowledge questions", 4)
    click_button(page, "Estimate")  # probed in the worker; stored with the run launched next
    wait_for_any(page, ["in all."], fail=["The estimate failed"], timeout=RUN_TIMEOUT_S)
    click_button(page, "Run comparison")
    wait_for_any(
        page,
        ["Open the Compare page"],
        fail=[" failed", "Settings:"],
        timeout=RUN_TIMEOUT_S,
    )
    shoot(page, tmp_path, "page-run")

    go_to_page(page, "Compare", ready_text="Quality")
    page.locator('[data-testid="stDataFrame"]:visible').nth(1).wait_for()  # quality, cost
    # Before reading the tables: reading focuses a grid, which draws a focus ring.
    shoot(page, tmp_path, "page-compare")
    table = dataframe_rows(page, 0)
    assert "F1" in table[0] and "F1 95% interval" in table[0], table[0]
    # The registry name is a detail column (the table's column menu): rows by display name.
    assert sorted(r[0] for r in table[1:]) == sorted(display_name(s) for s in strategies), table
    open_tab(page, "Cost")
    # Every tab's charts are in the page; only the open tab's are visible.
    page.locator('[data-testid="stVegaLiteChart"]:visible').first.wait_for()
    wait_for_any(page, ["Break-even", "Total cost"], fail=[], timeout=30)
    shoot(page, tmp_path, "page-compare-cost")
    open_tab(page, "Fine-tuning")
    wait_for_text(page, "Domain gain and general ability")
    shoot(page, tmp_path, "page-compare-finetuning")
    open_tab(page, "Questions")
    wait_for_text(page, "Read one question in full")
    shoot(page, tmp_path, "page-compare-questions")

    go_to_page(page, "Playground", ready_text="Ask one question")
    click_button(page, "Prepare this run's strategies")
    wait_for_text(page, "Ask every strategy", timeout=120)
    fill_text(page, "Question", "What do B cells produce?", commit=False)
    click_button(page, "Ask every strategy")
    wait_for_text(page, "prompt tokens", timeout=120)
    wait_until_idle(page, timeout=180)  # the answers appear one by one, as each is ready
    shoot(page, tmp_path, "page-playground")

    go_to_page(page, "History", ready_text="How close the estimate was")
    shoot(page, tmp_path, "page-history")
    print(f"browser e2e: {time.monotonic() - started:.0f} s; screenshots in {tmp_path}")


@pytest.mark.browser
def test_reload_mid_run_page_changes_refusals_and_the_first_screen(fake_app_url, page, tmp_path):
    """With the model-free strategies: a binary .txt is refused, not saved; settings survive a
    page change; a reload mid-run still shows the run and cancels it; the first screen's
    numbers are the tables' numbers."""
    open_app(page, fake_app_url, ready_text="Saved corpora")

    blob = tmp_path / "blob.txt"
    blob.write_bytes(bytes(range(256)) * 64)
    open_tab(page, "Upload a new one")
    fill_text(page, "Name", "Binary", commit=False)
    upload_files(page, 0, [blob])
    click_button(page, "Save corpus")
    wait_for_text(page, "Nothing was saved", timeout=60)
    wait_until_idle(page)
    assert page.locator('[data-testid="stAlertContentSuccess"]').count() == 0  # no "Saved"
    assert page.get_by_text("it is now the selected corpus").count() == 0

    go_to_page(page, "Run", ready_text="Strategies")
    choose_strategies(page, [option("fake"), option("fake2")])
    open_expander(page, "What to run")
    set_number(page, "Test questions", 4)
    open_expander(page, "What to run")
    set_number(page, "General-knowledge questions", 0)
    open_expander(page, f"{display_name('fake')} settings")
    set_number(page, "Delay (s)", 90)  # each answered batch waits: long enough to look around
    go_to_page(page, "History", ready_text="History")
    go_to_page(page, "Run", ready_text="Strategies")
    assert sorted(chosen_strategies(page)) == sorted([option("fake"), option("fake2")])
    open_expander(page, "What to run")
    assert number_value(page, "Test questions") == "4"

    click_button(page, "Run comparison")
    wait_for_text(page, "Strategy 1 of 2", timeout=60)
    page.reload()  # the owner's token is in the URL: the same owner comes back
    wait_for_text(page, "Strategy 1 of 2", timeout=60)
    cancel = page.get_by_role("button", name="Cancel", exact=True).first
    cancel.wait_for(state="visible")
    shoot(page, tmp_path, "page-run-progress")
    assert page.get_by_role("button", name="Run comparison").is_disabled()

    # Meanwhile another tab of the same owner saves a corpus without Q/A pairs: the picker
    # shows it at once, and the Run page keeps the running run's bar and Cancel.
    token = parse_qs(urlsplit(page.url).query)["owner"][0]
    other = page.context.new_page()
    open_app(other, f"{fake_app_url}?owner={token}", ready_text="Saved corpora")
    sample_label = selected_option(other, "Corpus")
    docs = []
    for i in (1, 2):
        doc = tmp_path / f"note{i}.txt"
        doc.write_text(f"Note {i}. The clinic opens at {8 + i} in the morning on weekdays.\n")
        docs.append(doc)
    open_tab(other, "Upload a new one")
    fill_text(other, "Name", "No pairs yet", commit=False)
    upload_files(other, 0, docs)
    click_button(other, "Save corpus")
    wait_for_text(other, "it is now the selected corpus", timeout=60)
    wait_until_idle(other)
    assert other.get_by_role("textbox", name="Name").first.input_value() == ""  # form emptied
    open_tab(other, "Saved corpora")
    assert selected_option(other, "Corpus").startswith("No pairs yet (2 documents")
    page.reload()
    wait_for_text(page, "has no question/answer pairs yet", timeout=60)
    wait_for_any(page, ["Strategy 1 of 2", "Strategy 2 of 2"], fail=[], timeout=60)
    cancel = page.get_by_role("button", name="Cancel", exact=True).first
    cancel.wait_for(state="visible")
    cancel.click()
    wait_for_text(page, "Cancelling", timeout=30)  # the worker stops after the batch it is in
    choose_option(other, "Corpus", sample_label)  # back to the sample, which has pairs
    other.close()
    page.reload()
    wait_for_text(page, "was cancelled", timeout=180)

    open_expander(page, f"{display_name('fake')} settings")
    set_number(page, "Delay (s)", 0)
    click_button(page, "Run comparison")
    wait_for_any(page, ["Open the Compare page"], fail=["failed"], timeout=120)
    go_to_page(page, "Compare", ready_text="Quality")
    set_number(page, "Minimum F1", 0)
    page.locator('[data-testid="stDataFrame"]:visible').nth(1).wait_for()  # quality, cost
    headline = page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
    assert headline.startswith("Use "), headline
    chosen = next(n for n in ("fake2", "fake") if display_name(n) in headline)
    reasons = page.locator('[data-testid="stMarkdownContainer"] li').all_inner_texts()
    quality_line = next(r for r in reasons if r.startswith("Quality:"))
    monthly = headline.split("lowest cost, ")[1].split(" a month")[0]
    quality = dataframe_rows(page, 0)
    row = next(r for r in quality[1:] if r[0] == display_name(chosen))
    said = float(re.search(r"F1 ([0-9.]+) ", quality_line).group(1))
    assert said == round(float(row[quality[0].index("F1")]), 3), (quality_line, row)
    cost = dataframe_rows(page, visible_frames(page)[1])
    cost_row = next(r for r in cost[1:] if r[0] == display_name(chosen))
    assert cost_row[cost[0].index("Cost a month")] == monthly, (headline, cost_row)
