"""The door of the app: in shared mode, the signed-in account or a sign-in page and nothing
else; in personal mode, nobody in particular (the owner is the page's link token).

The decisions (who the account is, whether a proxy's header is believed, who is an admin) are
service.accounts'; this module only hands it what Streamlit saw and draws the result.
"""

from __future__ import annotations

import streamlit as st

from core.config import ConfigError
from service.accounts import (
    Account,
    AccountBook,
    ServerSettings,
    from_oidc,
    from_proxy,
    is_admin,
    server_settings,
)
from ui.common import hide_paths, home, md, store_path


def settings() -> ServerSettings:
    """The operator's server.yaml; a broken one stops the page (guessing personal would open a
    shared server to everyone, guessing shared would lock its owner out)."""
    try:
        return server_settings(home())
    except ConfigError as e:
        st.error(md(hide_paths(f"Server setting: {e}")))
        st.stop()


def _oidc_configured() -> bool:
    """Whether `.streamlit/secrets.toml` has an `[auth]` section for st.login."""
    try:
        return bool(st.secrets.get("auth"))
    except (FileNotFoundError, KeyError, ValueError):
        return False


def _sign_in_page(how: ServerSettings) -> None:
    """What an anonymous visitor of a shared server sees: the sign-in, and nothing else."""
    st.title("AdaptLab")
    st.write("This is a shared AdaptLab server: sign in to open your workspace.")
    if how.sign_in == "proxy":
        st.info("Open this app through your organisation's sign-in address (the sign-in proxy).")
    elif _oidc_configured():
        st.button("Sign in", key="sign_in", type="primary", on_click=st.login)
    else:
        st.error(
            "Sign-in is not set up on this server: the operator must add an [auth] section "
            "to .streamlit/secrets.toml (README: Shared server)."
        )


def door() -> Account | None:
    """Run at the top of every page run, before anything else is drawn.

    Personal mode: returns None (owners are link tokens, ui.common.current_owner). Shared mode:
    returns the signed-in account, having dropped any `?owner=` from the URL (a link names
    nobody here); without one it draws the sign-in page and stops the run."""
    how = settings()
    state = st.session_state
    state.shared = how.shared
    if not how.shared:
        return None
    if "owner" in st.query_params:
        del st.query_params["owner"]
    if how.sign_in == "proxy":
        seen = from_proxy(how, st.context.headers, st.context.ip_address)
    else:
        seen = from_oidc(st.user.to_dict() if _oidc_configured() else None)
    if seen.refused:
        st.error(md(seen.refused))
        st.stop()
    if seen.account is None:
        state.pop("owner", None)
        _sign_in_page(how)
        st.stop()
    account = seen.account
    if state.get("owner") != account.owner:  # once per session and account, not every rerun
        AccountBook(store_path()).seen(account)
    state.owner = account.owner
    state.account_label = account.label
    state.admin = is_admin(how, account)
    with st.sidebar:
        st.caption(f"Signed in as {md(account.label)}")
        if how.sign_in == "oidc":
            st.button("Sign out", key="sign_out", on_click=st.logout)
    return account
