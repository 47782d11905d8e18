"""Benchmark: preparing LoRA again from its saved adapter (what the Playground and a resumed
run do) against training it again (the plain way), and the Q/A generators' speed.

Prints the seconds of both preparations and the ratio, measured in one run on this machine
with the default model, on the bundled sample's first training pairs.

    .venv/bin/python bench/bench_adapter_reuse.py [--pairs 48] [--steps 12]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import ChunkingConfig, ModelConfig  # noqa: E402
from core.corpus import hf_token_spans, ingest  # noqa: E402
from core.engines.in_process import load_embedder, load_generator  # noqa: E402
from core.qa import load_qa  # noqa: E402
from strategies import create_strategy, get_strategy_class, make_config  # noqa: E402
from strategies.base import StrategyContext  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--generator", default=ModelConfig().generator)
    args = ap.parse_args()

    models = ModelConfig(generator=args.generator)
    gen = load_generator(models)
    load_embedder(models)
    corpus = ingest(SAMPLE / "corpus", ChunkingConfig(), hf_token_spans(gen.tokenizer))
    train = load_qa(SAMPLE / "qa.jsonl")[: args.pairs]
    settings = {"max_steps": args.steps, "batch_size": 4, "val_fraction": 0}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = StrategyContext(models=models, workdir=Path(tmp))
        trained = create_strategy("lora", settings, ctx)
        t0 = time.perf_counter()
        report = trained.prepare(corpus, train)
        train_s = time.perf_counter() - t0
        questions = [p.question for p in train[:4]]
        want = [a.text for a in trained.answer(questions)]
        trained.close()

        cfg = get_strategy_class("lora").reuse_config(
            make_config("lora", settings), {"artifact_path": report.artifact_path}
        )
        reused = create_strategy("lora", cfg, ctx)
        t0 = time.perf_counter()
        reused.prepare(corpus, train)
        load_s = time.perf_counter() - t0
        same = [a.text for a in reused.answer(questions)] == want
        reused.close()
    print(f"generator={args.generator} device={gen.device} pairs={args.pairs} steps={args.steps}")
    print(
        f"lora prepare: train {train_s:.2f} s  reuse saved adapter {load_s:.3f} s  "
        f"speed-up x{train_s / load_s:.0f}  same answers: {same}"
    )

    from core.qagen import QAGenConfig, generate_qa

    t0 = time.perf_counter()
    cloze = generate_qa(corpus, QAGenConfig(method="cloze", n=200, per_chunk=4))
    cloze_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = generate_qa(corpus, QAGenConfig(method="model", n=200, max_prompts=8), models)
    model_s = time.perf_counter() - t0
    print(
        f"q/a generation: cloze {len(cloze.pairs)} pairs in {cloze_s:.2f} s "
        f"({cloze_s / max(1, len(cloze.pairs)) * 1000:.1f} ms/pair); model "
        f"{len(model.pairs)} kept of {model.stats.get('considered')} prompts in {model_s:.1f} s"
    )


if __name__ == "__main__":
    main()
