"""Benchmark: batched generation (what the harness does) against one question at a time.

Prints seconds per question for both and the speed-up ratio, measured in one run on this
machine with the default model, for closed-book prompts and for RAG-sized prompts.

    .venv/bin/python bench/bench_batching.py [--n 16] [--batch 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import ModelConfig  # noqa: E402
from core.engines.in_process import load_generator  # noqa: E402
from core.prompts import DEFAULT_SYSTEM_TEMPLATE, answer_messages, system_message  # noqa: E402
from core.qa import load_qa  # noqa: E402
from core.types import Context  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def timed(gen, convs, batch: int, max_new: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(convs), batch):
        gen.generate(convs[i : i + batch], max_new_tokens=max_new)
    return (time.perf_counter() - t0) / len(convs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--generator", default=ModelConfig().generator)
    args = ap.parse_args()

    gen = load_generator(ModelConfig(generator=args.generator))
    pairs = load_qa(SAMPLE / "qa.jsonl")[: args.n]
    system = system_message(DEFAULT_SYSTEM_TEMPLATE, "Pharmacy, Immune system")
    text = (SAMPLE / "corpus" / "Pharmacy.md").read_text(encoding="utf-8")
    passages = [Context(text[i * 900 : (i + 1) * 900], source="Pharmacy.md") for i in range(3)]
    cases = {
        "closed-book": [answer_messages(p.question, system) for p in pairs],
        "rag (3 passages)": [answer_messages(p.question, system, passages=passages) for p in pairs],
    }
    gen.generate(cases["closed-book"][:2], max_new_tokens=4)  # warm-up
    print(f"generator={args.generator} device={gen.device} n={args.n} batch={args.batch}")
    for label, convs in cases.items():
        prompt_tokens = sum(gen.count_tokens(gen.render(c)) for c in convs) / len(convs)
        one = timed(gen, convs, 1, args.max_new)
        many = timed(gen, convs, args.batch, args.max_new)
        print(
            f"{label:18s} prompt~{prompt_tokens:.0f} tok  one-at-a-time {one:.2f} s/q  "
            f"batched {many:.2f} s/q  speed-up x{one / many:.2f}"
        )


if __name__ == "__main__":
    main()
