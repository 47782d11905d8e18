"""Vector stores behind one interface: FAISS (in memory, saved to a file) and chromadb.

Vectors are L2-normalised by the embedder, so inner product is cosine similarity and both
backends return scores on the same scale (higher is closer).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np


class VectorStore(ABC):
    """Stores id -> vector (+ metadata) and finds the nearest ids to query vectors."""

    def __init__(self, path: Path, dim: int):
        self.path = Path(path)
        self.dim = dim

    @abstractmethod
    def add(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict]) -> None:
        """Add vectors (shape n x dim, normalised) under `ids` with their metadata."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """For each query row, up to k (id, score) pairs, best first."""

    @abstractmethod
    def __len__(self) -> int: ...

    def save(self) -> None:  # noqa: B027 - optional: chromadb persists as it goes
        """Persist to `path` (chromadb persists as it goes)."""

    def size_bytes(self) -> int:
        """Bytes the store occupies on disk."""
        if not self.path.exists():
            return 0
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


class FaissStore(VectorStore):
    """FAISS inner-product index: exact (`flat`) or approximate graph search (`hnsw`)."""

    def __init__(self, path: Path, dim: int, index_type: str = "flat", hnsw_m: int = 32):
        import faiss

        super().__init__(path, dim)
        if index_type == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = 64
        else:
            self.index = faiss.IndexFlatIP(dim)
        self.ids: list[str] = []

    def add(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict]) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.ids.extend(ids)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self.ids))
        if k == 0:
            return [[] for _ in range(len(queries))]
        scores, idx = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [
            [(self.ids[i], float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0]
            for row_i, row_s in zip(idx, scores, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.ids)

    def save(self) -> None:
        import faiss

        self.path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(self.path / "index.faiss"))
        (self.path / "ids.json").write_text(json.dumps(self.ids))


class ChromaStore(VectorStore):
    """chromadb, embedded (a persistent folder) or a Chroma server (`server=(host, port)`);
    we pass our own embeddings (no embedding fn)."""

    def __init__(self, path: Path, dim: int, hnsw_m: int = 32, server: tuple | None = None):
        super().__init__(path, dim)
        self.server = server
        self.client, name = self._server_client() if server else self._embedded_client()
        self.collection = self.client.get_or_create_collection(
            name,
            configuration={"hnsw": {"space": "ip", "max_neighbors": hnsw_m}},
            embedding_function=None,
        )

    def _embedded_client(self):
        import chromadb
        from chromadb.config import Settings

        # A fresh folder per build: a stale collection from another corpus must never leak in.
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        client = chromadb.PersistentClient(
            path=str(self.path), settings=Settings(anonymized_telemetry=False)
        )
        return client, "chunks"

    def _server_client(self):
        import chromadb
        from chromadb.config import Settings

        host, port = self.server
        try:
            client = chromadb.HttpClient(
                host=host, port=int(port), settings=Settings(anonymized_telemetry=False)
            )
            client.heartbeat()
        except Exception as e:  # chromadb raises several kinds for an unreachable server
            raise ValueError(
                f"cannot reach the Chroma server at {host}:{port} ({type(e).__name__}: {e}); "
                "start one with `chroma run --host HOST --port PORT --path FOLDER`"
            ) from e
        # One collection per build folder (corpus fingerprint, backend, index), dropped and made
        # again, so a stale collection never leaks in and runs on other corpora are untouched.
        name = "adaptlab-" + hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]
        with contextlib.suppress(Exception):  # NotFoundError (absent) has moved between versions
            client.delete_collection(name)
        return client, name

    def size_bytes(self) -> int:
        """Bytes on disk; 0 for a server collection (its disk is the server's)."""
        return 0 if self.server else super().size_bytes()

    def add(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict]) -> None:
        step = self.client.get_max_batch_size()
        for i in range(0, len(ids), step):
            self.collection.add(
                ids=ids[i : i + step],
                embeddings=np.asarray(vectors[i : i + step], dtype=np.float32),
                metadatas=metadatas[i : i + step] or None,
            )

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self))
        if k == 0:
            return [[] for _ in range(len(queries))]
        res = self.collection.query(
            query_embeddings=np.asarray(queries, dtype=np.float32),
            n_results=k,
            include=["distances"],
        )
        # chromadb's "ip" distance is 1 - inner product.
        return [
            [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]
            for ids, dists in zip(res["ids"], res["distances"], strict=True)
        ]

    def __len__(self) -> int:
        return self.collection.count()


# Each builder takes (path, dim, index_type, hnsw_m, server); `server` is (host, port) of a
# remote store or None.
STORES: dict[str, Callable[..., VectorStore]] = {
    "faiss": lambda path, dim, index_type, hnsw_m, server=None: FaissStore(
        path, dim, index_type, hnsw_m
    ),
    "chroma": lambda path, dim, index_type, hnsw_m, server=None: ChromaStore(
        path, dim, hnsw_m, server
    ),
}
SERVER_STORES = ("chroma",)  # backends that can point at a server instead of a folder
