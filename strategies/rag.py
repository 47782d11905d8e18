"""RAG: retrieve the chunks nearest to the question and answer from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ChunkingConfig, check, option
from core.corpus import chunk_document, hf_token_spans, whitespace_token_spans
from core.tuning_space import Categorical, IntRange
from core.types import Answer, Context, Corpus, PrepareReport, QAPair
from strategies.base import GenerativeStrategy, PromptConfig
from strategies.registry import register_strategy
from strategies.vector_stores import SERVER_STORES, STORES

INDEXES = ("flat", "hnsw")


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
    description = "RAG: the top-k corpus chunks (embedding search) in the prompt, with sources."
    display_name = "RAG (retrieved passages)"

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        if not corpus.chunks:
            raise ValueError("rag needs a corpus with at least one chunk of text")
        cfg = self.config
        if cfg.chunk_tokens:
            corpus = _rechunked(corpus, int(cfg.chunk_tokens), self.ctx.generator)
        self.set_system_prompt(corpus)
        self.chunks = {c.id: c for c in corpus.chunks}
        emb = self.ctx.embedder
        path = self.ctx.workdir / "rag" / f"{corpus.fingerprint}-{cfg.backend}-{cfg.index}"
        server = (cfg.chroma_host, cfg.chroma_port) if cfg.chroma_host else None
        self.store = STORES[cfg.backend](path, emb.dim, cfg.index, cfg.hnsw_m, server)
        vectors = emb.encode([c.text for c in corpus.chunks])
        self.store.add(
            [c.id for c in corpus.chunks], vectors, [{"source": c.source} for c in corpus.chunks]
        )
        self.store.save()
        return PrepareReport(
            artifact_bytes=self.store.size_bytes(),
            artifact_path=str(path),
            details={
                "chunks_indexed": len(self.store),
                "backend": cfg.backend,
                "index": cfg.index,
                "server": f"{cfg.chroma_host}:{cfg.chroma_port}" if server else None,
                "embedder": emb.name,
                "dim": emb.dim,
            },
        )

    @classmethod
    def retrieval_depth(cls, config: dict[str, Any]) -> int | None:
        return config.get("top_k")

    def retrieve(self, questions: list[str]) -> list[list[Context]]:
        """The chunks put in front of each question, best first, within the token budget."""
        hits = self.store.search(self.ctx.embedder.encode(questions), self.config.top_k)
        out = []
        for row in hits:
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


def _rechunked(corpus: Corpus, chunk_tokens: int, generator) -> Corpus:
    """The corpus cut again into `chunk_tokens`-token chunks (in the generator's tokens when it
    has a tokenizer), under its own fingerprint so its index never mixes with the run's."""
    import dataclasses

    tokenizer = getattr(generator, "tokenizer", None)
    spans = hf_token_spans(tokenizer) if tokenizer is not None else whitespace_token_spans
    # The run's overlap is not passed to a strategy; a sixth of the chunk is the default's share.
    chunking = ChunkingConfig(chunk_tokens=chunk_tokens, overlap_tokens=chunk_tokens // 6)
    chunks = [c for d in corpus.documents for c in chunk_document(d, chunking, spans)]
    fingerprint = f"{corpus.fingerprint}-c{chunk_tokens}"
    return dataclasses.replace(corpus, chunks=chunks, fingerprint=fingerprint)
