"""The lexical side of retrieval: a BM25 index over chunk texts (bm25s), saved to a folder.

BM25 ranks by the question's own words, which dense embeddings blur: names, numbers and rare
terms. Scores follow Lucene's BM25 as bm25s computes it: for each query term t in chunk d,
idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)) times tf / (tf + k1 (1 - b + b |d| / avgdl)).
Text is lower-cased, cut into words of two or more letters or digits, and English stopwords
are dropped (bm25s's defaults); no stemming, so nothing outside bm25s is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

IDS_FILE = "chunk_ids.json"


def tokenize(texts: list[str]) -> list[list[str]]:
    """Each text as its BM25 terms (the same rule for chunks and questions)."""
    import bm25s  # heavy-ish (scipy-free but numpy-bound); only retrieval needs it

    return bm25s.tokenize(list(texts), return_ids=False, show_progress=False)


class LexicalIndex:
    """BM25 over chunks: `build` from (ids, texts), `search` questions, `save` / `load`."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = float(k1), float(b)
        self.ids: list[str] = []
        self._bm25 = None

    def build(self, ids: list[str], texts: list[str]) -> LexicalIndex:
        """Index `texts` under `ids` (replacing what was there); returns self."""
        import bm25s

        if len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        self.ids = list(ids)
        self._bm25 = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        self._bm25.index(tokenize(texts), show_progress=False)
        return self

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every chunk (in `ids` order) for one question; zeros when no word of
        the question is in the index."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        if self._bm25 is None or not self.ids:
            return out
        # Terms absent from the index score nothing; bm25s refuses an empty id list.
        known = self._bm25.get_tokens_ids(tokenize([question])[0])
        if not known:
            return out
        return np.asarray(self._bm25.get_scores_from_ids(known), dtype=np.float32)

    def search(self, questions: list[str], k: int) -> list[list[tuple[str, float]]]:
        """For each question, up to k (chunk id, BM25 score) pairs, best first; chunks that
        share no word with the question are left out (their score is 0)."""
        out = []
        for q in questions:
            s = self.scores(q)
            top = np.argsort(-s, kind="stable")[: max(0, int(k))]
            out.append([(self.ids[i], float(s[i])) for i in top if s[i] > 0])
        return out

    def save(self, folder: Path) -> None:
        """Write the index and its chunk ids into `folder` (created; files replaced)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self._bm25 is not None:
            self._bm25.save(str(folder), show_progress=False)
        (folder / IDS_FILE).write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """The index `save` wrote into `folder`."""
        import bm25s

        folder = Path(folder)
        bm25 = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0)
        index = cls(bm25.k1, bm25.b)
        index._bm25 = bm25
        index.ids = json.loads((folder / IDS_FILE).read_text())
        return index

    @staticmethod
    def size_bytes(folder: Path) -> int:
        """Bytes the saved index occupies in `folder` (0 when absent)."""
        folder = Path(folder)
        if not folder.exists():
            return 0
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
