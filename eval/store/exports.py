"""A stored run as files that travel: the whole run as JSON, its answers as CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.files import csv_safe
from eval.store.artifacts import run_dir
from eval.store.rows import Run, StoredAnswer


def run_json(run: Run, answers: list[StoredAnswer]) -> str:
    """The whole run (config, metadata, results, answers and scores) as JSON."""
    data = asdict(run)
    data["results"] = [r.to_dict() for r in run.results]  # the stored shapes, not every field
    data["meta"] = run.meta.to_dict()
    del data["owner"]  # the owner token is a private link: never in a file that travels
    del data["process"]  # pid and host: nothing for a reader of the export
    # Server paths (the home, other owners' folders) do not travel either: relative to the
    # run's folder when inside it, else the last name only.
    folder = run_folder(run)
    for key in ("config", "meta", "error"):
        data[key] = portable(data[key], folder)
    for result in data["results"]:
        for key in ("prepare", "extras", "error", "config"):
            if key in result:
                result[key] = portable(result[key], folder)
    data["answers"] = [
        {
            "strategy": a.strategy,
            "qid": a.qid,
            "question": a.question,
            "golds": a.golds,
            **a.answer.to_dict(),
            "scores": a.scores,
            "details": a.details,
        }
        for a in answers
    ]
    return json.dumps(data, indent=2)


def run_folder(run: Run) -> Path | None:
    """The run's own folder (eval.store.artifacts.run_dir), or None when its config names none."""
    workdir = (run.config or {}).get("workdir")
    try:
        return run_dir(workdir, run.id) if workdir else None
    except ValueError:
        return None


# An absolute path standing alone or after a local URI's scheme (sqlite:///, file://).
_ABSOLUTE = re.compile(r"(?:(?<=sqlite:///)|(?<=file://)|(?<![\w.:/]))(?:/[^\s/'\"]+)+")


def portable(value: Any, folder: Path | None) -> Any:
    """`value` (JSON data) with every absolute path made relative to `folder` when it lies
    inside, else cut to its last name, in strings nested anywhere (messages too)."""
    if isinstance(value, dict):
        return {k: portable(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, folder) for v in value]
    if not isinstance(value, str) or "/" not in value:
        return value
    return _ABSOLUTE.sub(lambda m: _relative(m.group(0), folder), value)


def _relative(path: str, folder: Path | None) -> str:
    if folder is not None:
        try:
            return Path(path).relative_to(folder).as_posix() or "."
        except ValueError:
            pass
    return Path(path).name


def answers_csv(answers: list[StoredAnswer]) -> str:
    """One row per (strategy, question): answer, gold answers, tokens, latency, scores, and
    the rationale of metrics that give one (`<metric>_rationale`, e.g. the judge's). Text
    cells that a spreadsheet would run as a formula are neutralised (core.files)."""
    metrics = sorted({m for a in answers for m in a.scores})
    reasoned = sorted({m for a in answers for m, d in a.details.items() if "rationale" in d})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["strategy", "qid", "question", "answer", "golds", "prompt_tokens", "output_tokens"]
        + ["latency_s", *metrics, *(f"{m}_rationale" for m in reasoned)]
    )
    for a in answers:
        # Questions and answers are untrusted text: "=HYPERLINK(...)" must stay text.
        text = [a.strategy, a.qid, a.question, a.answer.text, " | ".join(a.golds)]
        w.writerow(
            [csv_safe(cell) for cell in text]
            + [
                a.answer.cost.prompt_tokens,
                a.answer.cost.output_tokens,
                f"{a.answer.cost.latency_s:.4f}",
            ]
            + ["" if a.scores.get(m) is None else f"{a.scores[m]:.4f}" for m in metrics]
            + [csv_safe(a.details.get(m, {}).get("rationale", "")) for m in reasoned]
        )
    return buf.getvalue()
