"""Personal or shared mode, and who a shared server's visitor is (an account, never a link).

- personal (default): one person on their own machine, the app on loopback, no sign-in; owners
  are link tokens (service.owners).
- shared (`adaptlab app --shared`, ADAPTLAB_MODE=shared, or `mode: shared` in
  `<home>/server.yaml`): no workspace without a signed-in account; `?owner=` links are ignored.
  Accounts come from an OpenID Connect provider through Streamlit's `st.login()` (`sign_in:
  oidc`, provider in `.streamlit/secrets.toml` `[auth]`), or from an authenticating proxy such
  as oauth2-proxy (`sign_in: proxy`) whose identity header is believed only on connections from
  the proxy's own address.

The owner of an account's work is `a-` + a hash of (issuer, subject): the provider's stable id,
not the e-mail (which can change hands). Nothing here imports streamlit: the page hands in what
Streamlit saw (`st.user`, `st.context.headers`, `st.context.ip_address`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigBase, check, option
from eval.store.db import connect
from service.operator import load_operator

MODE_ENV = "ADAPTLAB_MODE"
SERVER_FILE = "server.yaml"
PROXY_ISSUER = "proxy"  # the issuer recorded for accounts a proxy vouched for
_LOOPBACK = ("127.0.0.1", "::1")
_ACCOUNT = re.compile(r"a-[0-9a-f]{32}")  # account_owner's shape (never a valid link token)


@dataclass
class ServerSettings(ConfigBase):
    """How the app is served (`<home>/server.yaml`, the operator's; never typed in a browser)."""

    mode: str = option(
        "personal",
        "personal: one person, loopback, no sign-in; shared: sign-in required, one workspace "
        "per account, no owner links.",
        choices=["personal", "shared"],
    )
    sign_in: str = option(
        "oidc",
        "Shared mode's sign-in: oidc (Streamlit's st.login with [auth] in "
        ".streamlit/secrets.toml) or proxy (an authenticating proxy's header).",
        choices=["oidc", "proxy"],
    )
    proxy_addresses: list[str] = option(
        [],
        "Proxy mode: the addresses (or networks, 10.0.0.0/24) of the proxy; a sign-in header on "
        "a connection from anywhere else is refused. 127.0.0.1 covers a proxy on this machine.",
    )
    proxy_header: str = option(
        "X-Forwarded-Email",
        "Proxy mode: the request header naming the signed-in user (oauth2-proxy: "
        "X-Forwarded-Email or X-Forwarded-User).",
    )
    admins: list[str] = option(
        [],
        "Accounts that see the operator page: their e-mail (as the provider verified it), "
        "subject id or, in proxy mode, the header's value.",
    )

    def validate(self) -> None:
        check(self.mode in ("personal", "shared"), "mode must be personal or shared")
        check(self.sign_in in ("oidc", "proxy"), "sign_in must be oidc or proxy")
        check(
            isinstance(self.proxy_addresses, list)
            and isinstance(self.admins, list)
            and all(isinstance(a, str) for a in [*self.proxy_addresses, *self.admins]),
            "proxy_addresses and admins must be lists of strings",
        )
        for address in self.proxy_addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                check(False, f"proxy_addresses: {address!r} is not an IP address or network")
        check(
            self.mode != "shared" or self.sign_in != "proxy" or bool(self.proxy_addresses),
            "sign_in: proxy needs proxy_addresses (the proxy's address, e.g. 127.0.0.1)",
        )
        check(bool(str(self.proxy_header).strip()), "proxy_header must not be empty")

    @property
    def shared(self) -> bool:
        return self.mode == "shared"


def server_settings(home: str | Path) -> ServerSettings:
    """`<home>/server.yaml` (defaults without it), its mode overridden by ADAPTLAB_MODE (what
    `adaptlab app --shared` sets). Raises ConfigError naming the file and line."""
    settings = load_operator(home, SERVER_FILE, ServerSettings)
    forced = os.environ.get(MODE_ENV, "").strip().lower()
    if forced:
        settings = ServerSettings.from_dict({**settings.to_dict(), "mode": forced})
    return settings


def account_owner(issuer: str, subject: str) -> str:
    """The owner id of an account: `a-` + 128 bits of SHA-256 over issuer and subject. Two
    providers' equal subjects stay two accounts; the id is never accepted as a link token."""
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()
    return "a-" + digest[:32]


def is_account(owner: str | None) -> bool:
    """Whether `owner` is a signed-in account's id (account_owner), not a link token or the
    operator: accounts are vouched for by a provider, tokens cost nothing to make."""
    return bool(owner) and bool(_ACCOUNT.fullmatch(owner))


@dataclass(frozen=True)
class Account:
    """A signed-in person: who vouched (issuer), their stable id there (subject) and a label to
    show them and the operator (e-mail or name)."""

    issuer: str
    subject: str
    label: str
    email: str = ""  # only when the provider says it verified it (admins may be listed by it)

    @property
    def owner(self) -> str:
        return account_owner(self.issuer, self.subject)


@dataclass(frozen=True)
class SignIn:
    """What the page learns of a visitor: an account, or why there is none (`refused` set when
    the request must not be served, e.g. a forged proxy header)."""

    account: Account | None = None
    refused: str = ""


def from_oidc(user: Mapping | None) -> SignIn:
    """The account in Streamlit's `st.user` (the provider's ID-token claims), or none when not
    signed in. A token without a subject or issuer is refused: the owner rests on them."""
    user = dict(user or {})
    if not user.get("is_logged_in"):
        return SignIn()
    issuer, subject = str(user.get("iss") or ""), str(user.get("sub") or "")
    if not issuer or not subject:
        return SignIn(refused="the sign-in provider gave no subject id: ask the operator")
    email = str(user.get("email") or "")
    verified = email if email and user.get("email_verified") is not False else ""
    label = email or str(user.get("name") or "") or subject
    return SignIn(Account(issuer, subject, label, verified))


def _from_proxy_address(ip: str | None, allowed: list[str]) -> bool:
    """Whether a connection from `ip` (None: loopback, as Streamlit reports it) is the proxy's."""
    candidates = _LOOPBACK if ip is None else (ip,)
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate.split("%")[0])
        except ValueError:
            continue
        for net in allowed:
            network = ipaddress.ip_network(net, strict=False)
            if address.version == network.version and address in network:
                return True
    return False


def from_proxy(settings: ServerSettings, headers: Mapping | None, ip: str | None) -> SignIn:
    """The account a trusted proxy named in `settings.proxy_header`, or none without the header.

    The header is believed only on a connection from one of `settings.proxy_addresses`: anyone
    else can type any header, so a header from another address is refused, not ignored (the
    visitor is told, the operator sees it was tried)."""
    wanted = settings.proxy_header.lower()
    value = ""
    for key, v in (headers or {}).items():
        if str(key).lower() == wanted:
            value = str(v).strip()
            break
    if not value:
        return SignIn()
    if not _from_proxy_address(ip, settings.proxy_addresses):
        return SignIn(
            refused=f"a sign-in header came from {ip or 'this machine'}, which is not the "
            "sign-in proxy: open the app through the proxy's address"
        )
    return SignIn(Account(PROXY_ISSUER, value, value, value if "@" in value else ""))


def is_admin(settings: ServerSettings, account: Account | None) -> bool:
    """Whether `account` is one of the operator's admins (by verified e-mail or subject)."""
    if account is None:
        return False
    names = {a.strip().lower() for a in settings.admins if a.strip()}
    return bool(names & {account.subject.lower(), account.email.lower()} - {""})


class AccountBook:
    """Accounts seen on this server (owner id -> label), so the operator page and the CLI can
    say whose job is whose without storing anything a visitor typed. A table of the store."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS accounts (owner TEXT PRIMARY KEY, issuer TEXT NOT NULL, "
        "label TEXT NOT NULL, seen_at REAL NOT NULL)"
    )

    def __init__(self, store_path: str | Path):
        self.path = Path(store_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.execute(self.SCHEMA)

    def _conn(self):
        return connect(self.path)  # the store file's one way in (WAL, lock wait, one transaction)

    def seen(self, account: Account) -> None:
        """Record (or refresh) an account's label and when it was last seen."""
        with self._conn() as c:
            c.execute(
                "INSERT INTO accounts (owner, issuer, label, seen_at) VALUES (?,?,?,?) "
                "ON CONFLICT(owner) DO UPDATE SET label=excluded.label, seen_at=excluded.seen_at",
                (account.owner, account.issuer, account.label, time.time()),
            )

    def labels(self) -> dict[str, str]:
        """Owner id -> the account's label, for every account seen."""
        with self._conn() as c:
            return dict(c.execute("SELECT owner, label FROM accounts").fetchall())
