"""Benchmark: retrieval on its own (no generation) for each of rag's retrievers.

For each corpus, every Q/A pair whose gold passage is known is asked through `RagStrategy.rank`
(the code a run retrieves with) and scored: recall@1/3/5 (a gold chunk among the first k)
and MRR@10 (1 / the rank of the first gold chunk, 0 beyond 10). A chunk is gold as the
attribution counts it (eval.attribution.passage_retrieved): it lies inside the pair's own
passage or holds it when the pair has one, else it holds a gold answer as whole words.
Then each retriever's index is built on a corpus of --n-chunks synthetic chunks (sentences of
the corpora shuffled into new chunks), each in a fresh child process: build seconds and the
peak memory the build added (peak RSS minus RSS before it, models already loaded).

    .venv/bin/python bench/bench_retrieval.py [--corpus DIR --qa FILE]... [--n-chunks 10000]
        [--skip-build]

Corpora: the bundled sample (sample_data/, SQuAD v1.1 dev, health articles), plus every
`--corpus DIR --qa FILE` pair given (any corpus with a Q/A file the app reads; the README's
second corpus was two SQuAD 2.0 dev articles, which the project does not ship).
Figures measured on a shared 2-core machine are contended: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import ChunkingConfig, ModelConfig  # noqa: E402
from core.corpus import hf_token_spans, ingest  # noqa: E402
from core.engines.in_process import load_embedder, load_tokenizer  # noqa: E402
from core.qa import load_qa  # noqa: E402
from core.types import Chunk, Context, Corpus  # noqa: E402
from eval.attribution import gold_passages, passage_retrieved  # noqa: E402
from strategies.base import StrategyContext  # noqa: E402
from strategies.rag import RagConfig, RagStrategy  # noqa: E402

CORPORA = {
    "sample (SQuAD v1.1 health)": (
        ROOT / "sample_data" / "corpus",
        ROOT / "sample_data" / "qa.jsonl",
    ),
}
# name -> RagConfig settings; top_k 10 so MRR@10 is read from one ranking.
SETUPS = {
    "dense": {"retriever": "dense"},
    "bm25": {"retriever": "bm25"},
    "hybrid rrf": {"retriever": "hybrid", "fusion": "rrf"},
    "hybrid rrf w.3": {"retriever": "hybrid", "fusion": "rrf", "dense_weight": 0.3},
    "hybrid rrf w.7": {"retriever": "hybrid", "fusion": "rrf", "dense_weight": 0.7},
    "hybrid weighted": {"retriever": "hybrid", "fusion": "weighted"},
    "hybrid wtd w.3": {"retriever": "hybrid", "fusion": "weighted", "dense_weight": 0.3},
    "hybrid wtd w.7": {"retriever": "hybrid", "fusion": "weighted", "dense_weight": 0.7},
    "hybrid rrf mmr.7": {"retriever": "hybrid", "fusion": "rrf", "mmr_lambda": 0.7},
    "hybrid wtd mmr.7": {"retriever": "hybrid", "fusion": "weighted", "mmr_lambda": 0.7},
}
BUILDS = ("dense", "bm25", "hybrid weighted")


def load_corpus(folder: Path, models: ModelConfig) -> Corpus:
    """The folder chunked as a run chunks it by default (the generator's tokens)."""
    return ingest(folder, ChunkingConfig(), hf_token_spans(load_tokenizer(models)))


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def gold_chunks(corpus: Corpus, pairs) -> dict[str, set[str]]:
    """qid -> the ids of its gold chunks; pairs with no gold chunk are left out.

    Chunks of 192 tokens straddle paragraph breaks, so a chunk holding the end of a pair's
    passage is neither inside it nor around it: such a chunk counts too when it holds a gold
    answer and shares a stretch of 100 characters or more with the passage."""
    golds = gold_passages(pairs, corpus)
    out = {}
    for p in pairs:
        gold = golds[p.id]
        hits = set()
        for c in corpus.chunks:
            if passage_retrieved(gold, p.answers, [Context(c.text)]):
                hits.add(c.id)
            elif gold.found_by == "passage" and passage_retrieved(
                None, p.answers, [Context(c.text)]
            ):
                a, b = _squash(c.text), _squash(gold.text)
                m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(
                    0, len(a), 0, len(b)
                )
                if m.size >= 100:
                    hits.add(c.id)
        if hits:
            out[p.id] = hits
    return out


def scores(corpus: Corpus, pairs, settings: dict, models: ModelConfig, workdir: Path) -> dict:
    """recall@1/3/5 and MRR@10 of one retriever setup over the pairs with gold chunks."""
    gold = gold_chunks(corpus, pairs)
    asked = [p for p in pairs if p.id in gold]
    rag = RagStrategy(
        RagConfig(top_k=10, **settings), StrategyContext(models=models, workdir=workdir)
    )
    rag.prepare(corpus, [])
    ranks = []
    for p, ranking in zip(asked, rag.rank([p.question for p in asked]), strict=True):
        ids = [cid for cid, _ in ranking]
        ranks.append(next((i + 1 for i, c in enumerate(ids) if c in gold[p.id]), 0))
    n = len(ranks)
    out = {f"r@{k}": sum(0 < r <= k for r in ranks) / n for k in (1, 3, 5)}
    out["mrr@10"] = sum(1 / r for r in ranks if r) / n
    out["n"] = n
    return out


def synthetic_corpus(n_chunks: int, models: ModelConfig, seed: int = 0) -> Corpus:
    """n_chunks distinct chunks of ~150 words made of the sample's sentences, reshuffled."""
    sentences = []
    for folder, _ in CORPORA.values():
        for f in sorted(folder.glob("*.md")):
            sentences += [s for s in re.split(r"(?<=[.!?])\s+", f.read_text()) if len(s) > 20]
    rng = random.Random(seed)
    chunks = []
    for i in range(n_chunks):
        words: list[str] = []
        while len(words) < 150:
            words += rng.choice(sentences).split()
        text = " ".join(words)
        chunks.append(Chunk(f"syn-{i}", f"syn-{i // 20}.md", text, len(words)))
    return Corpus([], chunks, fingerprint=f"synthetic-{n_chunks}-{seed}")


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_one(setup: str, n_chunks: int) -> dict:
    """Build one retriever's index on the synthetic corpus (run in a child process)."""
    models = ModelConfig()
    corpus = synthetic_corpus(n_chunks, models)
    load_embedder(models).encode(["warm up"])  # the model's own memory is not the index's
    before = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        rag = RagStrategy(
            RagConfig(**SETUPS[setup]), StrategyContext(models=models, workdir=Path(tmp))
        )
        t0 = time.perf_counter()
        report = rag.prepare(corpus, [])
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        rag.rank(["What is the immune system made of?"] * 32)
        query_ms = (time.perf_counter() - t0) / 32 * 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "build_s": seconds,
        "peak_added_mb": peak - before,
        "index_mb": report.artifact_bytes / 1e6,
        "query_ms": query_ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", action="append", default=[], help="another corpus folder")
    ap.add_argument("--qa", action="append", default=[], help="its Q/A file (one per --corpus)")
    ap.add_argument("--n-chunks", type=int, default=10_000)
    ap.add_argument("--skip-build", action="store_true", help="retrieval quality only")
    ap.add_argument("--skip-quality", action="store_true", help="index builds only")
    ap.add_argument("--build-one", help=argparse.SUPPRESS)  # the child process's entry
    args = ap.parse_args()
    if args.build_one:
        print(json.dumps(build_one(args.build_one, args.n_chunks)))
        return

    if len(args.corpus) != len(args.qa):
        ap.error("give one --qa for each --corpus")
    given = {Path(c).name: (Path(c), Path(q)) for c, q in zip(args.corpus, args.qa, strict=True)}
    corpora = {**CORPORA, **given}
    models = ModelConfig()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (folder, qa) in corpora.items() if not args.skip_quality else ():
            corpus, pairs = load_corpus(folder, models), load_qa(qa)
            print(f"\n{name}: {len(corpus.chunks)} chunks, {len(pairs)} pairs")
            print(f"{'retriever':<18} {'R@1':>6} {'R@3':>6} {'R@5':>6} {'MRR@10':>7} {'n':>5}")
            for setup, settings in SETUPS.items():
                s = scores(corpus, pairs, settings, models, Path(tmp) / setup)
                print(
                    f"{setup:<18} {s['r@1']:>6.3f} {s['r@3']:>6.3f} {s['r@5']:>6.3f} "
                    f"{s['mrr@10']:>7.3f} {s['n']:>5}"
                )
    if args.skip_build:
        return
    print(f"\nIndex build on {args.n_chunks:,} synthetic chunks (one child process each)")
    print(f"{'retriever':<18} {'build s':>8} {'peak +MB':>9} {'index MB':>9} {'query ms':>9}")
    for setup in BUILDS:
        cmd = [sys.executable, __file__, "--build-one", setup, "--n-chunks", str(args.n_chunks)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        b = json.loads(out.strip().splitlines()[-1])
        print(
            f"{setup:<18} {b['build_s']:>8.1f} {b['peak_added_mb']:>9.0f} "
            f"{b['index_mb']:>9.1f} {b['query_ms']:>9.1f}"
        )


if __name__ == "__main__":
    main()
