"""Browser-test support: the app served by Streamlit, driven by Playwright in Debian's Chromium.

`playwright install` cannot download browsers here, so Playwright launches the system Chromium
(`apt-get install chromium`, which `.ci/run` does; ADAPTLAB_CHROMIUM=PATH picks another binary).
Without it the browser tests skip, except under CI=true, where a missing browser is an error: CI
must run them.

The page helpers (upload_files, choose_strategies, ...) hold every selector, so a change of the UI
means changing them, not the tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# No sandbox: CI runs as root, where Chromium refuses its sandbox. The rest stop Chromium's own
# traffic (updates, sync, field trials), so the only network use is the app on localhost.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_TIMEOUT_S = 120  # streamlit's first import of torch & co. on 2 cores is slow


def chromium_path() -> str | None:
    """The system Chromium: $ADAPTLAB_CHROMIUM if set, else the first on PATH, else None."""
    explicit = os.environ.get("ADAPTLAB_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def browser_unavailable() -> str | None:
    """Why browser tests cannot run here, or None. Under CI a missing piece is a failure."""
    missing = []
    if chromium_path() is None:
        where = os.environ.get("ADAPTLAB_CHROMIUM") or "on PATH"
        missing.append(f"no chromium {where} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package is not installed (requirements-dev.txt)")
    if not missing:
        return None
    reason = "browser test: " + "; ".join(missing)
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so this is an error, not a skip", pytrace=False)
    return reason


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def serve_app(
    home: Path,
    log_path: Path,
    app: str = "app.py",
    env: dict[str, str] | None = None,
    port: int | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[str]:
    """Run `streamlit run app` on `port` (default: a free one) with ADAPTLAB_HOME=home (and
    `env`, and more streamlit `args`); yields its URL.

    Waits for both the page and /_stcore/health; always kills the server's process group.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **os.environ,
        "ADAPTLAB_HOME": str(home),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        app,
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",  # other engineers edit the tree while tests run
        *args,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while not (_answers(url + "_stcore/health") and _answers(url)):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"streamlit did not answer on {url} in {SERVER_START_TIMEOUT_S} s:\n"
                        + log_path.read_text()[-3000:]
                    )
                time.sleep(0.5)
            yield url
        finally:
            _kill_group(proc)
            _stop_worker(home / "runs.sqlite")


def _stop_worker(store: Path) -> None:
    """The app started a job worker in its own session: it must not outlive the test."""
    from service.jobs import worker_pid

    pid = worker_pid(store)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --- Fixtures (conftest.py imports them) --------------------------------------------------------


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    """The app on a free port with a fresh ADAPTLAB_HOME; the server log is in the tmp dir."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("app")
    yield from serve_app(tmp / "home", tmp / "streamlit.log")


@pytest.fixture(scope="module")
def fake_app_url(tmp_path_factory) -> Iterator[str]:
    """The app with the model-free test strategies offered (fast runs whose length is set)."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("fake_app")
    env = {"ADAPTLAB_TEST_STRATEGIES": "1"}
    yield from serve_app(tmp / "home", tmp / "streamlit.log", env=env)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium under Playwright, headless, closed at the end of the session."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh page, 1400x1000, that may reach this machine only."""
    context = browser.new_context(viewport=VIEWPORT)
    context.route("**/*", only_localhost)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    try:
        yield pg
    finally:
        context.close()


def only_localhost(route) -> None:
    """Playwright route handler: let requests to this machine through, abort the rest."""
    from urllib.parse import urlsplit

    url = route.request.url
    if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1") or url.startswith(
        ("data:", "blob:")
    ):
        route.continue_()
    else:
        route.abort()


# --- Page helpers: every selector lives here ----------------------------------------------------


def wait_for_text(page, text: str, timeout: float = 30) -> None:
    """Wait until `text` is visible somewhere on the page (timeout in seconds)."""
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout * 1000)


def wait_until_idle(page, timeout: float = 60) -> None:
    """Wait until Streamlit has finished the current script run (the app root's state attribute)."""
    page.wait_for_timeout(300)  # let a rerun that was just triggered start
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        state="attached", timeout=timeout * 1000
    )


def choose_radio(page, option: str) -> None:
    page.get_by_text(option, exact=True).click()
    wait_until_idle(page)


def upload_files(page, index: int, paths: list[Path]) -> None:
    """Put files into the index-th file uploader of the page (0-based) and wait for them."""
    page.locator('input[type="file"]').nth(index).set_input_files([str(p) for p in paths])
    for p in paths:
        wait_for_text(page, p.name)
    wait_until_idle(page)


def _chosen(widget) -> list[str]:
    # Tags by CSS: the "Clear all" button and a hidden copy of the tags are aria-hidden at times
    # (hover state, overflow measuring), so role queries see them only now and then.
    return widget.locator("[data-tag]:visible").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    )


def choose_strategies(page, names: list[str], label: str = "Strategies") -> None:
    """Make the multiselect labelled `label` hold exactly `names` (in any order): remove each tag
    that is not wanted, then type each missing name and pick the exact option (Enter would take
    the first fuzzy match; "few_shot" also matches "few_shot+rag")."""
    wait_until_idle(page)
    box = page.get_by_role("combobox", name=label)
    widget = page.locator('[data-testid="stMultiSelect"]').filter(has=box)
    box.wait_for()
    for name in _chosen(widget):
        if name not in names:
            widget.locator(f'button[aria-label="Remove {name}"]:visible').first.click()
            wait_until_idle(page)
    for name in names:
        if name in _chosen(widget):
            continue
        box.click()
        box.fill(name)
        page.get_by_role("option", name=name, exact=True).click()
        wait_until_idle(page)
    page.keyboard.press("Escape")
    deadline = time.monotonic() + 10
    while sorted(_chosen(widget)) != sorted(names):
        if time.monotonic() > deadline:
            raise AssertionError(f"{label} holds {_chosen(widget)}, wanted {names}")
        page.wait_for_timeout(200)


def selected_option(page, label: str) -> str:
    """The option the selectbox labelled `label` shows as chosen (its combobox's value)."""
    return page.get_by_role("combobox", name=label, exact=True).first.input_value()


def choose_option(page, label: str, option: str) -> None:
    """Pick `option` (its full label) in the selectbox labelled `label`."""
    wait_until_idle(page)
    page.get_by_role("combobox", name=label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_until_idle(page)


def open_expander(page, title: str) -> None:
    """Open the expander titled `title` unless it is open (after the current script run: an
    expander opened while a rerun redraws the page can close again)."""
    wait_until_idle(page)
    summary = page.get_by_text(title, exact=True).first
    details = page.locator("details").filter(has=summary).first
    if details.get_attribute("open") is None:
        summary.click()
        wait_until_idle(page)


def set_number(page, label: str, value: int | float) -> None:
    """Type a value into the number input labelled `label` (prefix match) and commit it."""
    # By role, not get_by_label: the "Help for ..." icon next to the input matches the label too.
    box = page.get_by_role("spinbutton", name=label).first
    box.fill(str(value))
    box.press("Enter")
    wait_until_idle(page)


def click_button(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).first.click()


def go_to_page(page, title: str, ready_text: str, timeout: float = 60) -> None:
    """Open a page of the app from the sidebar navigation and wait for its script run."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    wait_for_text(page, ready_text, timeout)
    wait_until_idle(page, timeout)


def open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title, exact=True).click()
    page.wait_for_timeout(300)


def fill_text(page, label: str, value: str, commit: bool = True) -> None:
    """Type into the text input labelled `label`; `commit` presses Enter (not inside a form,
    where Enter submits the form)."""
    box = page.get_by_role("textbox", name=label).first
    box.fill(value)
    if commit:
        box.press("Enter")
        wait_until_idle(page)


def wait_for_any(page, texts: list[str], fail: list[str], timeout: float) -> str:
    """Wait until one of `texts` shows; raise at once with the page's words if one of `fail`
    shows first. Returns the text seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in fail:
            hit = page.get_by_text(t, exact=False)
            if hit.count():
                raise AssertionError(hit.first.inner_text())
        for t in texts:
            if page.get_by_text(t, exact=False).count():
                return t
        page.wait_for_timeout(1000)
    raise AssertionError(f"none of {texts} after {timeout:.0f} s")


def open_app(page, url: str, ready_text: str, timeout: float = 90) -> None:
    """Load the app and wait for its first script run to finish."""
    page.goto(url)
    wait_for_text(page, ready_text, timeout)
    wait_until_idle(page, timeout)


def wait_for_results(page, tables: int, timeout: float) -> None:
    """Wait until `tables` st.dataframes are shown and no progress bar is left; fail at once
    with the page's message if the run fails."""
    frames = page.locator('[data-testid="stDataFrame"]')
    progress = page.locator('[data-testid="stProgress"]')
    failed = page.get_by_text("The run failed", exact=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if failed.count():
            raise AssertionError(failed.first.inner_text())
        if frames.count() >= tables and not progress.count():
            wait_until_idle(page)
            return
        page.wait_for_timeout(1000)
    raise AssertionError(f"no results after {timeout:.0f} s")


def number_value(page, label: str) -> str:
    """The text in the number input labelled `label` (prefix match)."""
    return page.get_by_role("spinbutton", name=label).first.input_value()


def chosen_strategies(page, label: str = "Strategies") -> list[str]:
    """The option labels the multiselect labelled `label` holds."""
    box = page.get_by_role("combobox", name=label)
    return _chosen(page.locator('[data-testid="stMultiSelect"]').filter(has=box))


def visible_frames(page) -> list[int]:
    """Indices (among all st.dataframes) of the ones shown: tables in closed expanders and
    other tabs are in the page but hidden."""
    frames = page.locator('[data-testid="stDataFrame"]')
    return [i for i in range(frames.count()) if frames.nth(i).is_visible()]


def dataframe_rows(page, index: int) -> list[list[str]]:
    """The cells of the index-th st.dataframe, header row first.

    The grid draws on a canvas; focusing it makes glide-data-grid render its accessible table,
    whose cells hold the text.
    """
    frame = page.locator('[data-testid="stDataFrame"]').nth(index)
    frame.locator("canvas").first.focus()
    table = frame.locator("table").first
    table.wait_for(state="attached", timeout=10_000)
    return table.evaluate(
        "t => [...t.querySelectorAll('tr')].map("
        "r => [...r.querySelectorAll('th, td')].map(c => c.innerText.trim()))"
    )


def save_screenshot(page, *paths: Path) -> None:
    """Screenshot the whole app. Streamlit scrolls inside its main block, so full_page alone
    gives one viewport: the viewport grows to the content's height for the shot."""
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], body')]"
        ".map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.wait_for_timeout(500)  # let the layout settle at the new size
    try:
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(p), full_page=True)
    finally:
        page.set_viewport_size(size)
