"""Question/answer pairs generated from the corpus, for corpora that come without a Q/A file.

Two methods, one module each:
- "cloze" (`core.qagen.cloze`, default, no model): informative sentences become
  fill-in-the-blank questions, or "What is X?" for simple "X is a/the Y." sentences. The answer
  is always an exact span of the sentence, and the sentence is kept as the pair's `passage`.
- "model" (`core.qagen.model`): the configured generator reads a chunk and writes one question
  and a short answer. Only pairs whose answer is found in the chunk are kept (the stored answer
  is the chunk's own span); everything else is counted by reason. A weak model may keep almost
  nothing.

The sentence heuristics both use are in `core.qagen.heuristics`. Pairs are stored as JSONL with
id, question, answers, source and passage (`save_qa_jsonl`) and read back with
`core.qa.load_qa`; rows edited in the Corpus page's table go through `core.qagen.tables`. The
corpus-fact pairs LoRA trains on are next to its data, in `strategies.lora.corpus_facts`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.config import ModelConfig
from core.qagen.cloze import cloze_pairs
from core.qagen.config import BLANK, METHODS, ProgressFn, QAGenConfig, QAGenResult
from core.qagen.heuristics import split_sentences
from core.qagen.model import MODEL_PROMPT, find_span, model_pairs, parse_reply
from core.qagen.tables import (
    ANSWER_SEP,
    QARecordError,
    check_records,
    pairs_to_records,
    records_to_pairs,
    save_qa_jsonl,
)
from core.types import Corpus

__all__ = [
    "ANSWER_SEP",
    "BLANK",
    "METHODS",
    "MODEL_PROMPT",
    "QAGenConfig",
    "QAGenResult",
    "QARecordError",
    "check_records",
    "find_span",
    "generate_qa",
    "generated_qa_file",
    "pairs_to_records",
    "parse_reply",
    "records_to_pairs",
    "save_qa_jsonl",
    "split_sentences",
]


def generate_qa(
    corpus: Corpus,
    config: QAGenConfig | None = None,
    models: ModelConfig | None = None,
    progress: ProgressFn | None = None,
) -> QAGenResult:
    """Question/answer pairs from `corpus` (see QAGenConfig). Every answer is an exact span of
    the pair's `passage`; `source` is the document name.

    `models` is needed for method "model" (its generator writes the pairs). `progress(done,
    total)` is called per chunk (cloze) or per batch of prompts (model). Returns a QAGenResult
    whose `stats` says how many candidates were considered, kept and rejected, by reason; an
    empty `pairs` list is a valid result (the caller decides whether that is an error).
    """
    config = config or QAGenConfig()
    if config.method == "model":
        if models is None:
            raise ValueError("QA generation with method 'model' needs a ModelConfig (models=...)")
        return model_pairs(corpus, config, models, progress)
    return cloze_pairs(corpus, config, progress)


def generated_qa_file(
    corpus: Corpus, config: QAGenConfig, models: ModelConfig | None, folder: str | Path
) -> Path:
    """Generate pairs for `corpus` into `folder`/<fingerprint>-<settings hash>.jsonl, or reuse
    that file when it exists (same corpus, same settings). Raises ValueError when nothing
    could be generated, with the rejection counts."""
    settings = config.to_dict()
    if config.method == "model" and models is not None:
        settings["generator"] = models.generator
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    path = Path(folder) / f"{corpus.fingerprint or 'corpus'}-{key}.jsonl"
    if path.is_file():
        return path
    result = generate_qa(corpus, config, models)
    if not result.pairs:
        raise ValueError(
            f"no question/answer pairs could be generated from the corpus ({result.stats}); "
            "give a Q/A file or change the generation settings"
        )
    return save_qa_jsonl(result.pairs, path)
