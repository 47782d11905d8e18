"""What a run reads: the corpus, chunked, and the Q/A pairs split into train and test."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.corpus import hf_token_spans, ingest, whitespace_token_spans
from core.models import load_tokenizer
from core.qa import load_qa, split_pairs
from core.types import Corpus, QAPair
from eval.config import RunConfig
from strategies import get_strategy_class


@dataclass
class Inputs:
    """What a run works on: the ingested corpus and the split Q/A pairs."""

    corpus: Corpus
    train: list[QAPair]
    test: list[QAPair]  # the questions the run asks (the first n_test of the test split)
    n_pairs: int
    test_split: int  # size of the whole test split
    qa_file: str = ""  # the Q/A file read (a generated one when the config named none)

    def summary(self) -> dict[str, dict[str, Any]]:
        """What was read and how it was split, as stored with a run and shown in previews."""
        return {
            "corpus": corpus_summary(self.corpus),
            "split": {
                "pairs": self.n_pairs,
                "train": len(self.train),
                "test": len(self.test),
                "test_split": self.test_split,
                "test_ids": [p.id for p in self.test],
                "qa_file": self.qa_file,
            },
        }


def corpus_summary(corpus: Corpus) -> dict[str, Any]:
    """Documents, chunks, tokens, refused files and document names, as stored and shown."""
    return {
        "documents": len(corpus.documents),
        "chunks": len(corpus.chunks),
        "tokens": corpus.n_tokens,
        "errors": [asdict(e) for e in corpus.errors],
        "names": [d.name for d in corpus.documents],
    }


def needs_models(strategies: list[str]) -> bool:
    """Whether any of these strategies uses the shared generator or embedder."""
    return any(get_strategy_class(n).uses_models for n in strategies)


def load_inputs(config: RunConfig, tokenizer: Any = None) -> Inputs:
    """Ingest the corpus (chunked in generator tokens when a tokenizer is given) and split Q/A."""
    spans = hf_token_spans(tokenizer) if tokenizer is not None else whitespace_token_spans
    tok_name = config.models.generator if tokenizer is not None else "whitespace"
    corpus = ingest(
        Path(config.corpus),
        config.chunking,
        spans,
        fingerprint_extra={"tokenizer": str(tok_name)},
    )
    if not corpus.chunks:
        reasons = "; ".join(f"{e.name}: {e.reason}" for e in corpus.errors) or "no files found"
        raise ValueError(f"the corpus at {config.corpus} has no usable text ({reasons})")
    qa_path = Path(config.qa) if config.qa else None
    if qa_path is None:  # no Q/A file: generated from the corpus, kept with the run's files
        from core.qagen import generated_qa_file

        folder = Path(config.workdir) / "generated_qa"
        qa_path = generated_qa_file(corpus, config.qa_generation, config.models, folder)
    pairs = load_qa(qa_path)
    train, test = split_pairs(pairs, config.split)
    inputs = Inputs(corpus, train, test[: config.n_test or None], len(pairs), len(test))
    inputs.qa_file = str(qa_path)
    return inputs


def preview_inputs(config: RunConfig) -> dict[str, Any]:
    """What a run would work on (documents, chunks, refused files, split sizes), without running.

    Never raises for bad input: problems come back under "problem" for the page to show.
    """
    try:
        tokenizer = load_tokenizer(config.models) if needs_models(config.strategies) else None
        inputs = load_inputs(config, tokenizer)
    except Exception as e:  # every user-caused problem is reported, not raised
        return {"problem": str(e)}
    return {"problem": None, "fingerprint": inputs.corpus.fingerprint, **inputs.summary()}


def preview_split(corpus: str | Path, qa: str | Path) -> dict[str, Any]:
    """`preview_inputs` for a corpus and its Q/A file under the default strategies."""
    return preview_inputs(RunConfig(corpus=str(corpus), qa=str(qa)))


def read_corpus(corpus: str | Path, config: RunConfig | None = None) -> Corpus:
    """The corpus alone, chunked in the generator's tokens as a run chunks it."""
    config = config or RunConfig()
    tokenizer = load_tokenizer(config.models)
    return ingest(Path(corpus), config.chunking, hf_token_spans(tokenizer))


def preview_corpus(corpus: str | Path, config: RunConfig | None = None) -> dict[str, Any]:
    """Documents, chunks, tokens and refused files of a corpus alone (no Q/A file yet).

    Chunked in the generator's tokens, as a run would. Never raises: see `preview_inputs`.
    """
    try:
        c = read_corpus(corpus, config)
    except Exception as e:  # every user-caused problem is reported, not raised
        return {"problem": str(e)}
    problem = None if c.chunks else f"the corpus at {corpus} has no usable text"
    return {"problem": problem, "fingerprint": c.fingerprint, "corpus": corpus_summary(c)}
