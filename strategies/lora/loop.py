"""The LoRA training loop, shared by the strategy and `python -m strategies.lora.train`.

Training goes through Hugging Face `accelerate`, so one piece of code runs on one CPU, one GPU
or several processes (`accelerate launch`, DDP): every process builds the same length-grouped
batches from the seed and takes its share, losses are summed over processes, and every process
takes the same early-stopping decision. Each optimisation step runs in micro-batches that fit a
memory budget (`strategies.lora.batches`) and reads the loss on answer tokens only
(`strategies.lora.answer_loss`). The settings are the config's `TrainingSettings` section, taken
as it is; the record of a run is a `core.types.TrainingLog`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

from core.types import TrainingLog, TrainStep
from core.untrusted.caps import check_train_steps
from core.usage import add_tokens
from strategies.lora.batches import (
    Example,
    ModelShape,
    length_grouped_batches,
    loss_tokens,
    micro_batches,
    pad_right,
    plan_batches,
    process_share,
)
from strategies.lora.settings import TrainingSettings


def planned_steps(
    n_examples: int, batch_size: int, epochs: float, max_steps: int, world: int
) -> int:
    """Optimisation steps per process: each step consumes `batch_size` examples per process."""
    per_epoch = math.ceil(n_examples / (batch_size * world))
    total = max(1, math.ceil(per_epoch * float(epochs)))
    total = min(total, max_steps) if max_steps else total
    check_train_steps(total)
    return total


def train_adapter(
    model: Any,
    examples: list[Example],
    val_examples: list[Example],
    config: TrainingSettings,
    *,
    pad_id: int,
    device: str,
    progress: Callable[[dict[str, Any]], None] = lambda e: None,
    cancelled: Callable[[], bool] = lambda: False,
    cancel_exc: type[Exception] = InterruptedError,
) -> TrainingLog:
    """Train the trainable (LoRA) parameters of `model` in place through `accelerate`.

    Each step reads `batch_size` examples per process, in micro-batches that fit the memory
    budget, the loss averaged over every answer token of the whole step. Validation loss (mean
    per answer token) on `val_examples` every `eval_every` steps, at each epoch's end and at the
    last step; after `patience` evaluations without improvement training stops (0 = never). The
    weights at the lowest validation loss are restored at the end when `restore` says so
    (under 'evidence', only when their lead over the last weights is beyond noise). Raises
    `cancel_exc` between steps once `cancelled()` is true. Leaves `model` in eval mode.
    """
    run = _Run(model, examples, val_examples, config, pad_id, device)
    try:
        return run.train(progress, cancelled, cancel_exc)
    finally:
        run.close()


class _Run:
    """One training run's state: data order, optimiser and schedule, best weights, the log."""

    def __init__(self, model, examples, val_examples, config: TrainingSettings, pad_id, device):
        import torch
        from accelerate import Accelerator
        from transformers import get_linear_schedule_with_warmup

        # Both import torch at module level: loaded only when a training loop runs.
        from strategies.lora.answer_loss import AnswerLoss
        from strategies.lora.cpu_swaps import cpu_training_swaps

        self.cfg, self.pad_id, self.device = config, pad_id, device
        self.examples, self.val_examples = examples, val_examples
        self.lengths = [len(ids) for ids, _ in examples]
        self.on_cuda = device.startswith("cuda")
        # mixed_precision stays "no": the weights already are bfloat16 on CUDA
        # (core.engines.in_process).
        self.acc = Accelerator(cpu=not self.on_cuda)
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        self.total = planned_steps(
            len(examples), config.batch_size, config.epochs, config.max_steps, self.world
        )
        longest = max(self.lengths + [len(ids) for ids, _ in val_examples])
        budget = config.memory_budget(device)
        dtype_bytes = next(model.parameters()).element_size()
        self.plan = plan_batches(
            ModelShape.of(causal_lm_config(model)),
            longest,
            budget,
            dtype_bytes,
            allow_checkpointing=config.gradient_checkpointing,
        )
        if self.plan.checkpointing:
            _enable_checkpointing(model)
            model.enable_input_require_grads()
        torch.manual_seed(config.seed)
        self.model = model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
        # Stepped once per step by us, not wrapped by accelerate (which steps it once per process).
        self.sched = get_linear_schedule_with_warmup(opt, max(1, self.total // 10), self.total)
        self.loss_fn, self.opt = self.acc.prepare(AnswerLoss(model), opt)  # DDP-wrapped if many
        self.trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        self.best_state: dict[str, Any] | None = None
        # (step, loss, each example's summed loss) of the lowest validation, and of the last
        # (with each example's loss tokens): restore_best compares them pair by pair.
        self.lowest: tuple[int, float, list[float]] | None = None
        self.last: tuple[int, float, list[float], list[int]] | None = None
        self.bad_evals = 0
        self.epoch, self.queue = 0, []  # this epoch's remaining global batches
        self.log = TrainingLog(
            steps=self.total,
            examples=len(examples),
            val_examples=len(val_examples),
            processes=self.world,
            device=device,
            checkpointing=self.plan.checkpointing,
            micro_batch_tokens=self.plan.micro_batch_tokens,
            memory_budget_gb=self.plan.memory_budget_gb,
        )
        # Last in __init__: nothing after it can fail and leave the swaps in place without close().
        self.undo_swaps = cpu_training_swaps(model) if device == "cpu" else (lambda: None)

    def train(self, progress, cancelled, cancel_exc) -> TrainingLog:
        """The loop: a step per batch, validation at eval_every / epoch ends / the last step."""
        self.loss_fn.train()
        for step in range(1, self.total + 1):
            if cancelled():
                raise cancel_exc
            batch, epoch_ended = self.next_batch()
            record = self.step(step, batch)
            add_tokens(record.tokens)  # the worker's token budget counts training too
            self.log.step_log.append(record)
            self.log.train_s += record.seconds
            progress(self.train_event(record))
            due = (
                epoch_ended
                or step == self.total
                or (self.cfg.eval_every and step % self.cfg.eval_every == 0)
            )
            if due and self.validate(step, progress):
                self.log.stopped_early = True
                break
        self.log.steps_done = len(self.log.step_log)
        self.restore_best()
        return self.log

    def next_batch(self) -> tuple[list[int], bool]:
        """This process's examples for the next step, and whether they end an epoch."""
        if not self.queue:
            global_size = self.cfg.batch_size * self.world
            self.queue = length_grouped_batches(
                self.lengths, global_size, self.cfg.seed, self.epoch
            )
            self.epoch += 1
        batch = self.queue.pop(0)
        return process_share(batch, self.lengths, self.rank, self.world), not self.queue

    def step(self, step: int, batch: list[int]) -> TrainStep:
        """One optimisation step over this process's `batch`."""
        import torch

        t0 = time.perf_counter()
        if self.on_cuda:
            torch.cuda.reset_peak_memory_stats()
        record = self.accumulate(batch)
        self.acc.clip_grad_norm_(self.loss_fn.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        record.step = step
        record.seconds = round(time.perf_counter() - t0, 4)
        return record

    def accumulate(self, batch: list[int]) -> TrainStep:
        """Gradients of the mean loss per answer token of the whole step (every process's
        batch), accumulated over micro-batches; the step's figures, summed over processes."""
        import torch

        parts = micro_batches(batch, self.lengths, self.plan.micro_batch_tokens)
        # Each micro-batch's summed loss is divided by the loss tokens of the whole step, so
        # accumulation equals one full batch; DDP averages over processes, hence x world.
        n_local = sum(loss_tokens(self.examples[i]) for i in batch)
        n_all = float(self.acc.reduce(torch.tensor(float(n_local), device=self.acc.device), "sum"))
        scale = self.world / max(n_all, 1.0)
        sums = torch.zeros(3, dtype=torch.float64, device=self.acc.device)  # loss, tokens, useful
        peak = 0.0
        for k, part in enumerate(parts):
            ids, labels, mask = (
                t.to(self.acc.device)
                for t in pad_right([self.examples[i] for i in part], self.pad_id)
            )
            # Gradients are synchronised between processes on the last micro-batch only.
            last = k == len(parts) - 1
            with contextlib.nullcontext() if last else self.acc.no_sync(self.loss_fn):
                loss, _ = self.loss_fn(ids, labels, mask)
                peak = max(peak, self.memory_mb())  # activations are held here, before backward
                self.acc.backward(loss * scale)
            done = [float(loss.detach()), ids.numel(), float(mask.sum())]
            sums += torch.tensor(done, dtype=torch.float64, device=self.acc.device)
        sums = self.acc.reduce(sums, "sum")
        return TrainStep(
            step=0,
            loss=round(float(sums[0]) / max(n_all, 1.0), 5),
            tokens=int(sums[1]),
            useful_tokens=int(sums[2]),
            loss_tokens=int(n_all),
            peak_memory_mb=round(max(peak, self.memory_mb()), 1),
            micro_batches=len(parts),
        )

    def memory_mb(self) -> float:
        """Allocator peak on CUDA, resident memory of this process on the CPU."""
        if self.on_cuda:
            import torch

            return torch.cuda.max_memory_allocated() / 2**20
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    def train_event(self, record: TrainStep) -> dict[str, Any]:
        done = len(self.log.step_log)
        return {
            "stage": "train",
            "step": record.step,
            "steps": self.total,
            "loss": record.loss,
            "tokens_per_s": round(record.useful_tokens_per_s, 1),
            "eta_s": self.log.train_s / done * (self.total - done),
        }

    def validate(self, step: int, progress) -> bool:
        """Record the validation loss at `step`; True when training should stop early."""
        if not self.val_examples:
            return False
        t = time.perf_counter()
        sums, tokens = example_losses(
            self.acc.unwrap_model(self.loss_fn),
            self.val_examples[self.rank :: self.world],
            self.pad_id,
            self.acc,
            self.plan.micro_batch_tokens,
        )
        loss = sum(sums) / max(sum(tokens), 1)
        self.log.eval_s += time.perf_counter() - t
        self.log.eval_curve.append({"step": step, "loss": round(loss, 5)})
        self.last = (step, round(loss, 5), sums, tokens)
        progress(
            {"stage": "validate", "step": step, "steps": self.total, "eval_loss": round(loss, 5)}
        )
        if self.lowest is None or loss < self.lowest[1]:
            self.lowest, self.bad_evals = (step, round(loss, 5), sums), 0
            state = dict(self.model.named_parameters())
            self.best_state = {n: state[n].detach().clone() for n in self.trainable}
            return False
        self.bad_evals += 1
        return bool(self.cfg.patience) and self.bad_evals >= self.cfg.patience

    def restore_best(self) -> None:
        """Keep the last validated weights unless the lowest validation loss is earlier and,
        under `restore` 'evidence', lower with a paired 95% bound: on the sample's 29 pairs
        a lead of 0.001 restored half the training and halved test F1."""
        import torch

        if self.lowest is None or self.last is None:
            return
        (step, loss, sums), (last_step, last_loss, last_sums, tokens) = self.lowest, self.last
        self.log.best_step, self.log.best_eval_loss = last_step, last_loss
        if step == last_step:
            return
        if self.cfg.restore == "evidence":
            better, (diff, low, high) = earlier_is_better(sums, last_sums, tokens, self.cfg.seed)
            shown = f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]"
            if not better:
                self.log.checkpoint_note = (
                    f"kept step {last_step}'s weights: step {step}'s lower validation loss "
                    f"({loss} against {last_loss}, the last minus it {shown} per answer token) "
                    "is within noise"
                )
                return
            self.log.checkpoint_note = (
                f"restored step {step}'s weights: the last step's validation loss is higher "
                f"by {shown} per answer token"
            )
        else:
            self.log.checkpoint_note = f"restored step {step}'s weights: the lowest validation loss"
        self.log.best_step, self.log.best_eval_loss = step, loss
        state = dict(self.model.named_parameters())
        with torch.no_grad():
            for n, value in self.best_state.items():
                state[n].copy_(value)

    def close(self) -> None:
        """Eval mode, checkpointing off, accelerate's references to model and optimiser dropped."""
        self.model.eval()
        self.undo_swaps()
        if self.plan.checkpointing:
            disable = getattr(self.model, "activation_checkpointing_disable", None)
            (disable or self.model.gradient_checkpointing_disable)()
        self.acc.free_memory()
        self.log.eval_s = round(self.log.eval_s, 3)
        self.log.train_s = round(self.log.train_s, 3)


def _enable_checkpointing(model: Any) -> None:
    """Non-reentrant activation checkpointing, under the name this transformers version uses
    (`activation_checkpointing_*` from 5.2x on; the older `gradient_checkpointing_*` warns)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def causal_lm_config(model: Any) -> Any:
    """The transformers config of `model` (peft-wrapped or not)."""
    get_base = getattr(model, "get_base_model", None)
    return (get_base() if callable(get_base) else model).config


def validation_loss(loss_fn, shard: list[Example], pad_id: int, acc, max_tokens: int) -> float:
    """Mean loss per answer token over every process's `shard`, in length-sorted micro-batches.

    `loss_fn` is an `AnswerLoss` or a (peft) model, which is then wrapped in one.
    """
    sums, tokens = example_losses(loss_fn, shard, pad_id, acc, max_tokens)
    return float(sum(sums) / max(sum(tokens), 1))


def example_losses(
    loss_fn, shard: list[Example], pad_id: int, acc, max_tokens: int
) -> tuple[list[float], list[int]]:
    """Each validation example's summed answer-token loss and its loss tokens, over every
    process's `shard` (gathered, in the same order at every validation of a run)."""
    import torch

    from strategies.lora.answer_loss import AnswerLoss, row_losses  # torch, on first use

    if not isinstance(loss_fn, AnswerLoss):
        loss_fn = AnswerLoss(loss_fn)
    was_training = loss_fn.training
    loss_fn.eval()
    lengths = [len(ids) for ids, _ in shard]
    parts = micro_batches(range(len(shard)), lengths, max_tokens) if shard else []
    batches = (pad_right([shard[i] for i in part], pad_id) for part in parts)
    sums, counts = row_losses(loss_fn, batches, acc.device)
    if was_training:
        loss_fn.train()
    order = [i for part in parts for i in part]  # micro-batches are length-sorted
    rows = sorted(zip(order, sums, counts, strict=True))
    local = torch.tensor([[s, n] for _, s, n in rows], dtype=torch.float64, device=acc.device)
    if acc.num_processes > 1:  # shards differ by one example at most: padded, then gathered
        local = acc.gather(acc.pad_across_processes(local.reshape(-1, 2), dim=0, pad_index=-1))
    kept = [(float(s), int(n)) for s, n in local.reshape(-1, 2).tolist() if n >= 0]
    return [s for s, _ in kept], [n for _, n in kept]


def earlier_is_better(
    earlier: list[float], last: list[float], tokens: list[int], seed: int, resamples: int = 2000
) -> tuple[bool, tuple[float, float, float]]:
    """Whether the last validation's loss per answer token is higher than an earlier one's with
    a 95% paired bootstrap bound above 0 (examples resampled, each with its own two losses and
    tokens); and that difference (last minus earlier) with its interval."""
    import numpy as np
    from scipy.stats import bootstrap

    a, b = np.asarray(earlier, dtype=float), np.asarray(last, dtype=float)
    n = np.asarray(tokens, dtype=float)

    def per_token(a, b, n, axis=-1):
        return (b.sum(axis=axis) - a.sum(axis=axis)) / np.maximum(n.sum(axis=axis), 1.0)

    diff = float(per_token(a, b, n))
    if len(a) < 2:
        return False, (diff, diff, diff)
    ci = bootstrap(
        (a, b, n),
        per_token,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    low, high = float(ci.low), float(ci.high)
    return low > 0, (diff, low, high)
