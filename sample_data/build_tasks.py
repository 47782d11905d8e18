"""Build the sample's format task from its Q/A file: `python sample_data/build_tasks.py`.

Writes sample_data/format/qa.jsonl: every pair of sample_data/qa.jsonl with its gold answers
as JSON objects {"answer": ..., "source": ...} (the source document without its extension),
which sample_data/format/schema.json describes. The style task (sample_data/style/style.yaml)
reuses sample_data/qa.jsonl as it is. Deterministic: the same input gives the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def format_pair(pair: dict) -> dict:
    """The pair with each text answer as {"answer": text, "source": document name}."""
    source = Path(pair["source"]).stem
    answers = [{"answer": a, "source": source} for a in pair["answers"]]
    return {
        "id": pair["id"],
        "question": pair["question"],
        "answers": answers,
        "source": pair["source"],
    }


def main() -> None:
    rows = [json.loads(line) for line in (HERE / "qa.jsonl").read_text().splitlines() if line]
    out = HERE / "format" / "qa.jsonl"
    out.write_text(
        "".join(json.dumps(format_pair(r), ensure_ascii=False) + "\n" for r in rows),
        encoding="utf-8",
    )
    print(f"{len(rows)} pairs -> {out}")


if __name__ == "__main__":
    main()
