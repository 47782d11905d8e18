"""The one way to open the SQLite file that holds runs and jobs (WAL, foreign keys, row dicts)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection to `path` inside one transaction (committed on success), closed after.

    Every user of the file goes through here, so all of them run with WAL (readers never block
    the writer) and foreign keys on, and wait up to 30 s for a lock instead of failing.
    """
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    try:
        with conn:
            yield conn
    finally:
        conn.close()
