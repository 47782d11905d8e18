"""A shared server in a real browser: sign-in through a real OpenID Connect provider (the
`oidc-provider-mock` package, started here), and sign-in through a trusted proxy's header.

Two accounts sign in and neither sees the other's corpora, runs or disk use; an anonymous
visitor sees only the sign-in; an `?owner=` link does nothing; signing out ends the session; a
proxy header is believed only from the proxy's address. Skipped without Chromium or Playwright
(an error under CI=true), like the other browser tests.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval.store.artifacts import run_dir
from eval.store.runs import RunStore, StrategyResult
from service.accounts import PROXY_ISSUER, account_owner
from service.corpus_library import CorpusLibrary
from service.jobs import JobQueue
from tests.browser_support import (
    VIEWPORT,
    browser_unavailable,
    dataframe_rows,
    free_port,
    go_to_page,
    only_localhost,
    serve_app,
    wait_for_text,
    wait_until_idle,
)

pytestmark = pytest.mark.browser
FILES = [("a.txt", b"Aspirin thins the blood."), ("b.txt", b"Insulin lowers blood sugar.")]


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A real OpenID Connect provider on localhost; yields its issuer URL."""
    if browser_unavailable():
        pytest.skip(browser_unavailable())
    # The provider and Streamlit's client speak plain HTTP on loopback in this test only.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def shared_app(provider, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The app in shared mode (`adaptlab app --shared` sets ADAPTLAB_MODE), signing in with
    the provider through `[auth]` in a secrets file; yields (URL, home)."""
    tmp = tmp_path_factory.mktemp("shared")
    port = free_port()
    secrets_file = tmp / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(16)}"\n'
        'client_id = "adaptlab"\n'
        'client_secret = "not-a-secret-in-a-test"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    home = tmp / "home"
    home.mkdir()
    (home / "server.yaml").write_text("admins: [alice@example.com]\n")  # mode: from the env
    env = {"ADAPTLAB_MODE": "shared", "AUTHLIB_INSECURE_TRANSPORT": "1"}
    args = ("--secrets.files", str(secrets_file))
    for url in serve_app(home, tmp / "streamlit.log", env=env, port=port, args=args):
        yield url, home


@pytest.fixture(scope="module")
def proxy_app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The app in shared mode behind a sign-in proxy on this machine; yields (URL, home)."""
    if browser_unavailable():
        pytest.skip(browser_unavailable())
    tmp = tmp_path_factory.mktemp("proxy")
    home = tmp / "home"
    home.mkdir()
    write_server_yaml(home, "127.0.0.1")
    yield from ((url, home) for url in serve_app(home, tmp / "streamlit.log"))


def write_server_yaml(home: Path, proxy: str) -> None:
    (home / "server.yaml").write_text(
        f"mode: shared\nsign_in: proxy\nproxy_addresses: [{proxy}]\n"
        "proxy_header: X-Forwarded-Email\n"
    )


@pytest.fixture
def new_page(browser):
    """Makes pages, each in a fresh browser context (its own cookies: one person) reaching
    localhost only; closes them after the test (the browser is the session's, shared)."""
    contexts = []

    def make():
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        context.route("**/*", only_localhost)
        page = context.new_page()
        page.set_default_timeout(60_000)
        return page

    yield make
    for context in contexts:
        context.close()


def seed(home: Path, owner: str, who: str) -> str:
    """A saved corpus `<who>-notes` and a finished run `<who>-run` with 2 KB of files, owned by
    `owner`; returns the run's id."""
    CorpusLibrary(home / "corpora").save(f"{who}-notes", FILES, owner=owner)
    store = RunStore(home / "runs.sqlite")
    run_id = store.create_run(
        {"strategies": ["fake"], "workdir": str(home / "work")}, f"{who}-run", owner=owner
    )
    store.save_strategy(run_id, StrategyResult("fake", "done"))
    store.finish_run(run_id, "done")
    run_dir(home / "work", run_id).mkdir(parents=True)
    (run_dir(home / "work", run_id) / "adapter.bin").write_bytes(b"0" * 2048)
    return run_id


def sees_only_the_sign_in(page) -> None:
    wait_for_text(page, "sign in", 90)
    wait_until_idle(page, 90)
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0  # no pages at all
    assert page.get_by_text("History", exact=True).count() == 0


def sign_in(page, url: str, subject: str) -> None:
    """Sign in on the app's page through the provider's form as `subject`."""
    page.goto(url)
    sees_only_the_sign_in(page)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator('input[name="sub"]').wait_for()  # the provider's own page
    page.locator('input[name="sub"]').fill(subject)
    page.get_by_role("button", name="Authorize", exact=True).click()
    wait_for_text(page, f"Signed in as {subject}", 90)
    wait_until_idle(page, 90)


def signed_in_cookie(page) -> bool:
    """Whether the browser holds Streamlit's identity cookie (`_streamlit_user...`)."""
    return any(c["name"].startswith("_streamlit_user") for c in page.context.cookies())


def corpus_options(page) -> list[str]:
    """The corpora the Corpus page offers (its picker opened)."""
    go_to_page(page, "Corpus", "Corpus")
    box = page.get_by_role("combobox", name="Corpus").first
    box.click()
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_inner_texts()
    box.press("Escape")
    page.get_by_role("listbox").wait_for(state="detached")
    wait_until_idle(page)
    return options


def history_runs_and_disk(page) -> tuple[set[str], str]:
    """The run ids History lists, and its disk caption."""
    go_to_page(page, "History", "History")
    rows = dataframe_rows(page, 0)
    column = rows[0].index("Run")
    caption = page.get_by_text("Disk:", exact=False).first.inner_text()
    return {r[column] for r in rows[1:]}, caption


def test_two_accounts_sign_in_and_see_only_their_own_work(shared_app, provider, new_page):
    url, home = shared_app
    alice_run = seed(home, account_owner(provider, "alice@example.com"), "alice")
    bob_owner = account_owner(provider, "bob@example.com")
    bob_run = seed(home, bob_owner, "bob")

    anonymous = new_page()
    anonymous.goto(url + "?owner=" + "x" * 22)  # a link names nobody on a shared server
    sees_only_the_sign_in(anonymous)

    alice = new_page()
    sign_in(alice, url, "alice@example.com")
    offered = corpus_options(alice)
    assert any(o.startswith("alice-notes") for o in offered)
    assert not [o for o in offered if "bob" in o]
    runs, disk = history_runs_and_disk(alice)
    assert runs == {alice_run}
    assert "2.0 KB for the files of these runs" in disk
    assert "4.0 KB for every run" in disk  # she is an admin (server.yaml): she sees the total

    bob = new_page()
    sign_in(bob, url, "bob@example.com")
    runs, disk = history_runs_and_disk(bob)
    assert runs == {bob_run}
    assert "2.0 KB" in disk and "every run" not in disk  # Alice's 2 KB are not his to see
    assert not [o for o in corpus_options(bob) if "alice" in o]

    assert bob.locator('[data-testid="stSidebarNav"]').get_by_text("Operator").count() == 0

    # Alice is an admin (server.yaml): her Operator page lists every account and the queue
    # with owners, and cancels Bob's job.
    job = JobQueue(home / "runs.sqlite").submit_task("qagen", {}, owner=bob_owner)
    go_to_page(alice, "Operator", "Accounts")
    accounts = {r[0] for r in dataframe_rows(alice, 1)[1:]}
    assert {"alice@example.com", "bob@example.com"} <= accounts
    queue_rows = dataframe_rows(alice, 0)
    assert [job, "bob@example.com"] == queue_rows[1][:2]
    alice.get_by_role("button", name="Cancel this job").click()
    wait_for_text(alice, f"Cancelled {job}")
    assert JobQueue(home / "runs.sqlite").get(job).status == "cancelled"

    # A link naming another workspace changes nothing: Alice stays Alice, the URL loses it.
    for name in (account_owner(provider, "bob@example.com"), "bob-token-000000000002"):
        alice.goto(url + "?owner=" + name)
        wait_for_text(alice, "Signed in as alice@example.com", 90)
        wait_until_idle(alice, 90)
        assert "owner=" not in alice.url
        assert history_runs_and_disk(alice)[0] == {alice_run}

    # Signing out ends the session: the next visit in that browser sees only the sign-in.
    assert signed_in_cookie(alice)
    alice.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    deadline = time.monotonic() + 90  # the logout is a redirect: wait for it, however slow
    while signed_in_cookie(alice) and time.monotonic() < deadline:
        alice.wait_for_timeout(500)
    assert not signed_in_cookie(alice)
    alice.goto(url)
    sees_only_the_sign_in(alice)
    alice.goto(url + "history_page")
    sees_only_the_sign_in(alice)


class HeaderProxy:
    """A stand-in for oauth2-proxy on this machine: forwards each TCP connection to the app and
    sets `header: value` on its first request (a WebSocket's handshake is one: that is where
    Streamlit reads headers), dropping any copy the client sent, as a real sign-in proxy does.
    Playwright's extra headers never reach a WebSocket, hence a proxy and not a browser option.
    """

    def __init__(self, target: str, header: str, value: str):
        host, port = target.split("//")[1].split("/")[0].split(":")
        self.target, self.header, self.value = (host, int(port)), header, value
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        top, rest = head.split(b"\r\n\r\n", 1)
        name = self.header.lower().encode() + b":"
        lines = [line for line in top.split(b"\r\n") if not line.lower().startswith(name)]
        lines.insert(1, f"{self.header}: {self.value}".encode())
        upstream = socket.create_connection(self.target)
        upstream.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    def close(self) -> None:
        self.listener.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def test_proxy_header_is_believed_only_from_the_proxy(proxy_app, new_page):
    url, home = proxy_app
    carol_run = seed(home, account_owner(PROXY_ISSUER, "carol@example.com"), "carol")
    seed(home, account_owner(PROXY_ISSUER, "dave@example.com"), "dave")
    proxy = HeaderProxy(url, "X-Forwarded-Email", "carol@example.com")
    try:
        carol = new_page()
        carol.goto(proxy.url)
        wait_for_text(carol, "Signed in as carol@example.com", 90)
        wait_until_idle(carol, 90)
        assert history_runs_and_disk(carol)[0] == {carol_run}

        nobody = new_page()  # straight to the app, no header: nobody
        nobody.goto(url)
        sees_only_the_sign_in(nobody)

        # The operator names another proxy: this machine's connections are no longer the
        # proxy's, so the same header is a forgery and is refused, not believed.
        write_server_yaml(home, "10.9.9.9")
        forger = new_page()
        forger.goto(proxy.url)
        wait_for_text(forger, "not the sign-in proxy", 90)
        wait_until_idle(forger, 90)
        assert forger.get_by_text("Signed in as", exact=False).count() == 0
        assert forger.locator('[data-testid="stSidebarNav"]').count() == 0
    finally:
        proxy.close()
