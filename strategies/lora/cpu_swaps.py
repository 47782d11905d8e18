"""What a LoRA training run swaps in on the CPU for speed, and takes out again when it ends.

Both swaps keep the maths; they were measured on a 638-token RAFT example (SmolLM2-135M, 2 cores,
forward and backward; `bench/bench_training.py` shows the whole effect):
- LoRA dropout masks from a PCG64 byte stream, 16 bits per element, in place of torch's
  `bernoulli_`, which alone took 7% of the step (1.4 ms for each of the 120 masks);
- attention over repeated key/value heads (9 for SmolLM2's 3) in place of SDPA's grouped-query
  path: 18.5 ms against 20.4 ms per layer, forward and backward, with torch 2.13's CPU flash
  attention.
Imports torch and numpy at module level: import it inside functions (strategies.lora.loop does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


class _Masked(torch.autograd.Function):
    """x * keep * scale, the boolean mask kept for the backward pass (as torch's dropout)."""

    @staticmethod
    def forward(ctx, x, keep, scale: float):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep * scale

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale, None, None


class MaskDropout(nn.Module):
    """`nn.Dropout(p)` whose masks are drawn 16 bits per element from a PCG64 stream.

    An element is dropped when its 16-bit draw is below round(p * 65536): the drop probability is
    p to within 1/131072 (0.0500031 for 0.05), the kept ones scaled by 1 / (1 - p) as torch does.
    Each call seeds its stream from torch's generator, so `torch.manual_seed` fixes the masks and
    activation checkpointing, which replays torch's RNG state, recomputes the same ones.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)
        self.threshold = round(self.p * 65536)
        self.scale = 1.0 / (1.0 - self.p)

    def forward(self, x):
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":  # the masks are made in host memory
            return nn.functional.dropout(x, self.p, training=True)
        seed = int(torch.randint(0, 2**62, (1,)))
        draws = np.random.Generator(np.random.PCG64(seed)).bytes(2 * x.numel())
        keep = torch.from_numpy(np.frombuffer(draws, dtype=np.uint16) >= self.threshold)
        return _Masked.apply(x, keep.view(x.shape), self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def swap_lora_dropout(model: Any) -> Callable[[], None]:
    """Replace every peft LoRA `nn.Dropout` in `model` by a `MaskDropout` of the same p;
    returns the function that puts the originals back."""
    swapped: list[tuple[nn.ModuleDict, str, nn.Module]] = []
    for module in model.modules():
        table = getattr(module, "lora_dropout", None)
        if not isinstance(table, nn.ModuleDict):
            continue
        for name, dropout in table.items():
            if type(dropout) is nn.Dropout:
                swapped.append((table, name, dropout))
                table[name] = MaskDropout(dropout.p)

    def restore() -> None:
        for table, name, dropout in swapped:
            table[name] = dropout

    return restore


_gqa_lock = threading.Lock()
_gqa_users = 0
_gqa_original: Callable[..., bool] | None = None


def repeat_kv_heads_on_cpu() -> Callable[[], None]:
    """Until the returned function is called, transformers' SDPA attention repeats key/value
    heads for CPU tensors instead of passing `enable_gqa` (CUDA keeps its choice). Counted, so
    overlapping training runs in one process restore the original once the last one ends; a
    transformers without the `use_gqa_in_sdpa` switch is left as it is."""
    global _gqa_users, _gqa_original
    try:
        from transformers.integrations import sdpa_attention
    except ImportError:
        return lambda: None
    if not callable(getattr(sdpa_attention, "use_gqa_in_sdpa", None)):
        return lambda: None
    with _gqa_lock:
        if _gqa_users == 0:
            original = sdpa_attention.use_gqa_in_sdpa
            _gqa_original = original

            def use_gqa(attention_mask, key, *args, **kwargs):
                if key.device.type == "cpu":
                    return False
                return original(attention_mask, key, *args, **kwargs)

            sdpa_attention.use_gqa_in_sdpa = use_gqa
        _gqa_users += 1
    done = False

    def restore() -> None:
        global _gqa_users
        nonlocal done
        with _gqa_lock:
            if done:
                return
            done = True
            _gqa_users -= 1
            if _gqa_users == 0:
                sdpa_attention.use_gqa_in_sdpa = _gqa_original

    return restore


def cpu_training_swaps(model: Any) -> Callable[[], None]:
    """Both swaps for one CPU training run of `model`; returns the function that undoes them."""
    undo = [swap_lora_dropout(model), repeat_kv_heads_on_cpu()]

    def restore() -> None:
        for fn in undo:
            fn()

    return restore
