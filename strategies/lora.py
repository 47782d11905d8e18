"""LoRA fine-tuning: train a low-rank adapter on the training Q/A pairs, answer closed book."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from core.config import check, option
from core.prompts import answer_messages
from core.types import Answer, Corpus, PrepareReport, QAPair
from strategies import GenerativeStrategy, register_strategy
from strategies.base import PromptConfig, RunCancelled

IGNORE = -100  # label value the loss skips
# peft still calls a transformers property deprecated in v5; the warning is not ours to fix.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")


@dataclass
class LoraStrategyConfig(PromptConfig):
    r: int = option(8, "LoRA rank: size of the low-rank update.")
    alpha: int = option(16, "LoRA scaling numerator (update scaled by alpha / r).")
    dropout: float = option(0.05, "Dropout on the LoRA path during training.")
    target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "Module names to adapt (attention projections by default); ['all-linear'] for all.",
    )
    epochs: float = option(3.0, "Passes over the training data (fractions allowed).")
    learning_rate: float = option(1e-3, "Peak AdamW learning rate (linear warm-up and decay).")
    batch_size: int = option(8, "Examples per optimisation step.")
    max_seq_tokens: int = option(256, "Examples longer than this are truncated.")
    train_on_chunks: bool = option(
        False, "Also train on raw corpus chunks (continued pretraining, loss on all tokens)."
    )
    max_steps: int = option(0, "Stop after this many steps (0 = no limit).")
    gradient_checkpointing: bool = option(
        True, "On CUDA, trade compute for memory (ignored on the CPU, where it only slows down)."
    )
    seed: int = option(0, "Seed of adapter initialisation and data order.")

    def validate(self) -> None:
        super().validate()
        check(1 <= int(self.r) <= 256, "r must be in 1..256")
        check(int(self.alpha) >= 1, "alpha must be >= 1")
        check(0.0 <= float(self.dropout) < 1.0, "dropout must be in [0, 1)")
        check(
            isinstance(self.target_modules, list) and bool(self.target_modules),
            "target_modules must be a non-empty list",
        )
        check(0 < float(self.epochs) <= 100, "epochs must be in (0, 100]")
        check(0 < float(self.learning_rate) < 1, "learning_rate must be in (0, 1)")
        check(1 <= int(self.batch_size) <= 1024, "batch_size must be in 1..1024")
        check(16 <= int(self.max_seq_tokens) <= 8192, "max_seq_tokens must be in 16..8192")
        check(int(self.max_steps) >= 0, "max_steps must be >= 0")


@register_strategy("lora")
class LoraStrategy(GenerativeStrategy):
    config_class = LoraStrategyConfig
    description = "LoRA fine-tune: a low-rank adapter trained on the training Q/A pairs."

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        import torch
        from peft import LoraConfig

        cfg = self.config
        if not train and not cfg.train_on_chunks:
            raise ValueError("lora needs training Q/A pairs (or train_on_chunks)")
        gen = self.ctx.generator
        self.set_system_prompt(corpus)
        examples = self._examples(corpus, train)
        if not examples:
            raise ValueError("lora: no training example survived tokenisation")

        key = hashlib.sha256(
            json.dumps([corpus.fingerprint, cfg.to_dict(), [p.id for p in train]]).encode()
        ).hexdigest()[:12]
        self.adapter = f"lora-{key}"
        torch.manual_seed(cfg.seed)
        peft_config = LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=cfg.target_modules[0]
            if cfg.target_modules == ["all-linear"]
            else list(cfg.target_modules),
            task_type="CAUSAL_LM",
        )
        with gen.lock:
            model = gen.attach_adapter(self.adapter, peft_config)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            losses, steps = self._train(model, examples)
            out = self.ctx.workdir / "lora" / self.adapter
            model.save_pretrained(str(out), selected_adapters=[self.adapter])
        saved = _adapter_dir(out)
        return PrepareReport(
            trainable_params=int(trainable),
            artifact_bytes=sum(f.stat().st_size for f in saved.rglob("*") if f.is_file()),
            artifact_path=str(saved),
            details={
                "loss_curve": losses,
                "steps": steps,
                "examples": len(examples),
                "qa_examples": len(train),
                "chunk_examples": len(examples) - len(train) if cfg.train_on_chunks else 0,
                "final_loss": losses[-1] if losses else None,
                "device": gen.device,
            },
        )

    def _examples(self, corpus: Corpus, train: list[QAPair]) -> list[tuple[list[int], list[int]]]:
        """(input_ids, labels) pairs: Q/A in chat format with loss on the answer tokens only."""
        gen, cfg = self.ctx.generator, self.config
        tok = gen.tokenizer
        out = []
        for pair in train:
            messages = answer_messages(pair.question, self.system)
            prompt_ids = tok(gen.render(messages), add_special_tokens=False)["input_ids"]
            full_ids = tok(gen.render(messages, answer=pair.answers[0]), add_special_tokens=False)[
                "input_ids"
            ]
            if full_ids[: len(prompt_ids)] != prompt_ids:
                # Templates that re-tokenise across the boundary: append the answer ourselves.
                full_ids = prompt_ids + tok(pair.answers[0], add_special_tokens=False)["input_ids"]
                full_ids.append(tok.eos_token_id)
            labels = [IGNORE] * len(prompt_ids) + full_ids[len(prompt_ids) :]
            full_ids, labels = full_ids[: cfg.max_seq_tokens], labels[: cfg.max_seq_tokens]
            if any(x != IGNORE for x in labels):
                out.append((full_ids, labels))
        if cfg.train_on_chunks:
            for chunk in corpus.chunks:
                ids = tok(chunk.text, add_special_tokens=False)["input_ids"][: cfg.max_seq_tokens]
                if len(ids) > 1:
                    out.append((ids, list(ids)))
        return out

    def _train(self, model, examples) -> tuple[list[float], int]:
        import torch
        from transformers import get_linear_schedule_with_warmup

        cfg, gen = self.config, self.ctx.generator
        device = gen.device
        on_cuda = device.startswith("cuda")
        steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
        total = max(1, math.ceil(steps_per_epoch * cfg.epochs))
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
        sched = get_linear_schedule_with_warmup(opt, max(1, total // 10), total)
        if on_cuda and cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        rng = random.Random(cfg.seed)
        pad = gen.tokenizer.pad_token_id
        losses: list[float] = []
        model.train()
        t0 = time.perf_counter()
        try:
            step = 0
            while step < total:
                order = list(range(len(examples)))
                rng.shuffle(order)
                for b in range(0, len(order), cfg.batch_size):
                    if step >= total:
                        break
                    if self.ctx.cancelled():
                        raise RunCancelled
                    batch = [examples[i] for i in order[b : b + cfg.batch_size]]
                    input_ids, labels, mask = _pad_right(batch, pad)
                    loss = model(
                        input_ids=input_ids.to(device),
                        attention_mask=mask.to(device),
                        labels=labels.to(device),
                    ).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                    step += 1
                    losses.append(round(float(loss.detach()), 5))
                    elapsed = time.perf_counter() - t0
                    self.ctx.progress(
                        {
                            "stage": "train",
                            "step": step,
                            "steps": total,
                            "loss": losses[-1],
                            "eta_s": elapsed / step * (total - step),
                        }
                    )
        finally:
            model.eval()
            if on_cuda and cfg.gradient_checkpointing:
                model.gradient_checkpointing_disable()
        return losses, total

    def answer(self, questions: list[str]) -> list[Answer]:
        return self.generate_answers(questions, self.system)

    def close(self) -> None:
        if self.adapter is not None:
            self.ctx.generator.detach_adapter(self.adapter)


def _pad_right(batch, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return ids, labels, mask


def _adapter_dir(root: Path) -> Path:
    """peft saves a non-default adapter name in a subfolder; find the folder holding it."""
    found = sorted(root.rglob("adapter_config.json"))
    return found[0].parent if found else root
