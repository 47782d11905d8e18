"""What a run reads: the corpus, chunked, and the Q/A pairs split into train and test.

A run (in the worker) reads them in its own process. The pages' previews and quick Q/A
generation read, chunk and count in a bounded corpus child (core.untrusted.sandbox) instead: a
10M-character corpus chunked in generator tokens took 1.6 GB, which the web process serving
everyone must not hold. The pages get counts, names and pairs back, never the text or chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.corpus import hf_token_spans, ingest, whitespace_token_spans
from core.engines.in_process import load_tokenizer, prepare_tokenizer_files
from core.engines.model_files import ModelLoadError, hub_cache_env
from core.format_pairs import FormatTask, build_format_task
from core.qa import load_qa, split_ids_bounded, split_pairs_grouped
from core.qagen import QAGenConfig, generate_qa, generated_qa_file, pairs_to_records
from core.tasks import TaskSpec, load_task
from core.types import Corpus, QAPair
from core.untrusted.sandbox import FileParser, ParseLimits, ParseRefused
from eval.config import RunConfig
from eval.run.groups import group_warnings, paraphrase_groups
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
    # qid -> group id (core.qa.group_ids): questions of one source passage or near-duplicates
    # share one, and the statistics resample or flip a group as one unit
    groups: dict[str, str] = field(default_factory=dict)
    task: TaskSpec | None = None  # the format or style asked for (None: factual Q/A)
    paraphrases: dict[str, str] = field(default_factory=dict)  # test qid -> paraphrase group
    warnings: list[str] = field(default_factory=list)  # said before the run, stored with it

    def summary(self) -> dict[str, Any]:
        """What was read and how it was split, as stored with a run and shown in previews."""
        extra: dict[str, Any] = {}
        if self.task is not None:  # stored so that stored answers can be scored again
            extra["task"] = self.task.to_dict()
        if self.paraphrases:
            extra["paraphrases"] = self.paraphrases
        if self.warnings:
            extra["input_warnings"] = self.warnings
        return extra | {
            "corpus": corpus_summary(self.corpus),
            "split": {
                "pairs": self.n_pairs,
                "train": len(self.train),
                "test": len(self.test),
                "test_split": self.test_split,
                "test_ids": [p.id for p in self.test],
                "qa_file": self.qa_file,
                # the test questions' groups, read by the views' statistics (absent in runs
                # stored before: every question its own group)
                "groups": {p.id: self.groups.get(p.id, p.id) for p in self.test},
            },
        }


def corpus_summary(corpus: Corpus) -> dict[str, Any]:
    """Documents, chunks, tokens, refused files and document names, as stored and shown."""
    return {
        "documents": len(corpus.documents),
        "chunks": len(corpus.chunks),
        "tokens": corpus.n_tokens,
        "errors": [asdict(e) for e in corpus.errors],
        "warnings": [asdict(e) for e in corpus.warnings],
        "names": [d.name for d in corpus.documents],
    }


def needs_models(strategies: list[str]) -> bool:
    """Whether any of these strategies uses the shared generator or embedder."""
    return any(get_strategy_class(n).uses_models for n in strategies)


def _ingest(config: RunConfig, tokenizer: Any = None) -> Corpus:
    """The run's corpus, refused when no document has usable text."""
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
    return corpus


def load_inputs(
    config: RunConfig, tokenizer: Any = None, check: Callable[[], None] | None = None
) -> Inputs:
    """Ingest the corpus (chunked in generator tokens when a tokenizer is given) and split Q/A.
    `check` is called during the near-duplicate grouping (it raises to cancel)."""
    corpus = _ingest(config, tokenizer)
    qa_path = Path(config.qa) if config.qa else None
    if qa_path is None:  # no Q/A file: generated from the corpus, kept with the run's files
        folder = Path(config.workdir) / "generated_qa"
        qa_path = generated_qa_file(corpus, config.qa_generation, config.models, folder)
    task = run_task(config)
    pairs = load_qa(qa_path, task)
    train, test, groups = split_pairs_grouped(pairs, config.split, check)
    inputs = Inputs(corpus, train, test[: config.n_test or None], len(pairs), len(test))
    inputs.qa_file, inputs.groups = str(qa_path), groups
    inputs.task = task
    inputs.paraphrases = paraphrase_groups(inputs.test, config.split.near_duplicate_jaccard)
    inputs.warnings = group_warnings(pairs)
    return inputs


def check_task_inputs(config: RunConfig) -> list[str]:
    """Read the task's files and the Q/A file under the task before a run starts; raise
    (TaskFileError, QAFormatError: both ValueErrors naming file, line and reason) when one
    cannot be used; return the warnings (paraphrase groups with different gold answers)."""
    task = run_task(config)
    if not config.qa:  # generated pairs: checked when they are made
        return []
    return group_warnings(load_qa(config.qa, task))


def task_inputs_problem(config: RunConfig) -> str | None:
    """Why the config's Q/A file cannot be read under its task (a gold answer off the format,
    a task file that does not load), naming file, line and reason; None when it can. The Q/A
    file is read in the bounded parser child (a page's check of an uploaded file)."""
    try:
        split_ids_bounded(config.qa, config.split, run_task(config))
    except ValueError as e:  # TaskFileError, QAFormatError
        return str(e)
    return None


def run_task(config: RunConfig) -> TaskSpec | None:
    """The config's format or style task, its files read and checked (None for factual Q/A).
    Raises core.tasks.TaskFileError naming the file, the line and the reason."""
    if config.task == "qa":
        return None
    return load_task(config.task, config.schema, config.pattern, config.style)


# What the corpus child may use. A 9M-character English corpus chunked in the default
# generator's tokens peaked at 2.2 GB of address space (1.6 GB resident), 20 s of CPU; text
# with far more tokens per character ends in a "needs more memory" problem, not an OOM kill.
CORPUS_LIMITS = ParseLimits(memory_mb=4096, cpu_s=600.0, wall_s=900.0)


def _absolute(config: RunConfig) -> RunConfig:
    """`config` with its paths made absolute here: the child runs in the repository folder."""

    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve()) if path else path

    paths = {k: absolute(getattr(config, k)) for k in ("qa", "workdir", "schema", "style")}
    models = replace(config.models, cache_dir=absolute(config.models.cache_dir))
    return replace(config, corpus=absolute(config.corpus), models=models, **paths)


def in_corpus_child(
    fn: Callable[..., Any], config: RunConfig, *args: Any, tokenizer: bool = True
) -> Any:
    """`fn(corpus path, config as a dict, *args)` run in a bounded corpus child, its JSON
    result (a dict, with "problem" for bad input) returned here; `tokenizer`: whether `fn`
    loads the generator's tokenizer. A child that refused or did not survive, or a bundled
    generator that cannot be found, comes back as {"problem": ...} too."""
    config = _absolute(config)
    try:
        if tokenizer:
            prepare_tokenizer_files(config.models)  # the child may not write a converted model
        with FileParser(CORPUS_LIMITS, spawns=True, env=hub_cache_env()) as child:
            return child.call(fn, config.corpus, config.to_dict(), *args)
    except (ParseRefused, ModelLoadError) as e:
        return {"problem": f"the corpus could not be read: {e}"}


def preview_inputs(config: RunConfig) -> dict[str, Any]:
    """What a run would work on (documents, chunks, refused files, split sizes), without running.

    Read and counted in the bounded corpus child; never raises for bad input: problems come
    back under "problem" for the page to show.
    """
    tokenizer = needs_models(config.strategies)
    return in_corpus_child(_preview_inputs_here, config, tokenizer=tokenizer)


def _preview_inputs_here(corpus: Path, config: dict[str, Any]) -> dict[str, Any]:
    """`preview_inputs` in this process (the corpus child)."""
    config = RunConfig.from_dict(config)
    try:
        tokenizer = load_tokenizer(config.models) if needs_models(config.strategies) else None
        if not config.qa:  # pairs generated by our own generator
            inputs = load_inputs(config, tokenizer)
            return {"problem": None, "fingerprint": inputs.corpus.fingerprint, **inputs.summary()}
        corpus = _ingest(config, tokenizer)
        # Parsing and grouping an uploaded Q/A file run in the bounded child, not this process.
        split = split_ids_bounded(config.qa, config.split, run_task(config))
    except MemoryError:
        raise  # the child says how much memory it had
    except Exception as e:  # every user-caused problem is reported, not raised
        return {"problem": str(e)}
    test_ids = split["test"][: config.n_test or None]
    return {
        "problem": None,
        "fingerprint": corpus.fingerprint,
        "corpus": corpus_summary(corpus),
        "split": {
            "pairs": split["pairs"],
            "train": len(split["train"]),
            "test": len(test_ids),
            "test_split": len(split["test"]),
            "test_ids": test_ids,
            "qa_file": str(config.qa),
        },
    }


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

    Chunked in the generator's tokens, as a run would, in the bounded corpus child. Never
    raises: see `preview_inputs`.
    """
    config = replace(config or RunConfig(), corpus=str(corpus))
    return in_corpus_child(_preview_corpus_here, config)


def _preview_corpus_here(corpus: Path, config: dict[str, Any]) -> dict[str, Any]:
    """`preview_corpus` in this process (the corpus child)."""
    try:
        c = read_corpus(corpus, RunConfig.from_dict(config))
    except MemoryError:
        raise  # the child says how much memory it had
    except Exception as e:  # every user-caused problem is reported, not raised
        return {"problem": str(e)}
    problem = None if c.chunks else f"the corpus at {corpus} has no usable text"
    return {"problem": problem, "fingerprint": c.fingerprint, "corpus": corpus_summary(c)}


def generate_pairs_bounded(corpus: str | Path, qagen: QAGenConfig) -> dict[str, Any]:
    """Q/A pairs made without a model (`qagen.method` other than "model") from a corpus, in
    the bounded corpus child: {"records": editable rows (core.qagen.pairs_to_records),
    "stats": what was considered and rejected}. Raises ValueError with the reason when the
    corpus cannot be read or the child refused it."""
    if qagen.method == "model":
        raise ValueError("generation with a model runs in the worker (a qagen job)")
    config = RunConfig(corpus=str(corpus))
    made = in_corpus_child(_generate_pairs_here, config, qagen.to_dict())
    if made.get("problem"):
        raise ValueError(made["problem"])
    return made


def _generate_pairs_here(corpus: Path, config: dict[str, Any], qagen: dict) -> dict[str, Any]:
    """`generate_pairs_bounded` in this process (the corpus child)."""
    try:
        read = read_corpus(corpus, RunConfig.from_dict(config))
        result = generate_qa(read, QAGenConfig.from_dict(qagen))
    except MemoryError:
        raise  # the child says how much memory it had
    except Exception as e:  # every user-caused problem is reported, not raised
        return {"problem": str(e)}
    return {"records": pairs_to_records(result.pairs), "stats": result.stats}


def format_pairs_bounded(corpus: str | Path, qa: str | Path) -> FormatTask:
    """The format task made from a corpus's Q/A file (core.format_pairs.build_format_task),
    read in the bounded corpus child (quotes need the documents' text). Raises ValueError with
    the reason when the corpus or the Q/A file cannot be read."""
    config = RunConfig(corpus=str(corpus), qa=str(qa))
    made = in_corpus_child(_format_pairs_here, config, tokenizer=False)
    if made.get("problem"):
        raise ValueError(made["problem"])
    return FormatTask(made["records"], made["schema"])


def _format_pairs_here(corpus: Path, config: dict[str, Any]) -> dict[str, Any]:
    """`format_pairs_bounded` in this process (the corpus child)."""
    config = RunConfig.from_dict(config)
    try:
        read = ingest(Path(corpus), config.chunking, whitespace_token_spans)
        made = build_format_task(load_qa(config.qa), {d.name: d.text for d in read.documents})
    except MemoryError:
        raise  # the child says how much memory it had
    except Exception as e:  # every user-caused problem is reported, not raised
        return {"problem": str(e)}
    return {"records": made.records, "schema": made.schema}
