"""What watching a run costs the Streamlit server: its CPU while browser tabs show a run.

Starts `streamlit run app.py` on a free port with a fresh home, queues a long model-free run
(the `fake` strategy sleeping in each batch, so the worker itself costs nothing), opens the Run
page in headless Chromium (`--tabs` tabs, the run's progress bar showing) and reads the server
process's utime+stime from /proc/<pid>/stat over `--seconds`. Prints the share of one core.

    .venv/bin/python bench/bench_watch_cpu.py [--tabs 1] [--seconds 60] [--page Run]

Needs Chromium (`apt-get install chromium`) and playwright (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OWNER = "bench-owner-token-0001"


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(port: int) -> int:
    """The streamlit process serving `port` (found by its command line)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (d / "cmdline").read_bytes().split(b"\0")
            if b"streamlit" in b" ".join(argv) and str(port).encode() in argv:
                return int(d.name)
    raise RuntimeError(f"no streamlit process on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=1, help="0: the server alone")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--page", default="Run", help="Run or History")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from eval.config import RunConfig
    from service.jobs import JobQueue, ensure_worker
    from tests.browser_support import (
        CHROMIUM_ARGS,
        VIEWPORT,
        chromium_path,
        go_to_page,
        open_app,
        serve_app,
        wait_for_text,
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    home = tmp / "home"
    home.mkdir()
    store = home / "runs.sqlite"
    config = RunConfig(
        corpus=str(ROOT / "sample_data" / "corpus"),
        qa=str(ROOT / "sample_data" / "qa.jsonl"),
        strategies=["fake"],
        strategy_configs={"fake": {"delay_s": 600.0}},
        n_test=4,
        retention_questions=0,
        tuning={"budget": "off"},
        store_path=str(store),
        workdir=str(home / "work"),
    )
    served = serve_app(home, tmp / "streamlit.log", env={"ADAPTLAB_TEST_STRATEGIES": "1"})
    url = next(served)
    try:
        JobQueue(store).submit(config, owner=OWNER)
        ensure_worker(store)
        pid = server_pid(int(url.rstrip("/").rsplit(":", 1)[1]))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
            )
            pages = []
            for _ in range(args.tabs):
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(60_000)
                open_app(page, f"{url}?owner={OWNER}", ready_text="Saved corpora")
                go_to_page(page, args.page, ready_text=args.page)
                wait_for_text(page, "Strategy 1 of 1", timeout=120)
                pages.append(page)
            time.sleep(5)  # let the first page loads settle
            before, t0 = cpu_seconds(pid), time.monotonic()
            # Keep the event loop of Playwright turning (its pages answer the server's pushes).
            while time.monotonic() - t0 < args.seconds:
                if pages:
                    pages[0].wait_for_timeout(1000)
                else:
                    time.sleep(1)
            used, wall = cpu_seconds(pid) - before, time.monotonic() - t0
            still = pages[0].get_by_text("Strategy 1 of 1").count() if pages else 0
            browser.close()
        print(
            f"streamlit server CPU while {args.tabs} tab(s) watch a run on the {args.page} page: "
            f"{used:.2f} s in {wall:.0f} s = {100 * used / wall:.1f}% of one core "
            f"(progress bar shown at the end: {bool(still)})"
        )
    finally:
        served.close()


if __name__ == "__main__":
    main()
