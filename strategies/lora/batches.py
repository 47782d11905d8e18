"""How LoRA training batches its examples: length-grouped order, token-budget micro-batches, and
the activation-memory estimate that sets the budget (and turns checkpointing on).

Pure Python except `pad_right` (torch, imported inside), so the planning is testable without a
model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100  # label value the loss skips
Example = tuple[list[int], list[int]]  # (input_ids, labels)

# Batches per length group: examples are sorted by length inside a window of this many batches
# (drawn at random), so a batch holds similar lengths while the order stays random. Smaller than
# transformers' 50 because our training sets are often only a few dozen batches long.
GROUP_BATCHES = 8
CPU_BUDGET_CAP_GB = 2.0  # default activation budget on the CPU: at most this...
CPU_BUDGET_SHARE = 0.25  # ...and at most this share of the memory available now
CUDA_BUDGET_SHARE = 0.8  # share of the free GPU memory (weights are already loaded)


def loss_tokens(example: Example) -> int:
    """Positions the causal loss is read on: labels after the first that are not IGNORE."""
    return sum(1 for y in example[1][1:] if y != IGNORE)


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """One epoch's batches of example indices; every index appears exactly once.

    Seeded by (seed, epoch), identical in every process: a shuffle, then windows of
    `GROUP_BATCHES` batches sorted by length and cut into batches, then the batches shuffled.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * GROUP_BATCHES
    batches = []
    for start in range(0, len(order), window):
        group = sorted(order[start : start + window], key=lengths.__getitem__, reverse=True)
        batches += [group[b : b + batch_size] for b in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def process_share(batch: list[int], lengths: Sequence[int], rank: int, world: int) -> list[int]:
    """This process's part of a global batch: every `world`-th example by length, so processes
    get similar lengths. A final batch smaller than `world` repeats examples (as accelerate's
    even batches do), because every process must take part in every step.
    """
    ordered = sorted(batch, key=lengths.__getitem__, reverse=True)
    while len(ordered) < world:
        ordered.append(ordered[len(ordered) % len(batch)])
    return ordered[rank::world]


def micro_batches(
    indices: Sequence[int], lengths: Sequence[int], max_tokens: int
) -> list[list[int]]:
    """Split a batch into micro-batches whose padded size (examples x longest) fits
    `max_tokens`; longest first. An example longer than the budget runs alone.
    """
    out: list[list[int]] = []
    current: list[int] = []
    for i in sorted(indices, key=lengths.__getitem__, reverse=True):
        if current and (len(current) + 1) * lengths[current[0]] > max_tokens:
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def pad_right(batch: Sequence[Example], pad_id: int):
    """(input_ids, labels, attention_mask) tensors, right-padded to the longest example."""
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


# ---------------------------------------------------------------------------------------------
# Memory budget


@dataclass(frozen=True)
class ModelShape:
    """The sizes that set a decoder's activation memory per token."""

    hidden: int
    layers: int
    heads: int
    intermediate: int

    @classmethod
    def of(cls, config: Any) -> ModelShape:
        """Read from a transformers config (Llama-style names first, GPT-style as fallback)."""

        def first(*names: str, default: int = 0) -> int:
            for n in names:
                value = getattr(config, n, None)
                if isinstance(value, int) and value > 0:
                    return value
            return default

        hidden = first("hidden_size", "n_embd", "d_model")
        return cls(
            hidden=hidden,
            layers=first("num_hidden_layers", "n_layer", "num_layers"),
            heads=first("num_attention_heads", "n_head", default=1),
            intermediate=first("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
        )


def activation_bytes_per_token(
    shape: ModelShape, seq_len: int, checkpointing: bool, dtype_bytes: int = 4
) -> float:
    """Estimated training activation memory per (padded) token.

    Per layer and token: 18 x hidden + 4 x intermediate values (fitted on SmolLM2-135M, fp32,
    LoRA on the attention projections with dropout: ~1.6-1.8 MB/token measured, 2.0 MB
    estimated) plus heads x seq_len / 4 for the attention under a padding mask. With
    checkpointing only each layer's input is kept, plus one layer recomputed at a time.
    """
    per_layer = 18 * shape.hidden + 4 * shape.intermediate + shape.heads * seq_len / 4
    if checkpointing:
        return dtype_bytes * (shape.layers * shape.hidden + per_layer)
    return dtype_bytes * shape.layers * per_layer


@dataclass(frozen=True)
class BatchPlan:
    """The micro-batch token budget and whether activation checkpointing is needed for it."""

    micro_batch_tokens: int
    checkpointing: bool
    memory_budget_gb: float


def plan_batches(
    shape: ModelShape,
    longest: int,
    memory_budget_gb: float,
    dtype_bytes: int = 4,
    allow_checkpointing: bool = True,
) -> BatchPlan:
    """Token budget of one micro-batch under `memory_budget_gb` of activations.

    Checkpointing turns on when the longest example alone would not fit without it (and
    `allow_checkpointing`). The budget never drops below one longest example, which always runs.
    """
    budget = memory_budget_gb * 2**30
    plain = int(budget / activation_bytes_per_token(shape, longest, False, dtype_bytes))
    if plain >= longest or not allow_checkpointing:
        return BatchPlan(max(plain, longest), False, memory_budget_gb)
    saved = int(budget / activation_bytes_per_token(shape, longest, True, dtype_bytes))
    return BatchPlan(max(saved, longest), True, memory_budget_gb)


def default_memory_budget_gb(device: str) -> float:
    """Activation budget when none is set: a share of the free GPU memory on CUDA; on the CPU
    a quarter of the memory available now, capped at `CPU_BUDGET_CAP_GB`.
    """
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return round(free * CUDA_BUDGET_SHARE / 2**30, 2)
    import psutil

    available = psutil.virtual_memory().available / 2**30
    return round(max(0.25, min(CPU_BUDGET_CAP_GB, available * CPU_BUDGET_SHARE)), 2)
