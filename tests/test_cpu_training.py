"""The CPU training swaps: LoRA dropout masks from a byte stream, attention over repeated heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.integrations import sdpa_attention

from strategies.lora.answer_loss import AnswerLoss
from strategies.lora.batches import pad_right
from strategies.lora.cpu_swaps import MaskDropout, repeat_kv_heads_on_cpu, swap_lora_dropout
from strategies.lora.loop import train_adapter
from strategies.lora.settings import TrainingSettings
from tests.test_train_loop import _examples, lora_on_tiny


@pytest.fixture
def dropout_lora(tiny_models):
    with lora_on_tiny(tiny_models, "swap-test", dropout=0.05) as pair:
        yield pair


def test_mask_dropout_drops_p_and_scales_the_rest():
    torch.manual_seed(0)
    dropout = MaskDropout(0.05)
    y = dropout(torch.ones(1000, 1000))
    # a million draws: the drop share's standard deviation is 0.0002
    assert abs(float((y == 0).float().mean()) - 0.05) < 0.001
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.95))
    x = torch.ones(3, 4)
    assert dropout.eval()(x) is x and MaskDropout(0.0).train()(x) is x
    on_device = MaskDropout(0.5).train()(torch.ones(3, device="meta"))  # torch's dropout there
    assert on_device.device.type == "meta" and on_device.shape == (3,)


def test_the_gradient_goes_through_the_forward_mask_only():
    torch.manual_seed(1)
    x = torch.rand(64, 48) + 0.5  # no zeros of its own
    x.requires_grad_(True)
    y = MaskDropout(0.3)(x)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() / 0.7)
    assert 0.2 < float((y == 0).float().mean()) < 0.4


def test_torch_seed_fixes_the_masks_and_checkpointing_recomputes_them():
    dropout, w = MaskDropout(0.5), torch.randn(32, 32)

    def masks(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return dropout(torch.ones(32, 32))

    assert torch.equal(masks(3), masks(3)) and not torch.equal(masks(3), masks(4))

    def loss(x):
        return (dropout(x) @ w).pow(2).sum()

    grads = []
    for replay in (False, True):
        torch.manual_seed(7)
        x = torch.randn(16, 32, requires_grad=True)
        out = checkpoint(loss, x, use_reentrant=False) if replay else loss(x)
        out.backward()
        grads.append(x.grad)
    # a recomputation with other masks would give another gradient
    assert torch.equal(grads[0], grads[1])


def test_repeated_heads_give_the_same_loss_and_gradients(dropout_lora):
    gen, model = dropout_lora
    assert gen.model.config.num_key_value_heads < gen.model.config.num_attention_heads
    ids, labels, mask = pad_right(_examples(1, seed=5), gen.tokenizer.pad_token_id)
    model.eval()  # no dropout: both passes compute the same function
    loss_fn, results = AnswerLoss(model), []
    for repeat in (False, True):
        undo = repeat_kv_heads_on_cpu() if repeat else (lambda: None)
        try:
            model.zero_grad(set_to_none=True)
            loss, _ = loss_fn(ids, labels, mask)
            loss.backward()
            grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
            results.append((loss.detach(), grads))
        finally:
            undo()
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_overlapping_runs_put_the_original_switch_back_once():
    original = sdpa_attention.use_gqa_in_sdpa
    key = torch.zeros(1, 2, 3, 4)
    assert original(None, key, key)  # transformers' own choice for an unmasked CPU call
    first, second = repeat_kv_heads_on_cpu(), repeat_kv_heads_on_cpu()
    try:
        assert not sdpa_attention.use_gqa_in_sdpa(None, key, key)
        assert sdpa_attention.use_gqa_in_sdpa(None, key.to("meta"), key.to("meta"))
        first()
        first()  # a second call of the same restore changes nothing
        assert sdpa_attention.use_gqa_in_sdpa is not original
    finally:
        second()
    assert sdpa_attention.use_gqa_in_sdpa is original


def test_a_cpu_run_trains_with_the_swaps_and_takes_them_out(dropout_lora):
    gen, model = dropout_lora
    original = sdpa_attention.use_gqa_in_sdpa

    def dropouts() -> set[type]:
        return {
            type(d)
            for m in model.modules()
            if isinstance(getattr(m, "lora_dropout", None), nn.ModuleDict)
            for d in m.lora_dropout.values()
        }

    assert dropouts() == {nn.Dropout}
    seen = []

    def progress(event):
        if event.get("stage") == "train":
            seen.append((dropouts(), sdpa_attention.use_gqa_in_sdpa is original))

    cfg = TrainingSettings(batch_size=4, max_steps=2, learning_rate=1e-2, eval_every=0)
    log = train_adapter(
        model,
        _examples(8),
        [],
        cfg,
        pad_id=gen.tokenizer.pad_token_id,
        device="cpu",
        progress=progress,
    )
    assert log.steps_done == 2 and all(s.loss > 0 for s in log.step_log)
    assert seen == [({MaskDropout}, False)] * 2
    assert dropouts() == {nn.Dropout} and sdpa_attention.use_gqa_in_sdpa is original
    assert swap_lora_dropout(nn.Linear(2, 2))() is None  # nothing to swap, nothing to undo
