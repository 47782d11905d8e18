"""Model loading: the tiny model (fast) and the real bundled defaults (slow)."""

from __future__ import annotations

import pytest

from core.config import ModelConfig
from core.engines.in_process import ModelLoadError, load_embedder, load_generator, load_tokenizer


def test_models_are_shared_not_reloaded(tiny_models):
    assert load_generator(tiny_models) is load_generator(tiny_models)
    assert load_embedder(tiny_models) is load_embedder(tiny_models)
    assert load_tokenizer(tiny_models) is load_generator(tiny_models).tokenizer


def test_tiny_generator_batches_with_chat_template(tiny_models):
    gen = load_generator(tiny_models)
    convs = [
        [{"role": "user", "content": "short"}],
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a longer one"}],
    ]
    assert "<|im_start|>assistant" in gen.render(convs[0])
    out = gen.generate(convs, max_new_tokens=5)
    assert len(out) == 2
    assert out[0].prompt_tokens < out[1].prompt_tokens
    assert all(1 <= g.output_tokens <= 5 for g in out)
    # left padding must not change an answer: alone or batched, the same greedy output
    assert gen.generate(convs[:1], max_new_tokens=5)[0].text == out[0].text


def test_cpu_uses_float32(tiny_models):
    import torch

    gen = load_generator(tiny_models)
    assert gen.device == "cpu"
    assert next(gen.model.parameters()).dtype == torch.float32


def test_a_missing_model_is_a_clear_error(tmp_path):
    cfg = ModelConfig(generator=str(tmp_path / "no-such-model"), cache_dir=str(tmp_path))
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_generator(cfg)


def test_any_local_folder_works_as_generator(tiny_models, tmp_path):
    from core.engines.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path / "my-model")
    gen = load_generator(ModelConfig(generator=str(folder), cache_dir=str(tmp_path)))
    assert gen.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=3)


@pytest.mark.slow
def test_real_default_models_answer_a_question():
    """The bundled SmolLM2-135M-Instruct and MiniLM, fully offline."""
    cfg = ModelConfig()
    gen = load_generator(cfg)
    out = gen.generate(
        [
            [
                {"role": "system", "content": "Answer with a short phrase only."},
                {"role": "user", "content": "What is the capital of France?"},
            ]
        ],
        max_new_tokens=12,
    )[0]
    assert "paris" in out.text.lower()
    emb = load_embedder(cfg)
    v = emb.encode(
        [
            "The thymus is where T cells mature.",
            "T cells mature in the thymus.",
            "Pharmacists dispense medicines.",
        ]
    )
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2


@pytest.mark.gpu
def test_cuda_uses_bfloat16_and_trains(tmp_path):
    """On a GPU: bf16 weights, generation, and a LoRA step with gradient checkpointing."""
    import torch

    from core.config import ChunkingConfig
    from core.corpus import hf_token_spans, ingest
    from core.types import QAPair
    from strategies import create_strategy
    from strategies.base import StrategyContext

    cfg = ModelConfig(generator="tiny", device="cuda", cache_dir=str(tmp_path))
    gen = load_generator(cfg)
    assert next(gen.model.parameters()).dtype == torch.bfloat16
    assert gen.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=3)
    (tmp_path / "d.txt").write_text("The thymus is where T cells mature.")
    corpus = ingest(tmp_path / "d.txt", ChunkingConfig(), hf_token_spans(gen.tokenizer))
    ctx = StrategyContext(models=cfg, workdir=tmp_path)
    lora = create_strategy("lora", {"epochs": 2, "batch_size": 1}, ctx)
    pairs = [QAPair("1", "Where do T cells mature?", ("the thymus",))]
    report = lora.prepare(corpus, pairs)
    assert report.training.device == "cuda" and len(report.training.losses) == 2
    assert lora.answer(["Where do T cells mature?"])[0].cost.output_tokens >= 1
    lora.close()


def test_an_answer_cut_by_the_token_limit_is_marked(tiny_models):
    from core.engines.in_process import load_generator

    gen = load_generator(tiny_models)
    prompts = [[{"role": "user", "content": f"Question {i}?"}] for i in range(6)]
    for limit in (1, 3, 64):
        for g in gen.generate(prompts, limit):
            # cut <=> every slot holds an answer token: as many output tokens as the limit
            # and no stop among them (a stop would be counted, with nothing after it)
            assert not g.truncated or g.output_tokens == limit, (limit, g)
            if g.output_tokens < limit:
                assert not g.truncated
    cut = [g.truncated for g in gen.generate(prompts, 1)]
    assert any(cut)  # the random model rarely emits a stop as its very first token
