"""What each owner last chose in the app (corpus, run, Run-page settings), kept in the store file.

The app's pages read this record when they start and write it when a choice changes, so a reload
or a page change (both of which empty Streamlit's session) brings back the same corpus, run and
settings. It lives in its own table of the run store's SQLite file, one row per owner token.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.types import known_fields
from eval.store.db import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS owner_state (
    owner TEXT PRIMARY KEY,
    state_json TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""


@dataclass
class OwnerState:
    """One owner's choices. `widgets` maps a widget key to its JSON-able value (the Run page's
    settings); `show_all_runs` lists runs with nothing finished too; `estimate_job` is the last
    estimate asked for and `estimate_for` the settings it was made with (a hash)."""

    corpus_id: str | None = None
    run_id: str | None = None
    widgets: dict[str, Any] = field(default_factory=dict)
    show_all_runs: bool = False
    estimate_job: str | None = None
    estimate_for: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> OwnerState:
        """From a stored dict; unknown keys are ignored and a damaged record gives the defaults."""
        d = known_fields(cls, d)
        if not isinstance(d.get("widgets", {}), dict):
            d.pop("widgets")
        return cls(**d)


class OwnerStates:
    """The owner_state table of one store file. Cheap to create; each call opens a connection."""

    def __init__(self, store_path: str | Path):
        self.path = Path(store_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.executescript(SCHEMA)

    def _conn(self):
        return connect(self.path)  # the store file's one way in (WAL, lock wait, one transaction)

    def get(self, owner: str) -> OwnerState:
        """The owner's record (the defaults for an owner never seen)."""
        with self._conn() as c:
            return self._read(c, owner)

    @staticmethod
    def _read(c: sqlite3.Connection, owner: str) -> OwnerState:
        row = c.execute("SELECT state_json FROM owner_state WHERE owner=?", (owner,)).fetchone()
        if row is None:
            return OwnerState()
        try:
            return OwnerState.from_dict(json.loads(row[0]))
        except (ValueError, TypeError):  # a damaged row must not stop the app: start afresh
            return OwnerState()

    @staticmethod
    def _write(c: sqlite3.Connection, owner: str, state: OwnerState) -> None:
        text = json.dumps(state.to_dict(), sort_keys=True, default=str)
        c.execute(
            "INSERT INTO owner_state (owner, state_json, updated_at) VALUES (?,?,?) "
            "ON CONFLICT(owner) DO UPDATE SET state_json=excluded.state_json, "
            "updated_at=excluded.updated_at",
            (owner, text, time.time()),
        )

    def put(self, owner: str, state: OwnerState) -> None:
        """Replace the owner's record."""
        with self._conn() as c:
            self._write(c, owner, state)

    def update(self, owner: str, **changes: Any) -> OwnerState:
        """Change some fields of the owner's record (written only when something differs);
        `widgets` is merged key by key. Returns the record as stored.

        Read and written in one locked transaction: two tabs, or the page and the worker, that
        update the same owner at once keep each other's changes."""
        names = {f.name for f in fields(OwnerState)}
        unknown = set(changes) - names
        if unknown:
            raise KeyError(f"OwnerState has no field {sorted(unknown)[0]!r}")
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            state = self._read(c, owner)
            new = OwnerState.from_dict(state.to_dict())
            for key, value in changes.items():
                if key == "widgets":
                    new.widgets = {**new.widgets, **value}
                else:
                    setattr(new, key, value)
            if new != state:
                self._write(c, owner, new)
        return new
