"""Personal and shared mode, accounts, the trusted proxy, admins, and the operator's files read
one way (file and line in every error). The browser side is tests/test_shared_browser.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.access import Access
from core.config import ConfigError
from service.accounts import (
    PROXY_ISSUER,
    Account,
    AccountBook,
    ServerSettings,
    account_owner,
    from_oidc,
    from_proxy,
    is_admin,
    server_settings,
)
from service.limits import load_worker_limits
from service.operator import OperatorFileError, load_operator
from service.owners import new_owner, owner_folder, upload_folder, upload_roots, valid_owner
from service.uploads import UploadLimits

APP = str(Path(__file__).resolve().parents[1] / "app.py")
ISSUER = "https://id.example.com"


def proxy(*addresses: str) -> ServerSettings:
    return ServerSettings(mode="shared", sign_in="proxy", proxy_addresses=list(addresses))


def test_owner_is_the_subject_and_issuer_not_the_email():
    alice = from_oidc({"is_logged_in": True, "iss": ISSUER, "sub": "123", "email": "a@x.org"})
    assert alice.account.owner == account_owner(ISSUER, "123")
    renamed = from_oidc({"is_logged_in": True, "iss": ISSUER, "sub": "123", "email": "b@x.org"})
    assert renamed.account.owner == alice.account.owner  # a new e-mail, the same workspace
    other_idp = from_oidc({"is_logged_in": True, "iss": "https://evil.example", "sub": "123"})
    assert other_idp.account.owner != alice.account.owner  # equal subjects, two providers
    assert from_oidc({"is_logged_in": False}).account is None
    assert from_oidc(None).account is None
    assert "subject" in from_oidc({"is_logged_in": True, "email": "a@x.org"}).refused


def test_proxy_header_is_believed_only_from_the_proxys_address():
    header = {"x-forwarded-email": "carol@x.org"}  # any case: headers are case-blind
    on_this_machine = proxy("127.0.0.1")
    assert from_proxy(on_this_machine, header, None).account.subject == "carol@x.org"  # loopback
    forged = from_proxy(on_this_machine, header, "10.0.0.7")
    assert forged.account is None and "not the sign-in proxy" in forged.refused
    lan = proxy("10.0.0.0/24", "fd00::1")
    assert from_proxy(lan, header, "10.0.0.7").account.issuer == PROXY_ISSUER
    assert from_proxy(lan, header, "fd00::1").account is not None
    assert from_proxy(lan, header, "10.0.1.7").refused
    assert from_proxy(lan, header, None).refused  # loopback is not the proxy here
    assert from_proxy(lan, {}, "10.0.0.7") == from_proxy(lan, {"X-Forwarded-Email": " "}, None)
    assert from_proxy(lan, {}, "10.0.0.7").account is None  # no header: not signed in


def test_server_settings_from_file_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ADAPTLAB_MODE", raising=False)
    assert not server_settings(tmp_path).shared  # personal by default
    monkeypatch.setenv("ADAPTLAB_MODE", "shared")  # what `adaptlab app --shared` sets
    assert server_settings(tmp_path).shared
    monkeypatch.delenv("ADAPTLAB_MODE")
    (tmp_path / "server.yaml").write_text("mode: shared\nadmins: [boss@x.org]\n")
    assert server_settings(tmp_path).shared
    (tmp_path / "server.yaml").write_text("mode: shared\nsign_in: proxy\n")
    with pytest.raises(ConfigError, match="server.yaml.*proxy_addresses"):
        server_settings(tmp_path)
    (tmp_path / "server.yaml").write_text("mode: shared\n\nproxy_addresses: [my-proxy]\n")
    with pytest.raises(ConfigError, match=r"server.yaml, line 3: .*my-proxy"):
        server_settings(tmp_path)
    (tmp_path / "server.yaml").write_text("mode: open\n")
    with pytest.raises(ConfigError, match="server.yaml"):
        server_settings(tmp_path)


def test_admins_by_verified_email_or_subject():
    settings = ServerSettings(admins=["Boss@X.org", "sub-42"])
    boss = from_oidc({"is_logged_in": True, "iss": ISSUER, "sub": "9", "email": "boss@x.org"})
    assert is_admin(settings, boss.account)
    unverified = from_oidc(
        {
            "is_logged_in": True,
            "iss": ISSUER,
            "sub": "9",
            "email": "boss@x.org",
            "email_verified": False,
        }
    )
    assert not is_admin(settings, unverified.account)  # anyone can type an e-mail somewhere
    assert is_admin(settings, Account(ISSUER, "sub-42", "someone"))
    assert not is_admin(settings, Account(ISSUER, "sub-43", "someone"))
    assert not is_admin(settings, None)


def test_account_book_labels_owners(tmp_path):
    book = AccountBook(tmp_path / "runs.sqlite")
    alice = Account(ISSUER, "1", "alice@x.org")
    book.seen(alice)
    book.seen(Account(ISSUER, "1", "alice@new.org"))
    assert book.labels() == {alice.owner: "alice@new.org"}


def test_hashed_names_are_never_tokens(tmp_path):
    """The folder-name trick: an upload folder's name (`o-<hash>`) in a link used to be a valid
    token whose legacy upload root was that very folder. Neither it nor an account id opens
    anything now."""
    alice = new_owner()
    folder = owner_folder(alice)
    assert not valid_owner(folder)
    assert not valid_owner(account_owner(ISSUER, "1"))
    assert valid_owner(alice)
    # Even handed over as an owner directly, the hashed name's roots are not Alice's folder.
    roots = upload_roots(tmp_path, Access(folder))
    assert upload_folder(tmp_path, alice) not in roots
    assert all(r.name != folder for r in roots)


def test_one_loader_names_file_and_line(tmp_path):
    (tmp_path / "worker_limits.yaml").write_text("# limits\nqueued_jobs: 5\nowner_jobs: 0\n")
    with pytest.raises(OperatorFileError, match=r"worker_limits.yaml, line 3: owner_jobs"):
        load_worker_limits(tmp_path)
    (tmp_path / "upload_limits.yaml").write_text("max_files: 3\nmax_file_mb: [\n")
    with pytest.raises(OperatorFileError, match=r"upload_limits.yaml, line \d"):
        load_operator(tmp_path, "upload_limits.yaml", UploadLimits)
    (tmp_path / "cluster.yaml").write_text("- local\n")
    with pytest.raises(OperatorFileError, match="cluster.yaml, line 1: expected a mapping"):
        load_operator(tmp_path, "cluster.yaml", ServerSettings)
    assert load_operator(tmp_path, "missing.yaml", UploadLimits) == UploadLimits()


# --- the app in shared mode, without a browser -------------------------------------------------
@pytest.fixture
def shared_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "server.yaml").write_text("mode: shared\n")
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    monkeypatch.delenv("ADAPTLAB_MODE", raising=False)
    return home


def test_anonymous_visitor_of_a_shared_server_sees_only_the_sign_in(shared_home):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["owner"] = new_owner()  # a link names nobody here
    at.run()
    assert not at.exception
    assert "owner" not in at.session_state
    assert "owner" not in at.query_params
    assert [t.value for t in at.title] == ["AdaptLab"]
    assert not at.dataframe and not at.selectbox  # no page of the app was drawn
    # No [auth] in the secrets of this checkout: the operator is told, nobody gets in.
    assert "not set up" in " ".join(e.value for e in at.error)


def test_forged_proxy_header_is_refused_in_the_app(shared_home):
    (shared_home / "server.yaml").write_text(
        "mode: shared\nsign_in: proxy\nproxy_addresses: [10.9.9.9]\n"
    )
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert "owner" not in at.session_state  # AppTest sends no header: not signed in
    assert "sign-in address" in " ".join(i.value for i in at.info)


def test_cli_app_shared_flag(monkeypatch):
    from cli.args import parser

    assert parser().parse_args(["app", "--shared"]).shared
    assert not parser().parse_args(["app"]).shared


def test_operator_overview_and_cli_name_accounts(tmp_path, capsys):
    """What an admin sees: every owner's disk and jobs, accounts by the label they signed in
    with (service.admin for the Operator page, `adaptlab jobs` for the CLI)."""
    from cli.main import main as cli_main
    from service.admin import account_uses
    from service.corpus_library import CorpusLibrary
    from service.jobs import JobQueue

    store = tmp_path / "runs.sqlite"
    alice = Account(ISSUER, "1", "alice@x.org")
    AccountBook(store).seen(alice)
    CorpusLibrary(tmp_path / "corpora").save("notes", [("a.txt", b"x" * 5000)], owner=alice.owner)
    queue = JobQueue(store)
    queue.submit_task("qagen", {}, owner=alice.owner)
    queue.submit_task("qagen", {}, owner="link-token-0000000001")
    uses = {u.label: u for u in account_uses(tmp_path, store)}
    assert uses["alice@x.org"].used_bytes >= 5000 and uses["alice@x.org"].queued == 1
    assert "link link…" in uses  # a link token is shown cut short: it is that owner's key
    assert cli_main(["jobs", "--store", str(store)]) == 0
    assert f"{alice.owner} (alice@x.org)" in capsys.readouterr().out
