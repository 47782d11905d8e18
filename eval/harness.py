"""The shared evaluation harness: one corpus, one split, one base model, every strategy.

`run_comparison(config)` is the library entry point that the CLI, the app and the tests call.
It measures every strategy the same way (wall time and memory around `prepare()`, latency per
answered batch), scores every answer with the registered metrics, and stores each strategy's
results as soon as it finishes, so one crashing strategy never loses the others.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import random
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.corpus import hf_token_spans, ingest, whitespace_token_spans
from core.models import load_embedder, load_generator, load_tokenizer, resolve_device
from core.qa import load_qa, split_pairs
from core.types import Answer, Corpus, QAPair
from eval.config import RunConfig
from eval.costs import measure, price
from eval.metrics import METRICS, ScoringItem, normalize_answer, score_items
from eval.stats import bootstrap_ci, percentile
from eval.store import RunStore, StoredAnswer, StrategyResult
from strategies import create_strategy, get_strategy_class, make_config
from strategies.base import RunCancelled, StrategyContext

ProgressFn = Callable[[dict[str, Any]], None]

GENERAL_SET = Path(__file__).resolve().parent / "data" / "general_knowledge.jsonl"

PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "sentence-transformers",
    "faiss-cpu",
    "chromadb",
    "streamlit",
)


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


def run_comparison(
    config: RunConfig,
    *,
    store: RunStore | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    run_id: str | None = None,
    resume: bool = False,
    owner: str = "",
) -> str:
    """Run every configured strategy over the test split and store the results; returns the id.

    `progress` receives events ({"stage": ..., "strategy": ..., "done": ..., "total": ...}).
    `cancel` (an Event-like object with `is_set()`, or a callable returning True to stop) stops
    the run between batches. Errors in one strategy are stored with
    that strategy and the others still run; errors before any strategy (bad corpus, bad Q/A
    file) mark the run failed and are raised. With `resume`, results already stored as done in
    run `run_id` are kept and not run again (an interrupted run continues). A new run
    belongs to `owner` (core.owners; "" = the operator).
    """
    store = store or RunStore(config.store_path)
    emit = progress or (lambda event: None)
    if run_id:  # created earlier (a queued job) or resumed: running again from now on
        store.set_status(run_id, "running")
    else:
        run_id = store.create_run(config.to_dict(), config.name, owner=owner)
    try:
        _run(config, store, run_id, emit, cancel, resume=resume)
    except RunCancelled:
        store.finish_run(run_id, "cancelled", "cancelled by the user")
        emit({"stage": "cancelled"})
        return run_id
    except Exception as e:
        store.finish_run(run_id, "failed", f"{type(e).__name__}: {e}")
        emit({"stage": "failed", "error": str(e)})
        raise
    return run_id


def _run(
    config: RunConfig, store: RunStore, run_id: str, emit: ProgressFn, cancel, resume: bool = False
) -> None:
    names = list(config.strategies)
    device = resolve_device(config.models.device)
    meta: dict[str, Any] = {
        "device": device,
        "versions": package_versions(),
        "git": git_hash(),
        "batch_size": config.batch_size,
    }
    # Resuming keeps what an interrupted run already measured: those results are not redone.
    previous = store.get_run(run_id) if resume else None
    kept = {r.strategy for r in previous.results if r.status == "done"} if previous else set()

    tokenizer = None
    uses_models = needs_models(names)
    if uses_models:
        emit({"stage": "load_models"})
        # Loaded once for every strategy and timed apart, so no strategy's preparation time
        # includes loading the base model.
        with measure(device) as m:
            generator = load_generator(config.models)
            load_embedder(config.models)
        tokenizer = generator.tokenizer
        meta["models"] = {
            "generator": config.models.generator,
            "embedder": config.models.embedder,
            "load_s": m.seconds,
            "base_params": sum(p.numel() for p in generator.model.parameters()),
        }

    emit({"stage": "ingest"})
    inputs = load_inputs(config, tokenizer)
    meta.update(inputs.summary())
    store.update_run(run_id, fingerprint=inputs.corpus.fingerprint, **meta)
    if not inputs.test:
        raise ValueError("the test split is empty: add Q/A pairs or raise test_fraction")

    embedder = load_embedder(config.models) if _needs_embedder(config.metrics) else None
    workdir = Path(config.workdir)
    cancelled = getattr(cancel, "is_set", cancel) or (lambda: False)
    general = load_general_set(config.retention_questions) if uses_models else []
    retention_base = previous.meta.get("retention_base") if previous else None
    for name in names:
        for label, train, extras in _variants(name, config, inputs.train):
            if label in kept:
                emit({"stage": "strategy_done", "strategy": label, "status": "kept"})
                continue
            if cancelled():
                raise RunCancelled
            ctx = StrategyContext(
                models=config.models,
                workdir=workdir,
                seed=config.split.seed,
                progress=lambda ev, label=label: emit({**ev, "strategy": label}),
                cancelled=cancelled,
            )
            # Variants (learning-curve points) skip the retention set: it measures the model
            # a user would deploy, the one trained on all the data.
            asked = general if "variant_of" not in extras else []
            if asked and retention_base is None:
                retention_base = _retention_base(config, ctx, inputs, general, emit)
                store.update_run(run_id, retention_base=retention_base)
            result, answers, general_answers = _evaluate_strategy(
                name, config, ctx, inputs, emit, device, train=train, label=label, general=asked
            )
            result.extras.update(extras)
            if result.status == "done":
                emit({"stage": "score", "strategy": label})
                result.metrics = _score(answers, config, embedder)
                if general_answers:
                    result.extras["retention"] = _retention(
                        general, [a.text for a in general_answers], retention_base, config
                    )
            store.save_strategy(run_id, result, answers)
            emit({"stage": "strategy_done", "strategy": label, "status": result.status})
    store.finish_run(run_id, "done")
    emit({"stage": "done", "run_id": run_id})


def _variants(
    name: str, config: RunConfig, train: list[QAPair]
) -> list[tuple[str, list[QAPair], dict[str, Any]]]:
    """(label, training pairs, extras) for the main result and each learning-curve point.

    Learning-curve subsets are nested prefixes of one seeded shuffle (25% inside 50% inside 100%),
    so a higher point only ever adds data.
    """
    if not get_strategy_class(name).trains:
        return [(name, train, {})]
    out = [(name, train, {"train_fraction": 1.0, "train_pairs": len(train)})]
    order = list(train)
    random.Random(config.split.seed).shuffle(order)
    for f in sorted({float(x) for x in config.learning_curve}):
        n = max(1, round(f * len(train)))
        extras = {"variant_of": name, "train_fraction": f, "train_pairs": n}
        out.append((f"{name}@{f:.0%}", order[:n], extras))
    return out


def load_general_set(n: int) -> list[QAPair]:
    """The first `n` questions of the shipped general-knowledge set (eval/data)."""
    if n <= 0:
        return []
    return load_qa(GENERAL_SET)[:n]


def _answer_all(strategy, questions: list[str], batch_size: int, cancelled) -> list[Answer]:
    out: list[Answer] = []
    for start in range(0, len(questions), batch_size):
        if cancelled():
            raise RunCancelled
        out.extend(strategy.answer(questions[start : start + batch_size]))
    return out


def _retention_base(config, ctx, inputs, general: list[QAPair], emit) -> dict[str, Any]:
    """The base model's score on the general set, closed book with the default system prompt."""
    emit({"stage": "retention_base"})
    base = create_strategy("system_prompt", None, ctx)
    base.prepare(inputs.corpus, [])
    answers = _answer_all(base, [p.question for p in general], config.batch_size, ctx.cancelled)
    return _retention_scores(general, [a.text for a in answers], config)


def contains_gold(answer: str, golds) -> float:
    """1.0 when a gold answer appears, as whole words, in the answer (both SQuAD-normalised).

    The retention score: F1 would reward a model that merely learned to answer tersely, and
    fine-tuning on short answers does exactly that; containment asks whether the fact is there.
    """
    text = f" {normalize_answer(answer)} "
    return float(any(g and f" {g} " in text for g in map(normalize_answer, golds)))


def _retention_scores(general: list[QAPair], texts: list[str], config) -> dict[str, Any]:
    items = [ScoringItem(t, p.answers, []) for p, t in zip(general, texts, strict=True)]
    per = score_items(items, ["f1"], None)
    per["contains"] = [contains_gold(t, p.answers) for p, t in zip(general, texts, strict=True)]
    ci = {
        m: bootstrap_ci(v, n_resamples=config.bootstrap_resamples, seed=config.split.seed)
        for m, v in per.items()
    }
    return {
        "metric": "contains",
        "n": len(general),
        "score": ci["contains"].to_dict(),
        "f1": ci["f1"].to_dict(),
        "per_question": {p.id: v for p, v in zip(general, per["contains"], strict=True)},
        "answers": {p.id: t for p, t in zip(general, texts, strict=True)},
    }


def _retention(general, texts: list[str], base: dict[str, Any], config) -> dict[str, Any]:
    """This strategy's general-knowledge score, the base model's, and the change."""
    mine = _retention_scores(general, texts, config)
    lost = [
        qid
        for qid, v in base["per_question"].items()
        if (v or 0) >= 0.5 and (mine["per_question"].get(qid) or 0) < 0.5
    ]
    return {
        **mine,
        "base": base["score"],
        "delta": mine["score"]["mean"] - base["score"]["mean"],
        "forgotten": lost,  # general questions the base model got right and this one does not
    }


def rescore_retention(store: RunStore, run_id: str) -> bool:
    """Score the stored general-knowledge answers again (after a change of the retention
    score), without generating. Returns False when the run measured no retention."""
    run = store.get_run(run_id)
    base = run.meta.get("retention_base")
    if not base:
        return False
    config = RunConfig.from_dict(run.config)
    by_id = {p.id: p for p in load_qa(GENERAL_SET)}

    def scored(answers: dict[str, str], against: dict[str, Any] | None):
        ids = [i for i in answers if i in by_id]
        general, texts = [by_id[i] for i in ids], [answers[i] for i in ids]
        if against is None:
            return _retention_scores(general, texts, config)
        return _retention(general, texts, against, config)

    new_base = scored(base["answers"], None)
    store.update_run(run_id, retention_base=new_base)
    for r in run.results:
        if "retention" in r.extras:
            retention = scored(r.extras["retention"]["answers"], new_base)
            store.update_extras(run_id, r.strategy, retention=retention)
    return True


def needs_models(strategies: list[str]) -> bool:
    """Whether any of these strategies uses the shared generator or embedder."""
    return any(get_strategy_class(n).uses_models for n in strategies)


def _needs_embedder(metrics: list[str]) -> bool:
    """Whether scoring `metrics` (empty = every registered metric) needs the embedder."""
    return any(METRICS[m].needs_embedder for m in metrics or list(METRICS))


def _evaluate_strategy(
    name: str,
    config: RunConfig,
    ctx: StrategyContext,
    inputs: Inputs,
    emit: ProgressFn,
    device: str,
    *,
    train: list[QAPair] | None = None,
    label: str | None = None,
    general: list[QAPair] = (),
) -> tuple[StrategyResult, list[StoredAnswer], list[Answer]]:
    """Prepare and answer with one strategy, measured; failures become a failed result.

    `train` replaces the training split (learning-curve points), `label` names the stored result,
    and `general` questions are answered after the test split (not charged to its latency).
    """
    label = label or name
    train = inputs.train if train is None else train
    strategy_config = make_config(name, config.strategy_configs.get(name))
    result = StrategyResult(label, "failed", strategy_config.to_dict(), {}, {}, {})
    strategy = create_strategy(name, strategy_config, ctx)
    answers: list[Answer] = []
    general_answers: list[Answer] = []
    try:
        emit({"stage": "prepare", "strategy": label})
        with measure(device) as prep:
            report = strategy.prepare(inputs.corpus, train)
        result.prepare = {
            **asdict(report),
            "seconds": prep.seconds,
            "peak_rss_mb": prep.peak_rss_mb,
            "added_rss_mb": prep.added_rss_mb,
            "peak_gpu_mb": prep.peak_gpu_mb,
        }
        questions = [p.question for p in inputs.test]
        total = len(questions)
        emit({"stage": "answer", "strategy": label, "done": 0, "total": total})
        with measure(device) as ans:
            for start in range(0, total, config.batch_size):
                if ctx.cancelled():
                    raise RunCancelled
                batch = questions[start : start + config.batch_size]
                t0 = time.perf_counter()
                got = strategy.answer(batch)
                elapsed = time.perf_counter() - t0
                if len(got) != len(batch):
                    raise RuntimeError(f"{label} returned {len(got)} answers for {len(batch)}")
                # Batched generation: each question is charged an equal share of the batch.
                for a in got:
                    a.cost.latency_s = elapsed / len(batch)
                answers.extend(got)
                emit({"stage": "answer", "strategy": label, "done": len(answers), "total": total})
        result.cost = _cost_summary(answers, result.prepare, ans, device, config)
        if general:
            emit({"stage": "retention", "strategy": label})
            general_answers = _answer_all(
                strategy, [p.question for p in general], config.batch_size, ctx.cancelled
            )
        result.status = "done"
    except RunCancelled:
        raise
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
        result.prepare.setdefault("traceback", traceback.format_exc(limit=8))
        emit({"stage": "strategy_failed", "strategy": label, "error": result.error})
        answers, general_answers = [], []
    finally:
        with contextlib.suppress(Exception):  # closing must never hide the strategy's outcome
            strategy.close()
    stored = [
        StoredAnswer(label, p.id, p.question, list(p.answers), a)
        for p, a in zip(inputs.test, answers, strict=False)
    ]
    return result, stored, general_answers


def _cost_summary(answers, prepare: dict, ans, device: str, config: RunConfig) -> dict[str, Any]:
    lat = [a.cost.latency_s for a in answers]
    n = max(1, len(answers))
    mean_latency = sum(lat) / n
    return {
        "device": device,
        "questions": len(answers),
        "prepare_s": prepare["seconds"],
        "prepare_added_mb": prepare["added_rss_mb"],
        "answer_s": ans.seconds,
        "answer_added_mb": ans.added_rss_mb,
        "peak_rss_mb": max(prepare["peak_rss_mb"], ans.peak_rss_mb),
        "peak_gpu_mb": ans.peak_gpu_mb,
        "latency_mean_s": mean_latency,
        "latency_p50_s": percentile(lat, 50),
        "latency_p95_s": percentile(lat, 95),
        "prompt_tokens_mean": sum(a.cost.prompt_tokens for a in answers) / n,
        "output_tokens_mean": sum(a.cost.output_tokens for a in answers) / n,
        "trainable_params": prepare.get("trainable_params", 0),
        "artifact_mb": prepare.get("artifact_bytes", 0) / 2**20,
        "price_prepare": price(prepare["seconds"], device, config.prices),
        "price_per_1k": price(mean_latency * 1000, device, config.prices),
        "currency": config.prices.currency,
    }


def _score(answers: list[StoredAnswer], config: RunConfig, embedder) -> dict[str, dict]:
    """Per-question scores into each StoredAnswer, and each metric's mean with its 95% CI."""
    items = [ScoringItem(a.answer.text, tuple(a.golds), a.answer.contexts) for a in answers]
    names = config.metrics or list(METRICS)
    per_metric = score_items(items, names, embedder)
    summary = {}
    for metric, values in per_metric.items():
        for a, v in zip(answers, values, strict=True):
            a.scores[metric] = v
        summary[metric] = bootstrap_ci(
            values, n_resamples=config.bootstrap_resamples, seed=config.split.seed
        ).to_dict()
    return summary


def rescore(store: RunStore, run_id: str, metrics: list[str], embedder_config=None) -> None:
    """Score stored answers with `metrics` (e.g. newly registered ones) without generating."""
    from core.config import ModelConfig

    run = store.get_run(run_id)
    config = RunConfig.from_dict({**run.config, "metrics": metrics})
    models = embedder_config or ModelConfig.from_dict(run.config["models"])
    embedder = load_embedder(models) if _needs_embedder(metrics) else None
    for result in run.results:
        if result.status != "done":
            continue
        answers = store.get_answers(run_id, result.strategy)
        summary = _score(answers, config, embedder)
        per_q = {m: {a.qid: a.scores[m] for a in answers} for m in metrics}
        store.save_scores(run_id, result.strategy, per_q, summary)
    rescore_retention(store, run_id)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def git_hash() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
