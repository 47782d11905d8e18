"""What an admin of a shared server sees: every account's jobs and disk use against its quota.

Read by the operator page (ui/operator_page.py, shown only to the admins listed in
`<home>/server.yaml`) and testable without a browser. Owners are shown by the label their
account signed in with (service.accounts.AccountBook); a link token or the operator has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.store.runs import RunStore
from service.accounts import AccountBook
from service.corpus_library import CorpusLibrary
from service.jobs.queue import JobQueue
from service.quota import owner_disk_use


@dataclass(frozen=True)
class AccountUse:
    """One owner's share of the server: who, disk used and allowed, jobs waiting and running."""

    owner: str
    label: str
    used_bytes: int
    quota_bytes: int
    queued: int
    running: int


def owner_label(owner: str, labels: dict[str, str]) -> str:
    """How the operator page names an owner: the account's label, else a short form of the id
    (a link token is shown cut short: it is that owner's key)."""
    if not owner:
        return "operator (CLI)"
    return labels.get(owner) or f"link {owner[:4]}…"


def account_uses(home: str | Path, store_path: str | Path) -> list[AccountUse]:
    """Every owner with an account, a run, a saved corpus or a job, most disk used first."""
    store, queue = RunStore(store_path), JobQueue(store_path)
    labels = AccountBook(store_path).labels()
    jobs = queue.list_jobs(limit=100_000)
    owners = set(labels) | {r.owner for r in store.list_runs(limit=100_000)}
    owners |= {j.owner for j in jobs}
    owners |= {c.owner for c in CorpusLibrary(Path(home) / "corpora").list() if not c.builtin}
    uses = []
    for owner in owners - {""}:
        disk = owner_disk_use(home, owner, store)
        uses.append(
            AccountUse(
                owner,
                owner_label(owner, labels),
                disk.used,
                disk.quota,
                sum(j.owner == owner and j.status == "queued" for j in jobs),
                sum(j.owner == owner and j.status == "running" for j in jobs),
            )
        )
    return sorted(uses, key=lambda u: (-u.used_bytes, u.label))
