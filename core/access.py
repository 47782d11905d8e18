"""Who owns a run, a job or a corpus, and who may see or change it (own work, or everyone's).

An owner is a string: a link token in personal mode, an account id in shared mode (both made
on the service floor, service/owners.py and service/accounts.py). Owner "" is the operator:
runs made with the CLI or stored before owners existed. Every library call that lists, opens or
deletes work takes an `Access` explicitly; nothing here knows about browsers, tokens or files.
"""

from __future__ import annotations

from dataclasses import dataclass

OPERATOR = ""  # owner of CLI runs and of everything stored before owners existed


class AccessDenied(ValueError):
    """The asking owner may not change this item (a ValueError: pages show its message)."""


@dataclass(frozen=True)
class Access:
    """What one owner may do: see and change their own items, everything in a team workspace.

    `owner=None` is the operator's full access (the CLI, the worker, tests): every item.
    """

    owner: str | None = None
    team: bool = False

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
            raise AccessDenied(f"{what} is not yours: it cannot be changed from this workspace")
