"""LoRA training modes, validation and early stopping, DDP on two CPU processes, deployment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ModelConfig
from core.engines.in_process import load_generator
from core.prompts import answer_messages
from core.qa import split_validation
from strategies import create_strategy
from strategies.base import RunCancelled, StrategyContext
from strategies.lora import LoraStrategy
from strategies.lora.data import oracle_passage
from strategies.lora.deploy import export_adapter_zip, merge_adapter, sizes, unpack_adapter_zip
from tests.conftest import zip_bytes

ROOT = Path(__file__).resolve().parents[1]
FAST = {"val_fraction": 0.0, "eval_every": 0, "r": 4}


@pytest.fixture
def setup(chunked_mini, tiny_models, tmp_path):
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path / "work")
    return *chunked_mini, ctx


@pytest.mark.parametrize("mode", ["qa", "cpt", "mix", "raft"])
def test_each_mode_overfits_a_handful_of_examples(setup, mode):
    corpus, pairs, ctx = setup
    settings = {**FAST, "mode": mode, "learning_rate": 2e-2, "batch_size": 16}
    lora = create_strategy("lora", {**settings, "max_steps": 12, "epochs": 100}, ctx)
    try:
        report = lora.prepare(corpus, pairs[:4])
    finally:
        lora.close()
    d, log = report.details, report.training
    assert d["mode"] == mode == log.mode and log.steps_done == 12
    assert log.losses[-1] < log.losses[0]
    assert (d["chunk_examples"] > 0) == (mode in ("cpt", "mix"))
    assert (d["qa_examples"] > 0) == (mode != "cpt")


def test_train_on_chunks_still_means_mix(setup):
    corpus, pairs, ctx = setup
    lora = create_strategy("lora", {**FAST, "train_on_chunks": True, "max_steps": 1}, ctx)
    try:
        d = lora.prepare(corpus, pairs[:3]).details
    finally:
        lora.close()
    assert d["mode"] == "mix" and d["qa_examples"] == 3 and d["chunk_examples"] > 0


def test_raft_examples_carry_the_oracle_and_distractors(setup):
    corpus, pairs, ctx = setup
    lora = create_strategy(
        "lora", {"mode": "raft", "max_seq_tokens": 2048, "raft_no_oracle": 0.4}, ctx
    )
    lora.set_system_prompt(corpus)
    examples, info = lora._examples(corpus, pairs, "raft")
    tok = ctx.generator.tokenizer
    texts = [tok.decode(ids) for ids, _ in examples]
    assert len(texts) == len(pairs)
    with_oracle = [
        t for t, p in zip(texts, pairs, strict=True) if oracle_passage(p, corpus).text in t
    ]
    assert len(with_oracle) >= 0.5 * len(pairs)
    assert len(with_oracle) < len(pairs)  # raft_no_oracle leaves some out
    assert info["raft"]["raft_with_oracle"] == len(with_oracle)
    assert all(t.count("Passage from") >= 2 for t in texts)  # oracle + distractor(s)
    # the prompt is the one RAG answers with
    p = pairs[0]
    assert "Read the passages" in texts[0] and f"Question: {p.question}" in texts[0]
    assert answer_messages(p.question, lora.system)[0]["content"] in texts[0]


def test_validation_split_is_disjoint_and_seeded(setup):
    corpus, pairs, ctx = setup
    fit, held = split_validation(pairs, 0.3, seed=1)
    assert len(held) == 3 and len(fit) == 7
    assert not {p.id for p in fit} & {p.id for p in held}
    assert {p.id for p in fit} | {p.id for p in held} == {p.id for p in pairs}
    assert split_validation(pairs, 0.3, seed=1) == (fit, held)
    assert split_validation(pairs, 0.0, seed=1) == (pairs, [])
    lora = create_strategy("lora", {"val_fraction": 0.3, "seed": 1, "max_steps": 2}, ctx)
    try:
        report = lora.prepare(corpus, pairs)
    finally:
        lora.close()
    log = report.training
    assert log.val_examples == 3 and report.details["qa_examples"] == 7
    assert log.eval_curve and log.eval_curve[-1]["step"] == 2


def test_early_stopping_keeps_the_best_checkpoint(setup):
    corpus, pairs, ctx = setup
    events = []
    ctx.progress = events.append
    cfg = {"learning_rate": 0.5, "val_fraction": 0.3, "eval_every": 1, "patience": 1}
    cfg["restore"] = "lowest"  # the lowest loss however small its lead (evidence: below)
    lora = create_strategy("lora", {**cfg, "max_steps": 40, "batch_size": 2, "epochs": 50}, ctx)
    try:
        log = lora.prepare(corpus, pairs).training
        curve = [e["loss"] for e in log.eval_curve]
        assert log.stopped_early and log.steps_done < 40
        assert log.best_eval_loss == min(curve)
        assert curve[-1] > log.best_eval_loss  # stopped on a worse evaluation
        # the saved (restored) adapter scores the best loss on the validation set again
        from accelerate import Accelerator

        from core.qa import split_validation
        from strategies.lora.loop import validation_loss

        _, held = split_validation(pairs, 0.3, 0)
        val, _ = lora._examples(corpus, held, "qa")
        gen = ctx.generator
        acc = Accelerator(cpu=True)
        with gen.using(lora.adapter) as model:
            again = validation_loss(model, val, gen.tokenizer.pad_token_id, acc, 512)
        assert again == pytest.approx(log.best_eval_loss, abs=1e-4)
    finally:
        lora.close()
    assert any(e["stage"] == "validate" and "eval_loss" in e for e in events)
    assert any(
        e["stage"] == "train" and {"step", "steps", "loss", "eta_s", "tokens_per_s"} <= set(e)
        for e in events
    )


def test_training_is_cancellable_between_steps(setup):
    corpus, pairs, ctx = setup
    ctx.cancelled = lambda: True
    lora = create_strategy("lora", {"max_steps": 5}, ctx)
    with pytest.raises(RunCancelled):
        lora.prepare(corpus, pairs)
    lora.close()
    assert ctx.generator.peft_model is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_training_gives_a_loadable_adapter(mini_corpus, tiny_models, tmp_path):
    corpus_dir, qa_path = mini_corpus
    load_generator(tiny_models)  # the tiny model is built into the cache before the processes
    out = tmp_path / "adapter"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "strategies.lora.train",
        "--corpus", str(corpus_dir), "--qa", str(qa_path), "--out", str(out),
        "--generator", "tiny", "--cache-dir", tiny_models.cache_dir,
        "--set", "epochs=2", "--set", "batch_size=2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert report["processes"] == 2
    assert report["steps"] == 6  # ceil(9 examples / (2 per step x 2 processes)) x 2 epochs
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in out.iterdir()}
    gen = load_generator(tiny_models)
    gen.load_adapter("ddp", out)
    try:
        conv = [[{"role": "user", "content": "Where do T cells mature?"}]]
        assert gen.generate(conv, max_new_tokens=4, adapter="ddp")[0].output_tokens >= 1
    finally:
        gen.detach_adapter("ddp")


@pytest.fixture
def trained(setup):
    corpus, pairs, ctx = setup
    lora = create_strategy("lora", {**FAST, "epochs": 4, "learning_rate": 2e-2}, ctx)
    report = lora.prepare(corpus, pairs)
    qs = [p.question for p in pairs[:4]]
    answers = [a.text for a in lora.answer(qs)]
    lora.close()
    return corpus, pairs, ctx, report, qs, answers


def test_exported_zip_loads_back_with_identical_answers(trained, tmp_path):
    corpus, pairs, ctx, report, qs, answers = trained
    data = export_adapter_zip(report.artifact_path)
    folder = unpack_adapter_zip(data, tmp_path / "upload")
    loaded = create_strategy("lora", {"adapter_path": str(folder)}, ctx)
    try:
        rep = loaded.prepare(corpus, pairs)
        assert rep.details["loaded from"] == str(folder) and "warning" not in rep.details
        assert rep.training is None  # nothing was trained
        assert [a.text for a in loaded.answer(qs)] == answers
    finally:
        loaded.close()
    reused = LoraStrategy.reuse_config(
        loaded.config.replace(adapter_path=""), {"artifact_path": "x"}
    )
    assert reused.adapter_path == "x"


def test_adapter_for_another_base_model_is_flagged(trained, tmp_path):
    corpus, pairs, ctx, report, *_ = trained
    folder = unpack_adapter_zip(export_adapter_zip(report.artifact_path), tmp_path / "a")
    cfg_file = folder / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = "someone/other-model"
    cfg_file.write_text(json.dumps(cfg))
    loaded = create_strategy("lora", {"adapter_path": str(folder)}, ctx)
    try:
        assert "other-model" in loaded.prepare(corpus, pairs).details["warning"]
    finally:
        loaded.close()
    missing = create_strategy("lora", {"adapter_path": str(tmp_path / "nope")}, ctx)
    with pytest.raises(ValueError, match="not a folder"):
        missing.prepare(corpus, pairs)


def test_merged_model_answers_like_base_plus_adapter(trained, tmp_path):
    corpus, pairs, ctx, report, qs, answers = trained
    out = merge_adapter(ctx.models, report.artifact_path, tmp_path / "merged")
    merged = ModelConfig(generator=str(out), cache_dir=ctx.models.cache_dir, max_new_tokens=8)
    lora = create_strategy("lora", {}, ctx)
    lora.set_system_prompt(corpus)
    convs = [answer_messages(q, lora.system) for q in qs]
    from core.prompts import clean_answer

    got = [clean_answer(g.text) for g in load_generator(merged).generate(convs, 8)]
    assert got == answers
    s = sizes(ctx.models, report.artifact_path, out)
    assert s["adapter_bytes"] == report.artifact_bytes
    assert s["merged_bytes"] > s["adapter_bytes"] and s["base_bytes"] > s["adapter_bytes"]
    assert sizes(ctx.models, report.artifact_path)["merged_bytes"] is None


def test_unpack_rejects_unsafe_or_incomplete_zips(tmp_path):
    evil = zip_bytes({"adapter_config.json": b"{}", "../escape.txt": b"x"})
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_adapter_zip(evil, tmp_path / "a")
    assert not (tmp_path / "escape.txt").exists()
    with pytest.raises(ValueError, match="adapter_config.json"):
        unpack_adapter_zip(zip_bytes({"adapter_model.safetensors": b"x"}), tmp_path / "b")
    with pytest.raises(ValueError, match="not a zip"):
        unpack_adapter_zip(b"not a zip at all", tmp_path / "c")
    with pytest.raises(ValueError, match="MB"):
        unpack_adapter_zip(
            zip_bytes({"adapter_config.json": b"{}" * 100}), tmp_path / "d", max_bytes=50
        )
    nested = unpack_adapter_zip(zip_bytes({"run/adapter_config.json": b"{}"}), tmp_path / "e")
    assert nested == tmp_path / "e" / "run"


def test_an_earlier_checkpoint_is_restored_only_on_evidence():
    from strategies.lora.loop import earlier_is_better

    tokens = [10] * 30
    last = [20.0 + (i % 3) for i in range(30)]
    # Lower on every example by 0.1 a token: restored.
    better, (diff, low, high) = earlier_is_better([x - 1.0 for x in last], last, tokens, seed=0)
    assert better and diff == pytest.approx(0.1) and low == pytest.approx(0.1) == high
    # The sample's case: lower on average by 0.001 a token, example losses scattered around it.
    noisy = [x - 0.01 + (0.5 if i % 2 else -0.5) for i, x in enumerate(last)]
    better, (diff, low, high) = earlier_is_better(noisy, last, tokens, seed=0)
    assert not better and diff == pytest.approx(0.001) and low < 0 < high
    assert earlier_is_better([1.0], [2.0], [1], seed=0)[0] is False  # one example: no interval


@pytest.mark.parametrize("lead", [0.001, 0.5])
def test_the_loop_keeps_the_last_weights_unless_the_lowest_loss_leads_beyond_noise(
    setup, monkeypatch, lead
):
    # Scripted validation losses per example (the first validation lowest by `lead` a token,
    # the examples scattered): the adapter keeps the last weights on a lead of 0.001, and the
    # first validation's on 0.5; the log and its note say which and why.
    import strategies.lora.loop as loop

    corpus, pairs, ctx = setup
    calls: list[int] = []

    def scripted(loss_fn, shard, pad_id, acc, max_tokens):
        calls.append(1)
        first = len(calls) == 1
        spread = [0.3, -0.3, 0.2, -0.2, 0.1, -0.1]
        if first:  # the same examples, each a different amount lower or higher
            return [2.0 + s - lead for s in reversed(spread)], [1] * 6
        return [2.0 + s for s in spread], [1] * 6

    monkeypatch.setattr(loop, "example_losses", scripted)
    cfg = {"val_fraction": 0.3, "eval_every": 1, "max_steps": 3, "batch_size": 2}
    lora = create_strategy("lora", cfg, ctx)
    try:
        log = lora.prepare(corpus, pairs).training
    finally:
        lora.close()
    assert [p["step"] for p in log.eval_curve] == [1, 2, 3]
    if lead < 0.01:
        assert log.best_step == 3 and log.checkpoint_note.startswith("kept step 3's weights")
        assert "within noise" in log.checkpoint_note
    else:
        assert log.best_step == 1 and log.checkpoint_note.startswith("restored step 1's")
        assert log.best_eval_loss == pytest.approx(1.5)
