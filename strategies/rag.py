"""RAG: retrieve the chunks that best match the question and answer from them.

Retrieval is dense (embedding search in a vector store), lexical (BM25) or both fused
(`retriever`); an optional cross-encoder reorders the candidates, and maximal marginal
relevance (`mmr_lambda` < 1) keeps near-copies of one passage from filling the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config import ChunkingConfig, check, option
from core.corpus import chunk_document, hf_token_spans, whitespace_token_spans
from core.engines.in_process import load_reranker
from core.tuning_space import Categorical, IntRange
from core.types import Answer, Context, Corpus, PrepareReport, QAPair
from strategies.base import GenerativeStrategy, PromptConfig
from strategies.lexical import LexicalIndex
from strategies.ranking import FUSIONS, Ranking, mmr
from strategies.registry import register_strategy
from strategies.vector_stores import SERVER_STORES, STORES

INDEXES = ("flat", "hnsw")
RETRIEVERS = ("dense", "bm25", "hybrid")


@dataclass
class RagConfig(PromptConfig):
    top_k: int = option(
        3, "Chunks retrieved per question.", label="Passages per question", tune=IntRange(1, 8)
    )
    chunk_tokens: int = option(
        0,
        "Cut the documents again into chunks of this many tokens for this strategy alone "
        "(0 = the run's chunking).",
        label="Own chunk size (0 = the run's)",
        tune=Categorical((0, 96, 384)),
    )
    chunk_overlap: float = option(
        0.17,
        "With an own chunk size: the share of each chunk repeated at the start of the next.",
        label="Own chunk overlap (share)",
        tune=Categorical((0.0, 0.17, 0.33)),
    )
    retriever: str = option(
        "hybrid",
        "'dense' (embedding search), 'bm25' (lexical: the question's own words) or 'hybrid' "
        "(both, fused).",
        choices=RETRIEVERS,
        label="Retriever",
        tune=Categorical(RETRIEVERS),
    )
    fusion: str = option(
        "weighted",
        "hybrid: 'rrf' (reciprocal rank fusion, k=60) or 'weighted' (sum of min-max "
        "normalised scores).",
        choices=tuple(FUSIONS),
        label="Fusion",
    )
    dense_weight: float = option(
        0.5,
        "hybrid: weight of the dense ranking in the fusion (the lexical one gets 1 - this).",
        label="Dense weight in fusion",
        tune=Categorical((0.3, 0.5, 0.7)),
    )
    candidates: int = option(
        20,
        "Chunks each retriever proposes before fusion, reranking and MMR pick top_k.",
        label="Candidates per retriever",
    )
    mmr_lambda: float = option(
        1.0,
        "Maximal marginal relevance: 1 = rank by relevance alone; lower trades relevance "
        "for passages unlike those already picked.",
        label="MMR lambda",
        tune=Categorical((1.0, 0.7, 0.5)),
    )
    reranker: str = option(
        "",
        "Cross-encoder that reorders the candidates (a Hugging Face id or a local folder, "
        "sentence-transformers CrossEncoder); empty = none (none ships offline).",
        label="Reranker (cross-encoder)",
    )
    backend: str = option(
        "faiss",
        "'faiss' (in memory, saved to a file) or 'chroma' (embedded persistent store).",
        choices=list(STORES),
        label="Vector store",
    )
    index: str = option(
        "flat",
        "FAISS index: 'flat' (exact search) or 'hnsw' (approximate, for large corpora).",
        choices=INDEXES,
        label="FAISS index",
    )
    hnsw_m: int = option(32, "Graph degree of HNSW indexes.", label="HNSW graph degree")
    max_context_tokens: int = option(
        700,
        "Token budget for retrieved text; lower-ranked chunks beyond it are dropped.",
        label="Passage token budget",
    )
    chroma_host: str = option(
        "", "chroma: host of a Chroma server (`chroma run`) to index into; empty = embedded folder."
    )
    chroma_port: int = option(8000, "chroma: port of the Chroma server.")

    def validate(self) -> None:
        super().validate()
        check(1 <= int(self.top_k) <= 50, "top_k must be in 1..50")
        check(
            int(self.chunk_tokens) == 0 or 16 <= int(self.chunk_tokens) <= 8192,
            "chunk_tokens must be 0 (the run's chunking) or in 16..8192",
        )
        check(0.0 <= float(self.chunk_overlap) < 0.9, "chunk_overlap must be in [0, 0.9)")
        check(0.0 <= float(self.dense_weight) <= 1.0, "dense_weight must be in [0, 1]")
        check(1 <= int(self.candidates) <= 1000, "candidates must be in 1..1000")
        check(0.0 <= float(self.mmr_lambda) <= 1.0, "mmr_lambda must be in [0, 1]")
        check(4 <= int(self.hnsw_m) <= 128, "hnsw_m must be in 4..128")
        check(int(self.max_context_tokens) >= 32, "max_context_tokens must be >= 32")
        check(
            not self.chroma_host or self.backend in SERVER_STORES,
            f"chroma_host applies to backend {' or '.join(SERVER_STORES)} only",
        )
        check(1 <= int(self.chroma_port) <= 65535, "chroma_port must be in 1..65535")


@register_strategy("rag")
class RagStrategy(GenerativeStrategy):
    config_class = RagConfig
    default = True
    retrieves = True
    reads_pairs = False  # indexes the corpus only
    description = (
        "RAG: the top-k corpus chunks (embedding, BM25 or hybrid search) in the prompt, "
        "with sources."
    )
    display_name = "RAG (retrieved passages)"

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        if not corpus.chunks:
            raise ValueError("rag needs a corpus with at least one chunk of text")
        cfg = self.config
        if cfg.chunk_tokens:
            corpus = _rechunked(
                corpus, int(cfg.chunk_tokens), float(cfg.chunk_overlap), self.ctx.generator
            )
        self.set_system_prompt(corpus)
        self.chunks = {c.id: c for c in corpus.chunks}
        ids, texts = [c.id for c in corpus.chunks], [c.text for c in corpus.chunks]
        emb = self.ctx.embedder
        root = self.ctx.workdir / "rag"
        path = root / f"{corpus.fingerprint}-{cfg.backend}-{cfg.index}"
        server = (cfg.chroma_host, cfg.chroma_port) if cfg.chroma_host else None
        # The vector store is built whenever embeddings are used: dense search, or MMR's
        # similarity between chunks. BM25 alone without MMR needs no embedding at all.
        self.store, self.vectors = None, {}
        if cfg.retriever != "bm25" or float(cfg.mmr_lambda) < 1.0:
            self.store = STORES[cfg.backend](path, emb.dim, cfg.index, cfg.hnsw_m, server)
            vectors = emb.encode(texts)
            self.store.add(ids, vectors, [{"source": c.source} for c in corpus.chunks])
            self.store.save()
            self.vectors = dict(zip(ids, vectors, strict=True))
        # The lexical index sits beside the vector index, always on this machine (a Chroma
        # server holds the vectors only), and is rebuilt with it from the same chunks.
        self.lexical, lexical_path = None, root / f"{corpus.fingerprint}-bm25"
        if cfg.retriever != "dense":
            self.lexical = LexicalIndex().build(ids, texts)
            self.lexical.save(lexical_path)
        self.reranker = load_reranker(self.ctx.models, cfg.reranker) if cfg.reranker else None
        size = self.store.size_bytes() if self.store else 0
        if self.lexical is not None:
            size += LexicalIndex.size_bytes(lexical_path)
        return PrepareReport(
            artifact_bytes=size,
            artifact_path=str(path if self.store else lexical_path),
            details={
                "chunks_indexed": len(ids),
                "retriever": cfg.retriever,
                "lexical_index": str(lexical_path) if self.lexical else None,
                "backend": cfg.backend if self.store else None,
                "index": cfg.index,
                "server": f"{cfg.chroma_host}:{cfg.chroma_port}" if server else None,
                "embedder": emb.name,
                "dim": emb.dim,
                "reranker": cfg.reranker or None,
            },
        )

    @classmethod
    def retrieval_depth(cls, config: dict[str, Any]) -> int | None:
        return config.get("top_k")

    @classmethod
    def retriever(cls, config: dict[str, Any]) -> str | None:
        # Runs stored before the setting existed searched embeddings only.
        return config.get("retriever", "dense")

    def rank(self, questions: list[str]) -> list[Ranking]:
        """Each question's chunks, best first, as (chunk id, score): the configured retriever's
        candidates, fused, reranked and diversified, cut to top_k (before the token budget)."""
        cfg = self.config
        k = int(cfg.top_k)
        # Fusion, reranking and MMR choose among more than top_k; plain search needs top_k.
        pool = max(k, int(cfg.candidates))
        if cfg.retriever != "hybrid" and not self.reranker and float(cfg.mmr_lambda) >= 1.0:
            pool = k
        dense = None
        if cfg.retriever != "bm25":
            dense = self.store.search(self.ctx.embedder.encode(questions), pool)
        lexical = self.lexical.search(questions, pool) if self.lexical is not None else None
        out = []
        for i, question in enumerate(questions):
            if cfg.retriever == "hybrid":
                w = float(cfg.dense_weight)
                ranking = FUSIONS[cfg.fusion]([dense[i], lexical[i]], [w, 1.0 - w])
            else:
                ranking = dense[i] if cfg.retriever == "dense" else lexical[i]
            ranking = ranking[:pool]
            if self.reranker is not None and ranking:
                texts = [self.chunks[cid].text for cid, _ in ranking]
                scores = self.reranker.scores(question, texts)
                order = np.argsort(-scores, kind="stable")
                ranking = [(ranking[j][0], float(scores[j])) for j in order]
            out.append(mmr(ranking, self.vectors, k, float(cfg.mmr_lambda)))
        return out

    def retrieve(self, questions: list[str]) -> list[list[Context]]:
        """The chunks put in front of each question, best first, within the token budget."""
        out = []
        for row in self.rank(questions):
            picked, used = [], 0
            for cid, score in row:
                chunk = self.chunks[cid]
                if picked and used + chunk.n_tokens > self.config.max_context_tokens:
                    break
                picked.append(Context(chunk.text, source=chunk.source, score=score))
                used += chunk.n_tokens
            out.append(picked)
        return out

    def answer(self, questions: list[str]) -> list[Answer]:
        return self.generate_answers(questions, self.system, passages=self.retrieve(questions))


def _rechunked(corpus: Corpus, chunk_tokens: int, overlap: float, generator) -> Corpus:
    """The corpus cut again into `chunk_tokens`-token chunks overlapping by the share
    `overlap` (in the generator's tokens when it has a tokenizer), under its own fingerprint
    so its index never mixes with the run's."""
    import dataclasses

    tokenizer = getattr(generator, "tokenizer", None)
    spans = hf_token_spans(tokenizer) if tokenizer is not None else whitespace_token_spans
    overlap_tokens = min(round(chunk_tokens * overlap), chunk_tokens - 1)
    chunking = ChunkingConfig(chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)
    chunks = [c for d in corpus.documents for c in chunk_document(d, chunking, spans)]
    fingerprint = f"{corpus.fingerprint}-c{chunk_tokens}o{overlap_tokens}"
    return dataclasses.replace(corpus, chunks=chunks, fingerprint=fingerprint)
