"""Lexical, hybrid and diversified retrieval: BM25 scores, fusion, MMR, the rag strategy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cli.main import summary_with_diagnostics
from core.tuning_space import spaces_of
from eval.config import RunConfig
from eval.run.harness import run_comparison
from eval.store.runs import RunStore
from eval.views import RunView, retrieval_recall
from strategies import create_strategy, get_strategy_class
from strategies.base import StrategyContext
from strategies.lexical import LexicalIndex
from strategies.rag import RagConfig
from strategies.ranking import mmr, reciprocal_rank_fusion, weighted_fusion

TEXTS = ["the cat sat on the mat", "dogs chase cats", "a cat and a cat"]


def test_bm25_scores_match_a_hand_computed_case():
    index = LexicalIndex(k1=1.5, b=0.75).build(["a", "b", "c"], TEXTS)
    # Terms after lower-casing and dropping stopwords (the, on, a, and):
    # a = [cat, sat, mat] (3), b = [dogs, chase, cats] (3), c = [cat, cat] (2); avgdl = 8/3.
    n, avgdl, k1, b = 3, 8 / 3, 1.5, 0.75

    def idf(df):
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def tf_part(tf, dl):
        return tf / (tf + k1 * (1 - b + b * dl / avgdl))

    want_a = idf(2) * tf_part(1, 3) + idf(1) * tf_part(1, 3)  # "cat" (df 2) and "mat" (df 1)
    want_c = idf(2) * tf_part(2, 2)  # "cat" twice, no "mat"
    got = index.scores("Cat on a mat?")
    assert got == pytest.approx([want_a, 0.0, want_c], rel=1e-5)
    assert [cid for cid, _ in index.search(["Cat on a mat?"], 5)[0]] == ["a", "c"]  # b: no word
    assert index.search(["zebra", "the"], 3) == [[], []]  # unknown words, stopwords only


def test_bm25_index_saved_and_loaded_answers_the_same(tmp_path):
    index = LexicalIndex().build(["a", "b", "c"], TEXTS)
    index.save(tmp_path / "bm25")
    again = LexicalIndex.load(tmp_path / "bm25")
    assert again.ids == ["a", "b", "c"]
    assert again.search(["cat mat", "dogs"], 3) == index.search(["cat mat", "dogs"], 3)
    assert LexicalIndex.size_bytes(tmp_path / "bm25") > 0


def test_fusion_order_on_a_constructed_example():
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    lexical = [("c", 10.0), ("a", 5.0), ("d", 1.0)]
    # RRF, k = 60: a = 1/61 + 1/62, c = 1/63 + 1/61, b = 1/62, d = 1/63.
    rrf = reciprocal_rank_fusion([dense, lexical], [1.0, 1.0])
    assert [c for c, _ in rrf] == ["a", "c", "b", "d"]
    assert dict(rrf)["a"] == pytest.approx(1 / 61 + 1 / 62)
    # Weighted sum of min-max scores: dense a 1, b .5, c 0; lexical c 1, a 4/9, d 0.
    even = weighted_fusion([dense, lexical], [0.5, 0.5])
    assert [c for c, _ in even] == ["a", "c", "b", "d"]
    assert dict(even)["a"] == pytest.approx(0.5 + 0.5 * 4 / 9)
    lexical_heavy = weighted_fusion([dense, lexical], [0.2, 0.8])  # c 0.8 beats a 0.2 + 0.36
    assert [c for c, _ in lexical_heavy] == ["c", "a", "b", "d"]
    # Rank fusion is flat at k = 60: at 0.9 / 0.1, c (0.9/63 + 0.1/61) still beats b (0.9/62);
    # the lexical ranking weighted out entirely leaves the dense order.
    assert [c for c, _ in reciprocal_rank_fusion([dense, lexical], [0.9, 0.1])][:3] == [
        "a",
        "c",
        "b",
    ]
    assert [c for c, _ in reciprocal_rank_fusion([dense, lexical], [1.0, 0.0])] == [
        "a",
        "b",
        "c",
        "d",
    ]


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_mmr_drops_a_near_duplicate_chunk():
    vectors = {
        "a": _unit([1, 0, 0]),
        "a_copy": _unit([1, 0.05, 0]),  # cosine 0.999 with a
        "b": _unit([0, 1, 0]),
        "c": _unit([0, 0, 1]),
    }
    ranking = [("a", 0.9), ("a_copy", 0.89), ("b", 0.7), ("c", 0.1)]
    assert [c for c, _ in mmr(ranking, vectors, 2, 1.0)] == ["a", "a_copy"]  # relevance only
    picked = mmr(ranking, vectors, 2, 0.5)
    assert picked == [("a", 0.9), ("b", 0.7)]  # the copy adds nothing; scores kept


@pytest.fixture
def setup(chunked_mini, tiny_models, tmp_path):
    return *chunked_mini, StrategyContext(models=tiny_models, workdir=tmp_path)


@pytest.mark.parametrize("retriever", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize("backend", ["faiss", "chroma"])
def test_each_retriever_finds_the_passage(setup, retriever, backend):
    corpus, _, ctx = setup
    rag = create_strategy("rag", {"retriever": retriever, "backend": backend, "top_k": 2}, ctx)
    report = rag.prepare(corpus, [])
    hits = rag.retrieve(["Where do T cells mature?", "What do antibodies bind?"])
    assert "thymus" in " ".join(c.text for c in hits[0])
    assert "antigens" in " ".join(c.text for c in hits[1])
    assert all(len(row) <= 2 for row in hits)
    assert [c.score for c in hits[0]] == sorted((c.score for c in hits[0]), reverse=True)
    assert report.details["retriever"] == retriever
    lexical = report.details["lexical_index"]
    assert (lexical is not None) == (retriever != "dense")
    if lexical:  # stored beside the vector index, from the same chunks
        assert Path(lexical).parent == Path(report.artifact_path).parent
        assert LexicalIndex.load(lexical).ids == [c.id for c in corpus.chunks]
    # BM25 alone (no MMR) embeds nothing: no vector store is built.
    assert (report.details["backend"] is None) == (retriever == "bm25")


def test_mmr_in_rag_keeps_a_duplicated_document_out_of_the_second_place(tiny_models, tmp_path):
    from core.config import ChunkingConfig
    from core.corpus import ingest, whitespace_token_spans

    folder = tmp_path / "docs"
    folder.mkdir()
    thymus = "T cells mature in the thymus, an organ behind the breastbone."
    (folder / "one.txt").write_text(thymus)
    (folder / "two.txt").write_text(thymus + " ")  # the same passage again
    (folder / "three.txt").write_text("B cells mature in the bone marrow.")
    corpus = ingest(
        folder, ChunkingConfig(chunk_tokens=64, overlap_tokens=8), whitespace_token_spans
    )
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path / "work")
    q = ["Where do T cells mature?"]
    plain = create_strategy("rag", {"top_k": 2, "retriever": "dense"}, ctx)
    plain.prepare(corpus, [])
    assert [c.source for c in plain.retrieve(q)[0]] == ["one.txt", "two.txt"] or [
        c.source for c in plain.retrieve(q)[0]
    ] == ["two.txt", "one.txt"]
    diverse = create_strategy("rag", {"top_k": 2, "retriever": "dense", "mmr_lambda": 0.5}, ctx)
    diverse.prepare(corpus, [])
    sources = [c.source for c in diverse.retrieve(q)[0]]
    assert len(sources) == 2 and "three.txt" in sources


def test_a_cross_encoder_reorders_the_candidates(setup, tiny_models):
    """The bundled MiniLM folder loaded as a cross-encoder (an untrained scoring head: no
    reranker ships offline) must order the passages exactly as its own scores do."""
    from core.engines.in_process import BUNDLED_EMBEDDERS, load_reranker
    from core.engines.model_files import resolve_name

    corpus, _, ctx = setup
    folder = resolve_name(tiny_models.embedder, BUNDLED_EMBEDDERS, Path(tiny_models.cache_dir))
    rag = create_strategy("rag", {"top_k": 3, "reranker": folder, "retriever": "hybrid"}, ctx)
    report = rag.prepare(corpus, [])
    assert report.details["reranker"] == folder
    q = "Where do T cells mature?"
    got = rag.rank([q])[0]
    reranker = load_reranker(tiny_models, folder)
    want = reranker.scores(q, [rag.chunks[cid].text for cid, _ in got])
    assert [s for _, s in got] == pytest.approx(sorted(want, reverse=True), rel=1e-5)


def test_retrieval_settings_are_in_the_tuning_space_of_rag_and_its_combinations():
    rag = spaces_of(get_strategy_class("rag").config_class)
    for field in ("retriever", "dense_weight", "top_k", "chunk_tokens", "chunk_overlap"):
        assert field in rag
    assert "mmr_lambda" in rag
    assert rag["retriever"].values == ("dense", "bm25", "hybrid")
    for combo in ("lora+rag", "few_shot+rag"):
        assert "rag.retriever" in spaces_of(get_strategy_class(combo).config_class)
        assert get_strategy_class(combo).retriever({"rag": {"retriever": "bm25"}}) == "bm25"
    assert get_strategy_class("rag").retriever({}) == "dense"  # runs stored before it existed


def test_hybrid_index_survives_a_resume(mini_corpus, tiny_models, tmp_path):
    corpus, qa = mini_corpus

    def config(strategies):
        return RunConfig(
            corpus=str(corpus),
            qa=str(qa),
            strategies=strategies,
            models=tiny_models,
            split={"test_fraction": 0.3},
            tuning={"budget": "off"},
            store_path=str(tmp_path / "runs.sqlite"),
            workdir=str(tmp_path / "work"),
            strategy_configs={"rag": {"retriever": "hybrid", "top_k": 2}},
            verdict={"oracle": False},
            retention_questions=0,
            bootstrap_resamples=100,
        )

    store = RunStore(config(["rag"]).store_path)
    run_id = run_comparison(config(["rag"]), store=store)
    first = store.get_run(run_id).results[0]
    assert first.status == "done", first.error
    lexical = Path(first.prepare.details["lexical_index"])
    before = LexicalIndex.load(lexical).search(["Where do T cells mature?"], 3)
    run_comparison(config(["rag", "few_shot+rag"]), store=store, run_id=run_id, resume=True)
    run = store.get_run(run_id)
    assert run.status == "done"
    by = {r.strategy: r for r in run.results}
    assert by["rag"].prepare.details["lexical_index"] == str(lexical)  # kept, not redone
    # The kept arm's indexes are still in its published folder and answer as before.
    assert Path(by["rag"].prepare.artifact_path).exists()
    assert LexicalIndex.load(lexical).search(["Where do T cells mature?"], 3) == before
    combo = by["few_shot+rag"]
    assert combo.status == "done", combo.error
    assert Path(combo.prepare.details["rag"]["lexical_index"]).exists()  # rebuilt with it
    # Retrieval on its own is stored with the run: recall@k and MRR over the 3 test questions.
    assert by["rag"].metrics["mrr"].n == by["rag"].metrics["recall_at_k"].n == 3
    assert by["rag"].metrics["mrr"].mean <= by["rag"].metrics["recall_at_k"].mean
    # ... and shown per retriever in the Compare page's retrieval view and in --json.
    table = retrieval_recall(RunView.load(store, run_id)).set_index("strategy")
    assert table.loc["rag", "retriever"] == "hybrid"
    assert table.loc["few_shot+rag", "retriever"] == RagConfig().retriever  # its default
    assert table.loc["rag", "mrr"] == by["rag"].metrics["mrr"].mean
    assert table.loc["rag", "top_k"] == 2
    summary = summary_with_diagnostics(store, run_id)["retrieval"]
    assert [row["strategy"] for row in summary] == ["rag", "few_shot+rag"]
    assert summary[0]["mrr"] == by["rag"].metrics["mrr"].mean
    json.dumps(summary)  # plain data
