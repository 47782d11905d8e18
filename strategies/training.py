"""The LoRA training loop and its training data, shared by the strategy and `train_lora`.

Training goes through Hugging Face `accelerate`, so one piece of code runs on one CPU, one GPU
or several processes (`accelerate launch`, DDP): the data is sharded across processes, losses
are averaged over them, and every process takes the same early-stopping decision.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.prompts import answer_messages
from core.types import Chunk, Context, Corpus, QAPair

IGNORE = -100  # label value the loss skips
MODES = ("qa", "cpt", "mix", "raft")

Example = tuple[list[int], list[int]]  # (input_ids, labels)


# ---------------------------------------------------------------------------------------------
# Training data


def qa_example(gen, messages: list[dict[str, str]], answer: str, max_tokens: int) -> Example | None:
    """Chat-formatted (input_ids, labels) with loss on the answer tokens only.

    Returns None when truncation to `max_tokens` leaves no answer token.
    """
    tok = gen.tokenizer
    prompt_ids = tok(gen.render(messages), add_special_tokens=False)["input_ids"]
    full_ids = tok(gen.render(messages, answer=answer), add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # Templates that re-tokenise across the boundary: append the answer ourselves.
        full_ids = prompt_ids + tok(answer, add_special_tokens=False)["input_ids"]
        full_ids.append(tok.eos_token_id)
    labels = [IGNORE] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    full_ids, labels = full_ids[:max_tokens], labels[:max_tokens]
    return (full_ids, labels) if any(x != IGNORE for x in labels) else None


def chunk_examples(gen, chunks: Sequence[Chunk], max_tokens: int) -> list[Example]:
    """Raw corpus text, loss on every token (continued pretraining)."""
    out = []
    for chunk in chunks:
        ids = gen.tokenizer(chunk.text, add_special_tokens=False)["input_ids"][:max_tokens]
        if len(ids) > 1:
            out.append((ids, list(ids)))
    return out


def oracle_passage(pair: QAPair, corpus: Corpus) -> Context | None:
    """The passage that holds the answer: the pair's own `passage` field when it has one, else
    the first chunk (of the pair's `source` document if given) containing a gold answer.
    """
    given = getattr(pair, "passage", None)  # optional field, added to QAPair separately
    if given:
        return Context(given, source=pair.source)
    answers = [a.lower() for a in pair.answers if a.strip()]

    def holds(chunk: Chunk) -> bool:
        text = chunk.text.lower()
        return any(a in text for a in answers)

    if pair.source:
        same = [c for c in corpus.chunks if _same_source(c.source, pair.source)]
        for chunk in same:
            if holds(chunk):
                return Context(chunk.text, source=chunk.source)
    for chunk in corpus.chunks:
        if holds(chunk):
            return Context(chunk.text, source=chunk.source)
    return None


def _same_source(chunk_source: str, pair_source: str) -> bool:
    return chunk_source == pair_source or chunk_source.rsplit("/", 1)[-1] == pair_source


@dataclass
class RaftStats:
    """What went into the retrieval-aware examples (reported in the strategy's details)."""

    with_oracle: int = 0
    without_oracle: int = 0
    no_oracle_found: int = 0
    passages: list[int] = field(default_factory=list)  # passages per example


def raft_passages(
    pair: QAPair,
    retrieved: Sequence[Context],
    corpus: Corpus,
    n_passages: int,
    drop_oracle: bool,
    rng: random.Random,
) -> tuple[list[Context], bool]:
    """Passages for one RAFT example: the oracle plus distractors (retrieved chunks that are not
    the oracle), shuffled; or distractors only when `drop_oracle`. Returns (passages, has_oracle).
    """
    oracle = oracle_passage(pair, corpus)
    key = oracle.text.strip() if oracle else None
    distractors = [c for c in retrieved if c.text.strip() != key]
    if oracle is None or drop_oracle:
        return distractors[:n_passages], False
    picked = [oracle, *distractors[: n_passages - 1]]
    rng.shuffle(picked)  # the oracle's position must carry no signal
    return picked, True


def raft_example(
    gen, question: str, answer: str, system: str, passages: list[Context], max_tokens: int
) -> Example | None:
    """A Q/A example whose prompt carries `passages` in the layout RAG answers with; while it
    is too long, distractors are dropped (last first), so the answer is not truncated away.
    """
    passages = list(passages)
    while True:
        ex = qa_example(gen, answer_messages(question, system, passages=passages), answer, 10**9)
        if ex is None or len(ex[0]) <= max_tokens or len(passages) <= 1:
            break
        passages.pop()
    if ex is None:
        return None
    ids, labels = ex[0][:max_tokens], ex[1][:max_tokens]
    return (ids, labels) if any(x != IGNORE for x in labels) else None


def split_validation(
    pairs: list[QAPair], fraction: float, seed: int
) -> tuple[list[QAPair], list[QAPair]]:
    """(train, validation): a seeded `fraction` of the pairs (rounded down) held out.

    At least one pair always stays in training; fraction 0 gives no validation set.
    """
    n_val = min(int(len(pairs) * float(fraction)), max(0, len(pairs) - 1))
    if n_val <= 0:
        return list(pairs), []
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_val])
    return (
        [p for i, p in enumerate(pairs) if i not in held],
        [p for i, p in enumerate(pairs) if i in held],
    )


# ---------------------------------------------------------------------------------------------
# Training loop


@dataclass
class TrainResult:
    """What a training run did; every process holds the same figures."""

    losses: list[float]  # train loss per step (mean over processes)
    steps: int  # planned steps
    steps_done: int
    eval_curve: list[dict[str, float]] = field(default_factory=list)  # [{"step", "loss"}]
    best_step: int | None = None
    best_eval_loss: float | None = None
    stopped_early: bool = False
    eval_s: float = 0.0  # time spent on validation
    processes: int = 1


def planned_steps(
    n_examples: int, batch_size: int, epochs: float, max_steps: int, world: int
) -> int:
    """Optimisation steps per process: each step consumes `batch_size` examples per process."""
    per_epoch = math.ceil(n_examples / (batch_size * world))
    total = max(1, math.ceil(per_epoch * float(epochs)))
    return min(total, max_steps) if max_steps else total


class _EpochShuffle:
    """A sampler that reshuffles every epoch with a seed, identically in every process
    (accelerate then shards its batches), so no RNG state has to be synchronised.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def __iter__(self):
        order = list(range(self.n))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        self.epoch += 1
        return iter(order)

    def __len__(self) -> int:
        return self.n


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


def train_adapter(
    model: Any,
    examples: list[Example],
    val_examples: list[Example],
    *,
    pad_id: int,
    device: str,
    batch_size: int,
    epochs: float,
    learning_rate: float,
    max_steps: int = 0,
    eval_every: int = 50,
    patience: int = 0,
    gradient_checkpointing: bool = True,
    seed: int = 0,
    progress: Callable[[dict[str, Any]], None] = lambda e: None,
    cancelled: Callable[[], bool] = lambda: False,
    cancel_exc: type[Exception] = InterruptedError,
) -> TrainResult:
    """Train the trainable (LoRA) parameters of `model` in place through `accelerate`.

    Validation loss (mean per answer token) on `val_examples` every `eval_every` steps and at
    the end of each epoch; after `patience` evaluations without improvement training stops
    (0 = never). The weights at the best validation loss are restored at the end. Raises
    `cancel_exc` between steps once `cancelled()` is true. Leaves `model` in eval mode.
    """
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    on_cuda = device.startswith("cuda")
    # mixed_precision stays "no": the weights already are bfloat16 on CUDA (core.models).
    acc = Accelerator(cpu=not on_cuda)
    world, rank = acc.num_processes, acc.process_index
    total = planned_steps(len(examples), batch_size, epochs, max_steps, world)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    # Stepped once per step by us, not wrapped by accelerate (which steps it once per process).
    sched = get_linear_schedule_with_warmup(opt, max(1, total // 10), total)
    loader = DataLoader(
        examples,
        batch_size=batch_size,
        sampler=_EpochShuffle(len(examples), seed),
        collate_fn=lambda b: pad_right(b, pad_id),
    )
    if on_cuda and gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    with warnings.catch_warnings():
        # peft still calls a transformers property deprecated in v5; not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        ddp_model, opt, loader = acc.prepare(model, opt, loader)
    plain = acc.unwrap_model(ddp_model)
    names = [n for n, p in plain.named_parameters() if p.requires_grad]
    result = TrainResult(losses=[], steps=total, steps_done=0, processes=world)
    best_state: dict[str, Any] | None = None
    bad_evals = 0

    def evaluate(step: int) -> bool:
        """Record the validation loss at `step`; True when training should stop."""
        nonlocal best_state, bad_evals
        if not val_examples or (result.eval_curve and result.eval_curve[-1]["step"] == step):
            return False
        t = time.perf_counter()
        loss = _eval_loss(plain, val_examples[rank::world], pad_id, acc, batch_size)
        result.eval_s += time.perf_counter() - t
        result.eval_curve.append({"step": step, "loss": round(loss, 5)})
        progress({"stage": "validate", "step": step, "steps": total, "eval_loss": round(loss, 5)})
        if result.best_eval_loss is None or loss < result.best_eval_loss:
            result.best_eval_loss, result.best_step, bad_evals = round(loss, 5), step, 0
            state = dict(plain.named_parameters())
            best_state = {n: state[n].detach().clone() for n in names}
            return False
        bad_evals += 1
        return bool(patience) and bad_evals >= patience

    ddp_model.train()
    t0 = time.perf_counter()
    step = 0
    try:
        while step < total and not result.stopped_early:
            for input_ids, labels, mask in loader:
                if step >= total:
                    break
                if cancelled():
                    raise cancel_exc
                loss = ddp_model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
                acc.backward(loss)
                acc.clip_grad_norm_(ddp_model.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                mean_loss = float(acc.reduce(loss.detach(), reduction="mean"))
                result.losses.append(round(mean_loss, 5))
                elapsed = time.perf_counter() - t0
                progress(
                    {
                        "stage": "train",
                        "step": step,
                        "steps": total,
                        "loss": result.losses[-1],
                        "eta_s": elapsed / step * (total - step),
                    }
                )
                if eval_every and step % eval_every == 0 and evaluate(step):
                    result.stopped_early = True
                    break
            else:  # an epoch ended (not a break): validate there too
                if evaluate(step):
                    result.stopped_early = True
        if not result.stopped_early:
            evaluate(step)  # the last step, when it was not an epoch end or an eval step
        result.steps_done = step
        if best_state is not None:
            state = dict(plain.named_parameters())
            with torch.no_grad():
                for n, value in best_state.items():
                    state[n].copy_(value)
    finally:
        plain.eval()
        if on_cuda and gradient_checkpointing:
            plain.gradient_checkpointing_disable()
        acc.free_memory()  # drops accelerate's references to the model and optimizer
    return result


def _eval_loss(model, shard: list[Example], pad_id: int, acc, batch_size: int) -> float:
    """Mean loss per label token over every process's shard of the validation set."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=acc.device)
    with torch.no_grad():
        for b in range(0, len(shard), batch_size):
            ids, labels, mask = (
                t.to(acc.device) for t in pad_right(shard[b : b + batch_size], pad_id)
            )
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                target.reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            )
            total += torch.stack([loss.double(), (target != IGNORE).sum().double()])
    if was_training:
        model.train()
    total = acc.reduce(total, reduction="sum")
    return float(total[0] / total[1].clamp(min=1))
