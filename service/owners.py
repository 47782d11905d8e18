"""Owner tokens, workspace mode and the folders named after owners (the service's side of
core.access).

In personal mode an owner is an unguessable link token (`?owner=...` in the page URL: whoever
holds the link is that owner). In shared mode an owner is an account id
(service.accounts.account_owner), and links name nobody. Either way an owner's files live in
folders named by a hash of the owner (`o-<hex>`), and neither that name nor an account id is
accepted as a link token, so a folder name seen in a listing or an export opens nothing.

Workspace modes, set by the operator:
- "private" (default): each owner sees and changes only their own work, plus the bundled sample
  corpus, which is shared and read-only for everyone.
- "team": everyone sees and changes everything (a trusted team); the sample stays read-only.
The mode comes from the environment variable ADAPTLAB_WORKSPACE, else `<home>/workspace.yaml`
(`mode: team`), else "private".
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from core.access import OPERATOR, Access
from service.operator import OperatorFileError, operator_path, read_operator_yaml

MODES = ("private", "team")
WORKSPACE_ENV = "ADAPTLAB_WORKSPACE"
WORKSPACE_FILE = "workspace.yaml"
UPLOADS = "adapters"  # <home>/adapters/<owner_folder(owner)>/...: each owner's adapter uploads
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Names the app makes from hashes: a folder (o-), an account (a-). Never tokens: a name seen in
# a listing, an error or an export must not open the workspace it names.
_HASHED = re.compile(r"^[oa]-[0-9a-f]{32}$")


def new_owner() -> str:
    """A fresh owner token: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def valid_owner(token: object) -> bool:
    """Whether `token` may name an owner in a link: token-shaped and not one of the app's
    hashed names (an upload folder's or an account's)."""
    return isinstance(token, str) and bool(_TOKEN.match(token)) and not _HASHED.match(token)


def workspace_mode(home: str | Path | None = None) -> str:
    """The operator's workspace mode: ADAPTLAB_WORKSPACE, else `<home>/workspace.yaml`'s `mode`,
    else "private". Raises ValueError for a mode that is not one of MODES (a typo must not open
    everyone's work to everyone, nor silently close it)."""
    mode = os.environ.get(WORKSPACE_ENV, "").strip().lower()
    if not mode and home is not None:
        data, lines = read_operator_yaml(home, WORKSPACE_FILE)
        mode = str(data.get("mode", "")).strip().lower()
        if mode and mode not in MODES:
            where = f"{operator_path(home, WORKSPACE_FILE)}, line {lines.get('mode', 1)}"
            raise OperatorFileError(
                f"{where}: workspace mode {mode!r} is not one of {', '.join(MODES)}"
            )
    mode = mode or "private"
    if mode not in MODES:
        raise ValueError(f"workspace mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


def access_for(owner: str, home: str | Path | None = None) -> Access:
    """The access of browser owner `owner` under the operator's workspace mode."""
    return Access(owner=owner, team=workspace_mode(home) == "team")


def owner_folder(owner: str) -> str:
    """The folder name of `owner`'s files: a hash of the owner, never the owner itself (a path
    shows up in errors and listings), and never accepted as a token (valid_owner)."""
    return "o-" + hashlib.sha256(str(owner).encode("utf-8")).hexdigest()[:32]


def upload_folder(home: str | Path, owner: str) -> Path:
    """Where `owner`'s adapter uploads are unpacked (not created)."""
    return Path(home) / UPLOADS / owner_folder(owner)


def upload_roots(home: str | Path, access: Access) -> list[Path]:
    """The upload folders `access` may name: every owner's in a team workspace or for the
    operator, else the owner's own, plus the folder named after the raw token where uploads
    were kept before (still readable by that owner, by nobody else: a hashed folder name is
    never a valid token, so `?owner=o-<hash>` cannot make another owner's folder this one)."""
    if access.everything:
        return [Path(home) / UPLOADS]
    roots = [upload_folder(home, access.owner or OPERATOR)]
    if valid_owner(access.owner):
        roots.append(Path(home) / UPLOADS / str(access.owner))
    return roots
