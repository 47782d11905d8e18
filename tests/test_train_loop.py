"""The training loop's maths and batching: gathered loss, accumulation, length grouping, the
memory budget, SDPA, and generation sub-batches."""

from __future__ import annotations

import random
from contextlib import contextmanager

import pytest

from core.config import ModelConfig
from core.engines.in_process import load_generator
from strategies.lora import LoraStrategy, LoraStrategyConfig
from strategies.lora.batches import (
    IGNORE,
    ModelShape,
    length_grouped_batches,
    micro_batches,
    pad_right,
    plan_batches,
    process_share,
)
from strategies.lora.loop import _Run, train_adapter
from strategies.lora.settings import TrainingSettings


def _examples(n: int, seed: int = 0, vocab: int = 300) -> list[tuple[list[int], list[int]]]:
    """Random examples of varied length, the loss on the last few tokens (an 'answer')."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(6, 40)
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        answer = rng.randint(1, 4)
        out.append((ids, [IGNORE] * (length - answer) + ids[-answer:]))
    return out


@contextmanager
def lora_on_tiny(tiny_models, name: str, dropout: float):
    """(generator, peft model): the tiny model with a seeded r=4 adapter `name`, detached after."""
    gen = load_generator(tiny_models)
    import torch

    torch.manual_seed(0)
    peft_config = LoraStrategy(LoraStrategyConfig(r=4, dropout=dropout), None).peft_config()
    model = gen.attach_adapter(name, peft_config)
    try:
        yield gen, model
    finally:
        gen.detach_adapter(name)


@pytest.fixture
def tiny_lora(tiny_models):
    # dropout 0: the comparisons below need the same function on every call
    with lora_on_tiny(tiny_models, "loop-test", dropout=0.0) as pair:
        yield pair


def test_gathered_loss_equals_the_plain_model_loss(tiny_lora):
    from strategies.lora.answer_loss import AnswerLoss

    gen, model = tiny_lora
    ids, labels, mask = pad_right(_examples(6), gen.tokenizer.pad_token_id)
    import torch

    model.eval()
    loss_fn = AnswerLoss(model)
    assert loss_fn.gathered  # the decoder + LM head path, not the fallback
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        total, n = loss_fn(ids, labels, mask)
    assert int(n) == int((labels[:, 1:] != IGNORE).sum())
    assert float(total / n) == pytest.approx(float(plain), rel=1e-5)


@pytest.mark.slow
def test_gathered_loss_equals_the_plain_loss_on_the_default_model():
    import torch

    from strategies.lora.answer_loss import AnswerLoss

    gen = load_generator(ModelConfig())
    ids, labels, mask = pad_right(_examples(3, vocab=40000), gen.tokenizer.pad_token_id)
    with torch.no_grad():
        plain = gen.model(input_ids=ids, attention_mask=mask, labels=labels).loss
        total, n = AnswerLoss(gen.model)(ids, labels, mask)
    assert float(total / n) == pytest.approx(float(plain), rel=1e-4)


def _grads(model) -> dict:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_micro_batches_with_accumulation_give_the_full_batch_gradient(tiny_lora):
    gen, model = tiny_lora
    examples = _examples(8, seed=3)
    batch = list(range(8))
    # the reference: one padded batch through the plain model, the mean loss per answer token
    model.train()
    ids, labels, mask = pad_right(examples, gen.tokenizer.pad_token_id)
    model.zero_grad(set_to_none=True)
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    full = _grads(model)
    model.zero_grad(set_to_none=True)
    for budget_gb in (1e-7, 10.0):  # one example per micro-batch; the whole batch at once
        cfg = TrainingSettings(
            batch_size=8, memory_budget_gb=budget_gb, gradient_checkpointing=False
        )
        run = _Run(model, examples, [], cfg, gen.tokenizer.pad_token_id, "cpu")
        try:
            run.loss_fn.train()
            record = run.accumulate(batch)
            got = _grads(model)
            model.zero_grad(set_to_none=True)
        finally:
            run.close()
        assert (record.micro_batches > 4) if budget_gb < 1 else (record.micro_batches == 1)
        assert record.useful_tokens == sum(len(x) for x, _ in examples)
        for name, g in full.items():
            assert (got[name] - g).abs().max() <= 1e-5 + 1e-4 * g.abs().max(), name


def test_a_small_budget_turns_checkpointing_on(tiny_lora):
    shape = ModelShape(hidden=576, layers=30, heads=9, intermediate=1536)  # SmolLM2-135M
    roomy = plan_batches(shape, longest=700, memory_budget_gb=4.0)
    assert not roomy.checkpointing and roomy.micro_batch_tokens >= 2 * 700
    tight = plan_batches(shape, longest=700, memory_budget_gb=0.5)
    assert tight.checkpointing and tight.micro_batch_tokens >= 700
    never = plan_batches(shape, 700, 0.5, allow_checkpointing=False)
    assert not never.checkpointing and never.micro_batch_tokens == 700  # one example at a time
    gen, model = tiny_lora
    cfg = TrainingSettings(batch_size=4, max_steps=3, learning_rate=1e-2, memory_budget_gb=1e-6)
    log = train_adapter(
        model, _examples(8), [], cfg, pad_id=gen.tokenizer.pad_token_id, device="cpu"
    )
    assert log.checkpointing and log.steps_done == 3 and log.memory_budget_gb == 1e-6
    assert all(s.micro_batches > 1 for s in log.step_log)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def test_length_grouping_keeps_every_example_once_per_epoch():
    rng = random.Random(1)
    lengths = [rng.randint(5, 800) for _ in range(157)]
    epochs = [length_grouped_batches(lengths, 8, seed=2, epoch=e) for e in range(3)]
    for batches in epochs:
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(157))
        assert len(batches) == -(-157 // 8) and all(1 <= len(b) <= 8 for b in batches)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    assert length_grouped_batches(lengths, 8, seed=2, epoch=1) == epochs[1]  # seeded

    def padding(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches) / sum(lengths) - 1

    order = list(range(157))
    random.Random(0).shuffle(order)
    plain = [order[i : i + 8] for i in range(0, 157, 8)]
    assert padding(epochs[0]) < 0.5 * padding(plain)


def test_micro_batches_and_process_shares_cover_a_batch():
    lengths = [10, 50, 20, 40, 30, 5]
    parts = micro_batches(range(6), lengths, max_tokens=100)
    assert sorted(i for p in parts for i in p) == list(range(6))
    assert all(len(p) * max(lengths[i] for i in p) <= 100 for p in parts)
    assert micro_batches([1], lengths, max_tokens=10) == [[1]]  # too long: alone, never dropped
    shares = [process_share([0, 1, 2, 3, 4], lengths, r, 2) for r in range(2)]
    assert sorted(shares[0] + shares[1]) == [0, 1, 2, 3, 4]
    assert process_share([3], lengths, 1, 2) == [3]  # a short last batch repeats its examples


def test_the_loaded_model_attends_through_sdpa(tiny_models):
    assert load_generator(tiny_models).model.config._attn_implementation == "sdpa"


def test_generation_sub_batches_keep_the_order(tiny_models):
    gen = load_generator(tiny_models)
    convs = [[{"role": "user", "content": "word " * n + "?"}] for n in (30, 1, 12, 2, 25, 5)]
    together = gen.generate(convs, max_new_tokens=4)
    gen.generate_token_budget = 40  # forces sub-batches of one or two prompts
    try:
        apart = gen.generate(convs, max_new_tokens=4)
    finally:
        gen.generate_token_budget = 8192
    assert [g.prompt_tokens for g in apart] == [g.prompt_tokens for g in together]
    sizes = [30, 1, 12, 2, 25, 5]  # prompt lengths follow the words asked for, in input order
    by_size = [g.prompt_tokens for _, g in sorted(zip(sizes, apart, strict=True))]
    assert by_size == sorted(by_size) and len(set(by_size)) == len(sizes)
    assert [g.text for g in apart] == [g.text for g in together]
    singles = [gen.generate([c], max_new_tokens=4)[0].text for c in convs]
    assert [g.text for g in apart] == singles
