"""Train a LoRA adapter outside the harness, in one or several processes.

    python -m strategies.lora.train --corpus DOCS/ --qa train.jsonl --out adapter/
    torchrun --nproc_per_node 2 -m strategies.lora.train --corpus DOCS/ --qa train.jsonl \\
        --out adapter/ --set epochs=1 --set mode=raft          # two CPU processes (gloo)
    accelerate launch --multi_gpu --num_processes 4 -m strategies.lora.train ...  # 4 GPUs

(`accelerate launch --cpu --num_processes 2` starts one process unless MPI is set up, so CPU
DDP goes through torchrun; accelerate picks up torchrun's environment either way.)

Every process loads the model itself; accelerate shards the data (DDP) and only the main
process writes the adapter. Every Q/A pair in `--qa` is training data (hold the test questions
out of that file); `val_fraction` of them validate. The folder written is a peft adapter: use
it as the LoRA `adapter_path`, or export and merge it with `strategies.lora.deploy`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

from core.config import ChunkingConfig, ConfigError, ModelConfig
from core.corpus import hf_token_spans, ingest
from core.engines.in_process import load_generator, resolve_device
from core.qa import load_qa
from strategies.base import StrategyContext
from strategies.lora import LoraStrategy, LoraStrategyConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m strategies.lora.train", description=__doc__)
    p.add_argument("--corpus", required=True, help="documents folder (or one file)")
    p.add_argument("--qa", required=True, help="training Q/A file (jsonl, json or csv)")
    p.add_argument("--out", required=True, help="folder the adapter is written to")
    p.add_argument("--generator", default=ModelConfig().generator, help="base model")
    p.add_argument("--embedder", default=ModelConfig().embedder, help="embedder (mode raft)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    p.add_argument("--cache-dir", default=ModelConfig().cache_dir, help="model cache folder")
    p.add_argument("--chunk-tokens", type=int, default=ChunkingConfig().chunk_tokens)
    p.add_argument("--overlap-tokens", type=int, default=ChunkingConfig().overlap_tokens)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a LoRA setting, e.g. --set epochs=1 --set mode=raft",
    )
    return p.parse_args(argv)


def lora_settings(items: list[str]) -> dict:
    """`KEY=VALUE` strings as a dict, values read as YAML (numbers, booleans, lists)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set wants KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Train, write the adapter to --out (main process), print the report as JSON."""
    from accelerate import PartialState

    args = parse_args(argv)
    import torch

    # Decided once per process: on the CPU, accelerate only joins the other processes (DDP on
    # gloo) when told cpu=True; every later Accelerator shares this state.
    state = PartialState(cpu=args.cpu or not torch.cuda.is_available())
    try:
        cfg = LoraStrategyConfig.from_dict(lora_settings(args.set))
        chunking = ChunkingConfig(
            chunk_tokens=args.chunk_tokens, overlap_tokens=args.overlap_tokens
        )
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    device = "cuda" if state.device.type == "cuda" else "cpu"
    models = ModelConfig(
        generator=args.generator, embedder=args.embedder, device=device, cache_dir=args.cache_dir
    )
    resolve_device(models.device)
    gen = load_generator(models)
    if device == "cuda":  # one GPU per process: accelerate picked this process's device
        gen.model.to(state.device)
        gen.device = str(state.device)
    corpus = ingest(args.corpus, chunking, hf_token_spans(gen.tokenizer))
    pairs = load_qa(args.qa)
    out = Path(args.out)
    # Each process trains in its own work folder, so no two write the same file.
    work = out.parent / f".{out.name}-work" / f"rank{state.process_index}"
    ctx = StrategyContext(models=models, workdir=work, seed=cfg.training.seed)
    lora = LoraStrategy(cfg, ctx)
    report = lora.prepare(corpus, pairs)
    if state.is_main_process:
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(report.artifact_path, out)
        summary = {
            "adapter": str(out),
            "trainable_params": report.trainable_params,
            "adapter_bytes": report.artifact_bytes,
            **report.details,
            **_training_summary(report.training),
        }
        print(json.dumps(summary, indent=2))
    state.wait_for_everyone()
    lora.close()
    if state.is_main_process:
        shutil.rmtree(work.parent, ignore_errors=True)
    return 0


def _training_summary(log) -> dict:
    """The training log's figures without its per-step list, plus throughput and padding."""
    if log is None:
        return {}
    out = {k: v for k, v in log.to_dict().items() if k != "step_log"}
    out["losses"] = log.losses
    out["useful_tokens_per_s"] = round(log.useful_tokens_per_s, 1)
    out["padding_share"] = round(log.padding_share, 4)
    out["peak_memory_mb"] = log.peak_memory_mb
    return out


if __name__ == "__main__":
    sys.exit(main())
