"""The results store: every run, once, in SQLite. Every view and export reads from here.

Writes are per strategy, as each finishes, so a crash keeps what was already measured.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from core.access import Access
from core.procs import GONE, ProcessRef
from core.types import Answer
from eval.judge import JudgeCost
from eval.records import CostSummary, PreparedRecord, ResultExtras, Retention
from eval.stats.intervals import Interval, intervals_from_dict, intervals_to_dict
from eval.store.artifacts import delete_run_files, run_dir
from eval.store.db import connect
from eval.store.exports import answers_csv, run_json
from eval.store.rows import (
    Run,
    RunMeta,
    RunNotFound,
    RunSummary,
    StoredAnswer,
    StrategyResult,
    create_schema,
)


class RunStore:
    """SQLite-backed runs. Safe to share between threads; each call opens its own connection."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._conn() as c:
            create_schema(c)

    def _conn(self):
        return connect(self.path)

    # --- writing -----------------------------------------------------------------------------
    def create_run(
        self,
        config: dict[str, Any],
        name: str = "",
        owner: str = "",
        *,
        status: str = "running",
        process: ProcessRef | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> str:
        """A new run of `owner` (core.access; "" = the operator) in `status` ("running" or
        "queued"), run by `process` (this one when running and not given). With `conn`, the row
        is written in the caller's transaction (a run and its job are created together)."""
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        if process is None and status == "running":
            process = ProcessRef.current()
        row = (run_id, name, status, time.time(), json.dumps(config), owner or "")
        row += (json.dumps(process.to_dict()) if process else None,)
        sql = (
            "INSERT INTO runs (id, name, status, created_at, config_json, owner, process_json) "
            "VALUES (?,?,?,?,?,?,?)"
        )
        if conn is not None:
            conn.execute(sql, row)
            return run_id
        with self._lock, self._conn() as c:
            c.execute(sql, row)
        return run_id

    def update_run(self, run_id: str, *, fingerprint: str | None = None, **meta: Any) -> None:
        """Merge `meta` into the run's metadata (and set its corpus fingerprint)."""
        with self._lock, self._conn() as c:
            # Read and write in one locked transaction: the page and the worker (two processes)
            # both merge into this record, and a plain read would let one undo the other.
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT meta_json FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            merged = {**json.loads(row["meta_json"]), **meta}
            c.execute("UPDATE runs SET meta_json=? WHERE id=?", (json.dumps(merged), run_id))
            if fingerprint is not None:
                c.execute("UPDATE runs SET fingerprint=? WHERE id=?", (fingerprint, run_id))

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self._lock, self._conn() as c:
            c.execute(
                "UPDATE runs SET status=?, finished_at=?, error=? WHERE id=?",
                (status, time.time(), error, run_id),
            )

    def set_status(
        self, run_id: str, status: str, *, conn: sqlite3.Connection | None = None
    ) -> None:
        """Mark a run not finished ("queued", "running"), clearing its end time and error;
        a resumed run goes back to running, recorded as run by this process. Finished states
        go through `finish_run`. With `conn`, in the caller's transaction."""
        process = json.dumps(ProcessRef.current().to_dict()) if status == "running" else None
        sql = "UPDATE runs SET status=?, finished_at=NULL, error=NULL, process_json=? WHERE id=?"
        if conn is not None:
            n = conn.execute(sql, (status, process, run_id)).rowcount
        else:
            with self._lock, self._conn() as c:
                n = c.execute(sql, (status, process, run_id)).rowcount
        if not n:
            raise RunNotFound(run_id)

    def mark_orphans(self) -> int:
        """Mark running runs whose process is gone (killed, crashed, rebooted) interrupted, so
        they can be resumed or deleted; returns how many. Runs on another host, and runs
        without a recorded process, are left alone: their state cannot be told from here."""
        with self._conn() as c:
            rows = c.execute(
                "SELECT id, process_json FROM runs WHERE status='running' "
                "AND process_json IS NOT NULL"
            ).fetchall()
        marked = 0
        for r in rows:
            proc = ProcessRef.from_dict(json.loads(r["process_json"]))
            if proc is None or proc.state() != GONE:
                continue
            why = f"interrupted: the process running it ({proc.describe()}) stopped"
            with self._lock, self._conn() as c:
                marked += c.execute(
                    "UPDATE runs SET status='interrupted', finished_at=?, error=? "
                    "WHERE id=? AND status='running' AND process_json=?",
                    (time.time(), f"{why}; resume the run to continue", r["id"], r["process_json"]),
                ).rowcount
        return marked

    def save_strategy(
        self,
        run_id: str,
        result: StrategyResult,
        answers: list[StoredAnswer] = (),
    ) -> None:
        """Store one strategy's result with every answer and every per-question score."""
        with self._lock, self._conn() as c:
            pos = c.execute(
                "SELECT COUNT(*) FROM strategy_results WHERE run_id=?", (run_id,)
            ).fetchone()[0]
            c.execute(
                "DELETE FROM strategy_results WHERE run_id=? AND strategy=?",
                (run_id, result.strategy),
            )
            c.execute(
                "INSERT INTO strategy_results (run_id, strategy, position, status, config_json, "
                "prepare_json, cost_json, metrics_json, error, extras_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    result.strategy,
                    pos,
                    result.status,
                    json.dumps(result.config),
                    json.dumps(result.prepare.to_dict()),
                    json.dumps(result.cost.to_dict()),
                    json.dumps(intervals_to_dict(result.metrics)),
                    result.error,
                    json.dumps(result.extras.to_dict()),
                ),
            )
            c.executemany(
                "INSERT INTO answers VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        run_id,
                        a.strategy,
                        a.qid,
                        i,
                        a.question,
                        json.dumps(a.golds),
                        json.dumps(a.answer.to_dict()),
                    )
                    for i, a in enumerate(answers)
                ],
            )
            c.executemany(
                "INSERT INTO scores VALUES (?,?,?,?,?)",
                [(run_id, a.strategy, a.qid, m, v) for a in answers for m, v in a.scores.items()],
            )
            c.executemany(
                "INSERT INTO details VALUES (?,?,?,?,?)",
                [
                    (run_id, a.strategy, a.qid, m, json.dumps(d))
                    for a in answers
                    for m, d in a.details.items()
                ],
            )

    def save_scores(
        self,
        run_id: str,
        strategy: str,
        scores: dict[str, dict[str, float | None]],
        metrics: dict[str, Interval],
        details: dict[str, dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        """Add or replace per-question scores ({metric: {qid: value}}), their aggregates and
        per-question details ({metric: {qid: record}})."""
        with self._lock, self._conn() as c:
            c.execute("BEGIN IMMEDIATE")  # metrics_json is read, merged and written back
            c.executemany(
                "INSERT OR REPLACE INTO details VALUES (?,?,?,?,?)",
                [
                    (run_id, strategy, qid, m, json.dumps(d))
                    for m, per_q in (details or {}).items()
                    for qid, d in per_q.items()
                ],
            )
            c.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?)",
                [
                    (run_id, strategy, qid, m, v)
                    for m, per_q in scores.items()
                    for qid, v in per_q.items()
                ],
            )
            row = c.execute(
                "SELECT metrics_json FROM strategy_results WHERE run_id=? AND strategy=?",
                (run_id, strategy),
            ).fetchone()
            merged = {**json.loads(row["metrics_json"]), **intervals_to_dict(metrics)}
            c.execute(
                "UPDATE strategy_results SET metrics_json=? WHERE run_id=? AND strategy=?",
                (json.dumps(merged), run_id, strategy),
            )

    def update_extras(
        self, run_id: str, strategy: str, **extras: JudgeCost | Retention | str | float | None
    ) -> None:
        """Set fields of one stored result's extras (eval.records.ResultExtras: judge=JudgeCost,
        retention=Retention...), keeping the others (rescoring, no generation)."""
        with self._lock, self._conn() as c:
            c.execute("BEGIN IMMEDIATE")  # read, merged and written back in one transaction
            row = c.execute(
                "SELECT extras_json FROM strategy_results WHERE run_id=? AND strategy=?",
                (run_id, strategy),
            ).fetchone()
            if row is None:
                raise RunNotFound(f"{run_id}/{strategy}")
            stored = ResultExtras.from_dict(json.loads(row["extras_json"] or "{}"))
            merged = dataclasses.replace(stored, **extras)
            c.execute(
                "UPDATE strategy_results SET extras_json=? WHERE run_id=? AND strategy=?",
                (json.dumps(merged.to_dict()), run_id, strategy),
            )

    def delete_run(self, run_id: str, access: Access = Access()) -> None:
        """Remove a run and its files (eval.store.artifacts); its results, answers and scores go
        with it (ON DELETE CASCADE). Raises RunNotFound (also for a run `access` does not see) and
        ValueError for a run that is queued or still running (cancel it first)."""
        self.mark_orphans()  # a run whose process died can be deleted at once
        with self._lock, self._conn() as c:
            row = c.execute(
                "SELECT owner, status, config_json FROM runs WHERE id=?", (run_id,)
            ).fetchone()
            if row is None or not access.sees(row["owner"]):
                raise RunNotFound(run_id)
            if row["status"] in ("queued", "running"):
                raise ValueError(f"run {run_id} is still {row['status']}: cancel it first")
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))
        workdir = json.loads(row["config_json"]).get("workdir")
        if workdir:
            delete_run_files(workdir, run_id)

    def run_folders(self, access: Access = Access()) -> list[Path]:
        """The file folders (eval.store.artifacts.run_dir) of the runs `access` sees."""
        where, args = ("", []) if access.only is None else ("WHERE owner=?", [access.only])
        with self._conn() as c:
            rows = c.execute(f"SELECT id, config_json FROM runs {where}", args).fetchall()
        out = []
        for r in rows:
            workdir = json.loads(r["config_json"]).get("workdir")
            if workdir:
                out.append(run_dir(workdir, r["id"]))
        return out

    # --- reading -----------------------------------------------------------------------------
    def list_runs(self, limit: int = 200, access: Access = Access()) -> list[RunSummary]:
        """Newest first, only the runs `access` sees (every run by default), each with its
        stored strategies and those that are done. Runs whose process died are marked
        interrupted first."""
        self.mark_orphans()
        where, args = ("", []) if access.only is None else ("WHERE r.owner=?", [access.only])
        with self._conn() as c:
            rows = c.execute(
                "SELECT r.id, r.name, r.status, r.created_at, r.finished_at, r.fingerprint, "
                "r.owner, r.process_json, s.strategy, s.status AS result_status "
                "FROM (SELECT * FROM runs r "
                f"{where} ORDER BY r.created_at DESC LIMIT ?) r "
                "LEFT JOIN strategy_results s ON s.run_id = r.id "
                "ORDER BY r.created_at DESC, r.id, s.position",
                (*args, limit),
            ).fetchall()
        # One row per (run, stored result), grouped here rather than with group_concat: that
        # joins names with commas in no promised order, and a list needs neither.
        grouped: dict[str, tuple[sqlite3.Row, list[str], list[str]]] = {}
        for r in rows:
            _, every, done = grouped.setdefault(r["id"], (r, [], []))
            if r["strategy"] is not None:
                every.append(r["strategy"])
                if r["result_status"] == "done":
                    done.append(r["strategy"])
        return [
            RunSummary(
                id=r["id"],
                name=r["name"] or "",
                status=r["status"],
                created_at=r["created_at"],
                finished_at=r["finished_at"],
                fingerprint=r["fingerprint"],
                owner=r["owner"],
                process=json.loads(r["process_json"]) if r["process_json"] else None,
                strategies=every,
                finished=done,
            )
            for r, every, done in grouped.values()
        ]

    def get_run(self, run_id: str, access: Access = Access()) -> Run:
        """The stored run; raises RunNotFound when there is none that `access` sees."""
        self.mark_orphans()
        with self._conn() as c:
            r = c.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if r is None or not access.sees(r["owner"]):
                raise RunNotFound(run_id)
            srows = c.execute(
                "SELECT * FROM strategy_results WHERE run_id=? ORDER BY position", (run_id,)
            ).fetchall()
        results = [
            StrategyResult(
                strategy=s["strategy"],
                status=s["status"],
                config=json.loads(s["config_json"]),
                prepare=PreparedRecord.from_dict(json.loads(s["prepare_json"])),
                cost=CostSummary.from_dict(json.loads(s["cost_json"])),
                metrics=intervals_from_dict(json.loads(s["metrics_json"])),
                error=s["error"],
                extras=ResultExtras.from_dict(json.loads(s["extras_json"] or "{}")),
            )
            for s in srows
        ]
        return Run(
            id=r["id"],
            name=r["name"] or "",
            status=r["status"],
            created_at=r["created_at"],
            finished_at=r["finished_at"],
            config=json.loads(r["config_json"]),
            fingerprint=r["fingerprint"],
            meta=RunMeta.from_dict(json.loads(r["meta_json"])),
            error=r["error"],
            results=results,
            owner=r["owner"],
            process=json.loads(r["process_json"]) if r["process_json"] else None,
        )

    def get_answers(self, run_id: str, strategy: str | None = None) -> list[StoredAnswer]:
        """Stored answers with their scores, in question order (optionally one strategy)."""
        where, args = "run_id=?", [run_id]
        if strategy is not None:
            where += " AND strategy=?"
            args.append(strategy)
        with self._conn() as c:
            arows = c.execute(
                f"SELECT * FROM answers WHERE {where} ORDER BY strategy, position", args
            ).fetchall()
            srows = c.execute(
                f"SELECT strategy, qid, metric, value FROM scores WHERE {where}", args
            ).fetchall()
            drows = c.execute(
                f"SELECT strategy, qid, metric, detail_json FROM details WHERE {where}", args
            ).fetchall()
        scores: dict[tuple[str, str], dict[str, float | None]] = {}
        for s in srows:
            scores.setdefault((s["strategy"], s["qid"]), {})[s["metric"]] = s["value"]
        details: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for d in drows:
            details.setdefault((d["strategy"], d["qid"]), {})[d["metric"]] = json.loads(
                d["detail_json"]
            )
        return [
            StoredAnswer(
                strategy=a["strategy"],
                qid=a["qid"],
                question=a["question"],
                golds=json.loads(a["golds_json"]),
                answer=Answer.from_dict(json.loads(a["answer_json"])),
                scores=scores.get((a["strategy"], a["qid"]), {}),
                details=details.get((a["strategy"], a["qid"]), {}),
            )
            for a in arows
        ]

    # --- exports -----------------------------------------------------------------------------
    def export_json(self, run_id: str) -> str:
        """The whole run as JSON (eval.store.exports)."""
        return run_json(self.get_run(run_id), self.get_answers(run_id))

    def export_csv(self, run_id: str) -> str:
        """One row per (strategy, question) as CSV (eval.store.exports)."""
        return answers_csv(self.get_answers(run_id))
