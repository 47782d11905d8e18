"""Build the sample's format task from its Q/A file: `python sample_data/build_tasks.py`.

Writes sample_data/format/qa.jsonl: every pair of sample_data/qa.jsonl with its gold answers
as JSON objects {"answer": ..., "source": ...} (the source document without its extension),
which sample_data/format/schema.json describes. The Corpus page makes a user's format pairs
with the same code (core.format_pairs), quotes added. The style task
(sample_data/style/style.yaml) reuses sample_data/qa.jsonl as it is. Deterministic: the same
input gives the same file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script from a checkout: the packages beside it

from core.format_pairs import format_record  # noqa: E402
from core.qa import load_qa  # noqa: E402


def main() -> None:
    pairs = load_qa(HERE / "qa.jsonl")
    out = HERE / "format" / "qa.jsonl"
    lines = (json.dumps(format_record(p, quotes=False), ensure_ascii=False) for p in pairs)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{len(pairs)} pairs -> {out}")


if __name__ == "__main__":
    main()
