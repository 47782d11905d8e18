"""Who owns a run, a job or a corpus, and who may see or change it (private or team workspace).

An owner is an unguessable token (the app keeps it in the page URL, `?owner=...`: whoever holds
the link is that owner, so the link is private). Owner "" is the operator: runs made with the
CLI or stored before owners existed. Every library call that lists, opens or deletes work takes
an `Access` explicitly; nothing here knows about browsers.

Workspace modes, set by the operator:
- "private" (default): each owner sees and changes only their own work, plus the bundled sample
  corpus, which is shared and read-only for everyone.
- "team": everyone sees and changes everything (a trusted team behind one login); the sample
  stays read-only.
The mode comes from the environment variable ADAPTLAB_WORKSPACE, else `<home>/workspace.yaml`
(`mode: team`), else "private".
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

OPERATOR = ""  # owner of CLI runs and of everything stored before owners existed
MODES = ("private", "team")
WORKSPACE_ENV = "ADAPTLAB_WORKSPACE"
WORKSPACE_FILE = "workspace.yaml"
UPLOADS = "adapters"  # <home>/adapters/<owner_folder(owner)>/...: each owner's adapter uploads
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class AccessDenied(ValueError):
    """The asking owner may not change this item (a ValueError: pages show its message)."""


def new_owner() -> str:
    """A fresh owner token: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def valid_owner(token: object) -> bool:
    """Whether `token` looks like an owner token (what a URL may carry is checked with this)."""
    return isinstance(token, str) and bool(_TOKEN.match(token))


def workspace_mode(home: str | Path | None = None) -> str:
    """The operator's workspace mode: ADAPTLAB_WORKSPACE, else `<home>/workspace.yaml`'s `mode`,
    else "private". Raises ValueError for a mode that is not one of MODES (a typo must not open
    everyone's work to everyone, nor silently close it)."""
    mode = os.environ.get(WORKSPACE_ENV, "").strip().lower()
    if not mode and home is not None:
        path = Path(home) / WORKSPACE_FILE
        if path.is_file():
            import yaml

            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: not valid YAML ({e})") from e
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a mapping such as 'mode: team'")
            mode = str(data.get("mode", "")).strip().lower()
    mode = mode or "private"
    if mode not in MODES:
        raise ValueError(f"workspace mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


def owner_folder(owner: str) -> str:
    """The folder name of `owner`'s files: a hash of the token, never the token itself (a path
    shows up in errors and listings, and the token is the key to the owner's workspace)."""
    return "o-" + hashlib.sha256(str(owner).encode("utf-8")).hexdigest()[:32]


def upload_folder(home: str | Path, owner: str) -> Path:
    """Where `owner`'s adapter uploads are unpacked (not created)."""
    return Path(home) / UPLOADS / owner_folder(owner)


def upload_roots(home: str | Path, access: Access) -> list[Path]:
    """The upload folders `access` may name: every owner's in a team workspace or for the
    operator, else the owner's own, plus the folder named after the raw token where uploads
    were kept before (still readable by that owner, by nobody else)."""
    if access.everything:
        return [Path(home) / UPLOADS]
    roots = [upload_folder(home, access.owner or OPERATOR)]
    if valid_owner(access.owner):
        roots.append(Path(home) / UPLOADS / str(access.owner))
    return roots


@dataclass(frozen=True)
class Access:
    """What one owner may do: see and change their own items, everything in a team workspace.

    `owner=None` is the operator's full access (the CLI, the worker, tests): every item.
    """

    owner: str | None = None
    team: bool = False

    @classmethod
    def for_owner(cls, owner: str, home: str | Path | None = None) -> Access:
        """The access of browser owner `owner` under the operator's workspace mode."""
        return cls(owner=owner, team=workspace_mode(home) == "team")

    @property
    def everything(self) -> bool:
        """Whether this access sees every owner's items (operator or team workspace)."""
        return self.owner is None or self.team

    @property
    def only(self) -> str | None:
        """The one owner whose items a listing keeps, or None for every owner's."""
        return None if self.everything else self.owner

    def sees(self, owner: str | None) -> bool:
        """Whether an item owned by `owner` is visible."""
        return self.everything or (owner or OPERATOR) == self.owner

    def check(self, owner: str | None, what: str) -> None:
        """Raise AccessDenied unless an item owned by `owner` may be changed; `what` names it.

        The message does not say whether the item exists for someone else."""
        if not self.sees(owner):
            raise AccessDenied(f"{what} is not yours: it cannot be changed from this link")
