"""Real servers, not mocks: llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2
GGUF (fixture `llama_server`) and a Chroma server (`chroma_server`), both on loopback ports."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import ModelConfig
from core.engines.server import OpenAIGenerator, load_engine
from strategies import unservable_strategies
from strategies.base import StrategyContext
from strategies.rag import RagConfig, RagStrategy
from strategies.vector_stores import ChromaStore


def server_models(url: str, **kw) -> ModelConfig:
    # The bundled model names the local tokenizer: the server runs the same weights (GGUF).
    return ModelConfig(engine="openai", base_url=url, max_new_tokens=16, **kw)


def test_llama_server_answers_with_usage_and_reports_itself(llama_server):
    gen = load_engine(server_models(llama_server))
    info = gen.server_info()
    assert info.model_id.endswith(".gguf") and info.model_id in info.models
    assert info.kind == "openai-compatible"
    convs = [
        [{"role": "user", "content": "What is the capital of France? One word."}],
        [{"role": "user", "content": "Name a colour."}],
    ]
    out = gen.generate(convs, max_new_tokens=8)
    assert len(out) == 2 and all(g.text.strip() for g in out)
    assert all(g.prompt_tokens > 5 and 0 < g.output_tokens <= 8 for g in out)
    assert all(g.latency_s and g.latency_s > 0 for g in out)
    # The local tokenizer (the bundled model's) counts the prompt the server saw, give or take
    # the chat template's wrapping.
    assert gen.count_tokens(convs[0][0]["content"]) < out[0].prompt_tokens


def test_llama_server_cannot_serve_adapters_and_says_so_before_a_run(llama_server):
    cfg = server_models(llama_server)
    msg = unservable_strategies(cfg, ["system_prompt", "rag", "lora", "lora+rag"])
    assert msg is not None and msg.startswith("lora, lora+rag cannot run on engine 'openai'")
    assert llama_server in msg
    assert not OpenAIGenerator(cfg).serves_adapters


@pytest.mark.slow
def test_comparison_end_to_end_through_llama_server(llama_server, mini_corpus, tmp_path):
    from eval.config import RunConfig
    from eval.run.harness import run_comparison
    from eval.store.runs import RunStore

    corpus, qa = mini_corpus
    cfg = RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": ["system_prompt", "few_shot", "rag"],
            "strategy_configs": {"few_shot": {"k": 2}},
            "models": server_models(llama_server).to_dict(),
            "split": {"test_fraction": 0.3},
            "batch_size": 4,
            "store_path": str(tmp_path / "runs.sqlite"),
            "workdir": str(tmp_path / "work"),
            "bootstrap_resamples": 200,
            "retention_questions": 2,
            "tuning": {"budget": "off"},
        }
    )
    run = RunStore(cfg.store_path).get_run(run_comparison(cfg))
    assert run.status == "done"
    assert run.meta.models["base_params"] is None  # no local weights on a server engine
    answers = RunStore(cfg.store_path).get_answers(run.id)
    for r in run.results:
        assert r.status == "done", r.error
        mine = [a for a in answers if a.strategy == r.strategy]
        assert len(mine) == 3
        assert all(
            a.answer.cost.prompt_tokens > 0 and a.answer.cost.output_tokens > 0 for a in mine
        )
    shots = [a for a in answers if a.strategy == "few_shot"]
    assert all(any(c.kind == "shot" for c in a.answer.contexts) for a in shots)
    rag = [a for a in answers if a.strategy == "rag"]
    assert all(a.answer.contexts for a in rag)
    # Few-shot and RAG prompts are longer than the bare system prompt's: the server counted them.
    base = {a.qid: a.answer.cost.prompt_tokens for a in answers if a.strategy == "system_prompt"}
    assert all(a.answer.cost.prompt_tokens > base[a.qid] for a in rag)


def test_chroma_server_store_indexes_and_queries(chroma_server, tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(20, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"c{i}" for i in range(20)]
    store = ChromaStore(tmp_path / "idx", 8, server=chroma_server)
    store.add(ids, vecs, [{"source": f"d{i % 3}"} for i in range(20)])
    assert len(store) == 20 and store.size_bytes() == 0
    assert not (tmp_path / "idx").exists()  # nothing written locally: the server holds it
    hits = store.search(vecs[[3, 7]], k=2)
    assert [h[0][0] for h in hits] == ["c3", "c7"]
    assert hits[0][0][1] == pytest.approx(1.0, abs=1e-4)
    # A rebuild of the same index starts empty, as the embedded store's fresh folder does.
    again = ChromaStore(tmp_path / "idx", 8, server=chroma_server)
    assert len(again) == 0
    # Another build path is another collection: the first one's vectors are untouched by it.
    other = ChromaStore(tmp_path / "other", 8, server=chroma_server)
    other.add(ids[:2], vecs[:2], [{"source": "d"}, {"source": "d"}])
    assert len(other) == 2 and len(again) == 0


def test_rag_retrieves_through_a_chroma_server(chroma_server, chunked_mini, tiny_models, tmp_path):
    corpus, _ = chunked_mini
    host, port = chroma_server
    rag = RagStrategy(
        RagConfig(backend="chroma", chroma_host=host, chroma_port=port, top_k=2),
        StrategyContext(models=tiny_models, workdir=tmp_path),
    )
    report = rag.prepare(corpus, [])
    assert report.details["chunks_indexed"] == len(corpus.chunks)
    assert report.details["server"] == f"{host}:{port}"
    [hits] = rag.retrieve(["Where do T cells mature?"])
    assert any("thymus" in c.text for c in hits)


def test_unreachable_chroma_server_is_named(tmp_path):
    from tests.conftest import _free_port

    port = _free_port()
    with pytest.raises(ValueError, match=f"Chroma server at 127.0.0.1:{port}"):
        ChromaStore(tmp_path / "idx", 8, server=("127.0.0.1", port))


def test_chroma_host_needs_the_chroma_backend():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="chroma_host applies to backend chroma"):
        RagConfig(backend="faiss", chroma_host="localhost")


def test_hybrid_rag_through_a_chroma_server_keeps_its_lexical_index_local(
    chroma_server, chunked_mini, tiny_models, tmp_path
):
    from strategies.lexical import LexicalIndex

    corpus, _ = chunked_mini
    host, port = chroma_server
    rag = RagStrategy(
        RagConfig(
            backend="chroma", chroma_host=host, chroma_port=port, top_k=2, retriever="hybrid"
        ),
        StrategyContext(models=tiny_models, workdir=tmp_path),
    )
    report = rag.prepare(corpus, [])
    assert report.details["server"] == f"{host}:{port}" and report.details["retriever"] == "hybrid"
    lexical = report.details["lexical_index"]
    assert lexical.startswith(str(tmp_path))  # on this machine, beside the vector store's path
    assert LexicalIndex.load(lexical).ids == [c.id for c in corpus.chunks]
    assert report.artifact_bytes == LexicalIndex.size_bytes(lexical) > 0  # vectors: the server's
    [hits] = rag.retrieve(["Where do T cells mature?"])
    assert any("thymus" in c.text for c in hits)
    # Rebuilt with the vector collection: a second prepare answers the same.
    rag.prepare(corpus, [])
    assert [c.text for c in rag.retrieve(["Where do T cells mature?"])[0]] == [c.text for c in hits]
