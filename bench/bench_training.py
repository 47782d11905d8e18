"""LoRA training throughput and memory: AdaptLab's trainer against the canonical peft + Trainer.

    .venv/bin/python bench/bench_training.py [--steps 10] [--modes qa,raft]

The same examples (qa and raft mode, built from the bundled sample corpus and Q/A file), the same
LoRA settings, batch size, learning rate and number of optimisation steps; fp32 on the CPU. The
canonical side is what a user writes from the peft docs: `Trainer` with `DataCollatorForSeq2Seq`,
no checkpointing. Each trainer runs in its own subprocess, so each peak RSS is its own. Prints
useful (non-padding) tokens/s, peak RSS and the ratios, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH, LR = 8, 1e-3


def build_examples(mode: str, out: Path, home: Path) -> None:
    """Write the training examples of `mode` (as LoRA / lora+rag build them) to `out`."""
    from core.config import ChunkingConfig, ModelConfig
    from core.corpus import hf_token_spans, ingest
    from core.engines.in_process import load_generator
    from core.qa import load_qa
    from strategies.base import StrategyContext
    from strategies.combos import LoraRagConfig
    from strategies.lora import LoraStrategy, LoraStrategyConfig

    models = ModelConfig()
    gen = load_generator(models)
    corpus = ingest(ROOT / "sample_data/corpus", ChunkingConfig(), hf_token_spans(gen.tokenizer))
    pairs = load_qa(ROOT / "sample_data/qa.jsonl")
    cfg = LoraRagConfig().lora if mode == "raft" else LoraStrategyConfig()
    lora = LoraStrategy(cfg, StrategyContext(models=models, workdir=home / "work"))
    lora.set_system_prompt(corpus)
    examples, _ = lora._examples(corpus, pairs, mode)
    out.write_text(json.dumps({"examples": examples, "pad_id": gen.tokenizer.pad_token_id}))


def _lora_config():
    from strategies.lora import LoraStrategy, LoraStrategyConfig

    return LoraStrategy(LoraStrategyConfig(), None).peft_config()


def run_adaptlab(data: dict, steps: int) -> dict:
    import torch

    from core.config import ModelConfig
    from core.engines.in_process import load_generator
    from strategies.lora.loop import train_adapter
    from strategies.lora.settings import TrainingSettings

    gen = load_generator(ModelConfig())
    torch.manual_seed(0)
    model = gen.attach_adapter("bench", _lora_config())
    examples = [tuple(e) for e in data["examples"]]
    cfg = TrainingSettings(batch_size=BATCH, learning_rate=LR, max_steps=steps, epochs=100)
    t = time.perf_counter()
    log = train_adapter(model, examples, [], cfg, pad_id=data["pad_id"], device="cpu")
    seconds = time.perf_counter() - t
    return {
        "useful_tokens": sum(s.useful_tokens for s in log.step_log),
        "seconds": seconds,
        "padding_share": log.padding_share,
        "checkpointing": log.checkpointing,
        "micro_batch_tokens": log.micro_batch_tokens,
        "final_loss": log.final_loss,
    }


def run_canonical(data: dict, steps: int) -> dict:
    import torch
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from core.config import ModelConfig
    from core.engines.in_process import BUNDLED_GENERATORS

    folder = BUNDLED_GENERATORS[ModelConfig().generator](Path(ModelConfig().cache_dir))
    tok = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, _lora_config())
    dataset = [{"input_ids": x, "labels": y} for x, y in data["examples"]]
    seen = {"useful": 0}
    collate = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)

    def counting(features):
        seen["useful"] += sum(len(f["input_ids"]) for f in features)
        return collate(features)

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=BATCH,
            learning_rate=LR,
            max_steps=steps,
            warmup_steps=max(1, steps // 10),
            lr_scheduler_type="linear",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            logging_steps=steps,
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=counting)
        t = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - t
    return {
        "useful_tokens": seen["useful"],
        "seconds": seconds,
        "final_loss": result.training_loss,
    }


def child(which: str, data_file: str, steps: int) -> None:
    data = json.loads(Path(data_file).read_text())
    out = (run_adaptlab if which == "adaptlab" else run_canonical)(data, steps)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(which: str, data_file: Path, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--data", str(data_file)]
    cmd += ["--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="optimisation steps per trainer")
    p.add_argument("--modes", default="qa,raft", help="comma-separated: qa, raft")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.data, args.steps)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        for mode in args.modes.split(","):
            data_file = Path(tmp) / f"{mode}.json"
            build_examples(mode, data_file, Path(tmp))
            n = len(json.loads(data_file.read_text())["examples"])
            ours = measure("adaptlab", data_file, args.steps)
            theirs = measure("canonical", data_file, args.steps)
            rows.append((mode, n, ours, theirs))
    print(f"\n{args.steps} optimisation steps of batch {BATCH}, fp32 CPU, LoRA r=8 on q/k/v/o\n")
    head = f"{'mode':5} {'examples':>8} {'trainer':10} {'tok/s':>8} {'peak RSS MB':>12} {'s':>8}"
    print(head + "  notes")
    for mode, n, ours, theirs in rows:
        for name, r in (("adaptlab", ours), ("canonical", theirs)):
            tps = r["useful_tokens"] / r["seconds"]
            note = ""
            if name == "adaptlab":
                note = (
                    f"padding {r['padding_share']:.1%}, micro-batch {r['micro_batch_tokens']} "
                    f"tokens, checkpointing {'on' if r['checkpointing'] else 'off'}"
                )
            print(
                f"{mode:5} {n:>8} {name:10} {tps:>8.1f} {r['peak_rss_mb']:>12.0f} "
                f"{r['seconds']:>8.1f}  {note}"
            )
        speed = (ours["useful_tokens"] / ours["seconds"]) / (
            theirs["useful_tokens"] / theirs["seconds"]
        )
        memory = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
        print(f"{mode:5} ratio adaptlab/canonical: tokens/s x{speed:.2f}, peak RSS x{memory:.2f}")


if __name__ == "__main__":
    main()
