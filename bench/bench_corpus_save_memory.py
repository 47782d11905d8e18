"""Benchmark: the web process's peak memory when the Corpus page saves a large text file.

Does what the Corpus page does on "Save corpus" (service.corpus_library.CorpusLibrary.save, then the
page's check of the saved corpus, eval.run.inputs.preview_corpus, chunked in the default
generator's tokens) for one text file of --chars characters of English (the bundled sample's
articles repeated), in this process, and prints this process's own peak RSS. Under
`/usr/bin/time -v`, "Maximum resident set size" is the largest of this process and the children
it waited for: since the corpus is read in the bounded corpus child, that is the child's peak.

    /usr/bin/time -v .venv/bin/python bench/bench_corpus_save_memory.py --chars 9000000

Figures on a shared 2-core machine are contended in time, not in memory.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "sample_data" / "corpus"

from eval.run.inputs import preview_corpus  # noqa: E402
from service.corpus_library import CorpusLibrary  # noqa: E402


def english_text(n_chars: int) -> str:
    """`n_chars` characters of English: the bundled sample's articles, repeated."""
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(SAMPLE.glob("*.md")))
    return (text + "\n\n") * (n_chars // (len(text) + 2) + 1)


def peak_mb() -> float:
    """This process's own peak RSS: VmHWM (ru_maxrss keeps the peak of whatever ran before
    the exec in this process, e.g. a big parent that started it)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\s*(\d+) kB", status, re.M).group(1)) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=9_000_000)
    args = ap.parse_args()
    data = english_text(args.chars)[: args.chars].encode()
    before = peak_mb()
    with tempfile.TemporaryDirectory() as tmp:
        library = CorpusLibrary(Path(tmp) / "corpora")
        t0 = time.monotonic()
        entry = library.save("big", [("big.txt", data)])
        del data
        pre = preview_corpus(entry.docs_path)  # the page's check of a just-saved corpus
        seconds = time.monotonic() - t0
    corpus = pre.get("corpus") or {}
    print(f"problem: {pre.get('problem')}")
    shown = ("documents", "chunks", "tokens")
    print(", ".join(f"{corpus.get(k)} {k}" for k in shown))
    print(f"save + preview: {seconds:.1f} s")
    print(f"peak RSS before saving (text built, modules imported): {before:.0f} MB")
    print(f"peak RSS of this process: {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
