"""In a real browser: the Compare page's Why tab draws the attribution chart and the power line.

A run of three strategies (one retrieves, one closed book beside the base model) is stored with
the real default models on a few sample questions, then the app serving that store is read:
the chart's bars (Vega writes each bar's fields into its aria-label), the oracle ceiling and
the power table. Skipped without Chromium or Playwright, as tests/test_browser.py is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser_support import (
    ROOT,
    browser_unavailable,
    dataframe_rows,
    go_to_page,
    open_app,
    open_tab,
    save_screenshot,
    serve_app,
    visible_frames,
    wait_for_text,
)

SCREENSHOTS = os.environ.get("ADAPTLAB_SCREENSHOTS", "")
OWNER = "browser-owner-token-01"  # the run is this owner's; the browser opens their link
STRATEGIES = ["system_prompt", "few_shot", "rag"]


@pytest.fixture(scope="module")
def served_run(tmp_path_factory):
    """(app URL, run id): a finished run in a fresh home, and the app serving it."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    from eval.config import RunConfig
    from eval.run.harness import run_comparison

    tmp = tmp_path_factory.mktemp("verdict")
    home = tmp / "home"
    cfg = RunConfig.from_dict(
        {
            "corpus": str(ROOT / "sample_data" / "corpus"),
            "qa": str(ROOT / "sample_data" / "qa.jsonl"),
            "strategies": STRATEGIES,
            "n_test": 8,
            "retention_questions": 0,
            "bootstrap_resamples": 500,
            "store_path": str(home / "runs.sqlite"),
            "workdir": str(home / "work"),
            "tuning": {"budget": "off"},
        }
    )
    run_id = run_comparison(cfg, owner=OWNER)
    for url in serve_app(home, tmp / "streamlit.log"):
        yield f"{url}?owner={OWNER}", run_id  # the private link of the run's owner


def chart_bars(page, title: str) -> list[dict[str, str]]:
    """The bars of the visible Vega-Lite chart whose title holds `title`, each as the fields
    Vega lists in its aria-label ('strategy: rag; label: ...; count: 3')."""
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        chart = charts.nth(i)
        if not chart.is_visible():
            continue
        labels = chart.evaluate(
            "e => [...e.querySelectorAll('[aria-label]')].map(x => x.getAttribute('aria-label'))"
        )
        if any(title in label for label in labels):
            return [
                dict(part.split(": ", 1) for part in label.split("; ") if ": " in part)
                for label in labels
                if label.startswith("Share of questions:")
            ]
    raise AssertionError(f"no visible chart titled {title!r}")


@pytest.mark.browser
@pytest.mark.slow
def test_why_tab_shows_attribution_and_power(served_run, page, tmp_path):
    url, run_id = served_run
    open_app(page, url, ready_text="Saved corpora", timeout=180)
    go_to_page(page, "Compare", ready_text="Quality", timeout=180)
    open_tab(page, "Why")
    wait_for_text(page, "Oracle reading: the generator's ceiling")
    wait_for_text(page, "on 8 questions: the most any retrieval strategy can reach")
    page.locator('[data-testid="stVegaLiteChart"]:visible').first.wait_for()

    bars = chart_bars(page, "Why answers were right or wrong")
    by_strategy: dict[str, dict[str, int]] = {}
    for bar in bars:
        by_strategy.setdefault(bar["strategy"], {})[bar["label"]] = int(bar["count"])
    assert set(by_strategy) == {"few_shot", "rag"}, by_strategy  # the base has no cells
    assert sum(by_strategy["rag"].values()) == 8
    assert "passage retrieved, wrong (reading failure)" in by_strategy["rag"]
    assert "known to the base model, wrong (regression)" in by_strategy["few_shot"]
    wait_for_text(page, "rag:")  # the advice sentence under the chart

    shown = visible_frames(page)
    assert len(shown) == 1, shown  # the Why tab's only table: the power of each comparison
    rows = dataframe_rows(page, shown[0])
    header = rows[0]
    assert "Detectable gap (MDD)" in header, header
    assert len(rows) == len(STRATEGIES)  # header + each strategy against the best
    # power for the test the comparison runs: 8 questions may detect no gap at all
    caption = page.get_by_text(
        re.compile(r"8 questions (detect a gap of|cannot detect any gap)|no spread to judge")
    )
    assert caption.count() >= 1
    paths = [tmp_path / "page-compare-why.png"]
    if SCREENSHOTS:
        paths.append(Path(SCREENSHOTS) / "page-compare-why.png")
    save_screenshot(page, *paths)
