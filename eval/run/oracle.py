"""Oracle reading: every test question answered with its gold passage, the retrieval ceiling.

The run's generator reads each question's gold passage (see `eval.attribution.gold_passages`)
laid out exactly as RAG shows retrieved chunks, under the same system prompt. Its score is what
any retrieval strategy could reach with this generator if retrieval were perfect: when it is low,
the generator, not the strategy, limits every score. It is answered once per run, stored as a
run-level record (`OracleReading`, in the run's metadata) and its cost is counted apart from
every strategy. Stored answers can be scored again (`rescore_oracle`) without generating.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.types import Answer, Context, Corpus, PrepareReport, QAPair
from eval.attribution import GoldPassage
from eval.metrics import METRICS, ScoringItem, default_metrics, score_items
from eval.run.contention import cpu_clock, tokens_per_s
from eval.run.costs import price
from eval.stats.intervals import Interval, bootstrap_ci, intervals_from_dict
from strategies import get_strategy_class, make_config
from strategies.base import GenerativeStrategy, PromptConfig, RunCancelled, StrategyContext


class GoldReader(GenerativeStrategy):
    """Answers each question with its gold passage in the RAG layout (not registered: it reads
    the test pairs' passages, so it is a diagnostic, never a strategy to compare)."""

    config_class = PromptConfig
    description = "Oracle reading: the gold passage in the prompt, as RAG lays passages out."

    def __init__(self, config, ctx: StrategyContext, gold: Mapping[str, Context]):
        super().__init__(config, ctx)
        self.gold = dict(gold)  # question text -> its gold passage

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        self.set_system_prompt(corpus)
        return PrepareReport(details={"questions": len(self.gold)})

    def answer(self, questions: list[str]) -> list[Answer]:
        return self.generate_answers(
            questions, self.system, passages=[[self.gold[q]] for q in questions]
        )


@dataclass
class OracleReading:
    """The run-level oracle-reading record: answers, per-question scores and their summary.

    `found` counts how the gold passages were found ("passage", "answer", "none"); questions
    without one are not asked. `cost` holds wall and CPU seconds, contention and token figures
    (a `CpuSample` dict plus token means), apart from every strategy's cost.
    """

    n: int = 0
    found: dict[str, int] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # qid -> text, raw, cost
    golds: dict[str, list[str]] = field(default_factory=dict)  # qid -> gold answers
    passages: dict[str, str] = field(default_factory=dict)  # qid -> the passage read
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)  # metric -> qid ->
    summary: dict[str, Interval] = field(default_factory=dict)  # metric -> mean and its CI
    cost: dict[str, Any] = field(default_factory=dict)

    def mean(self, metric: str) -> float | None:
        iv = self.summary.get(metric)
        return None if iv is None else iv.mean

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any] | None) -> OracleReading | None:
        if not d:
            return None
        return OracleReading(**{**d, "summary": intervals_from_dict(d.get("summary"))})


def oracle_planned(strategies: Sequence[str], switched_on: bool = True) -> bool:
    """Whether a run of `strategies` reads the oracle: switched on (`verdict.oracle`) and some
    strategy has the `retrieves` role. The reading is the ceiling of retrieval; a run where no
    strategy retrieves would pay a generation per test question for a figure nobody compares.
    A strategy no longer registered counts as not retrieving."""
    if not switched_on:
        return False
    for name in strategies:
        try:
            if get_strategy_class(name).retrieves:
                return True
        except KeyError:
            continue
    return False


def oracle_contexts(test: Sequence[QAPair], gold: Mapping[str, GoldPassage]) -> dict[str, Context]:
    """qid -> the gold passage as a retrieved chunk, for the questions that have one."""
    return {
        p.id: Context(g.text, source=g.source)
        for p in test
        if (g := gold.get(p.id)) is not None and g.text
    }


def read_gold(
    ctx: StrategyContext,
    prompt: PromptConfig,
    corpus: Corpus,
    test: Sequence[QAPair],
    gold: Mapping[str, GoldPassage],
    *,
    batch_size: int = 8,
    cancelled: Callable[[], bool] = lambda: False,
    counted: Callable[[int, int], None] | None = None,
) -> tuple[list[QAPair], list[Answer], dict[str, Any]]:
    """Answer every test question that has a gold passage with it; returns (the pairs asked,
    their answers, cost: wall and CPU seconds, contention, token means and throughput).
    `counted(done, total)` is told after each batch (progress)."""

    contexts = oracle_contexts(test, gold)
    asked = [p for p in test if p.id in contexts]
    reader = GoldReader(prompt, ctx, {p.question: contexts[p.id] for p in asked})
    reader.prepare(corpus, [])
    answers: list[Answer] = []
    with cpu_clock() as clock:
        for start in range(0, len(asked), batch_size):
            if cancelled():
                raise RunCancelled
            answers.extend(reader.answer([p.question for p in asked[start : start + batch_size]]))
            if counted is not None:
                counted(len(answers), len(asked))
    n = max(1, len(answers))
    out_tokens = sum(a.cost.output_tokens for a in answers)
    cost = {
        **clock.to_dict(),
        "prompt_tokens_mean": sum(a.cost.prompt_tokens for a in answers) / n,
        "output_tokens_mean": out_tokens / n,
        "output_tokens_per_s": tokens_per_s(out_tokens, clock.wall_s),
    }
    return asked, answers, cost


def oracle_reading(
    asked: Sequence[QAPair],
    answers: Sequence[Answer],
    gold: Mapping[str, GoldPassage],
    cost: Mapping[str, Any],
) -> OracleReading:
    """The unscored record of an oracle reading (score it with `rescore_oracle`)."""
    return OracleReading(
        n=len(answers),
        found=dict(Counter(g.found_by for g in gold.values())),
        answers={
            p.id: {"text": a.text, "raw": a.raw, "cost": asdict(a.cost)}
            for p, a in zip(asked, answers, strict=True)
        },
        golds={p.id: list(p.answers) for p in asked},
        passages={p.id: gold[p.id].text or "" for p in asked},
        cost=dict(cost),
    )


def rescore_oracle(
    record: OracleReading,
    metrics: list[str],
    embedder: Any = None,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> OracleReading:
    """Score the stored oracle answers with `metrics` (kept beside earlier metrics) and
    summarise each with its bootstrap interval (whole groups resampled with `groups`, qid ->
    group id, as the strategies' intervals are). Returns the same record, updated."""

    # The ceiling is read on the answer-matching metrics; a judge would cost a generation per
    # oracle answer on top of the strategies' own.
    metrics = [m for m in metrics if not METRICS[m].needs_judge]
    qids = list(record.answers)
    items = [
        ScoringItem(
            record.answers[q]["text"],
            tuple(record.golds[q]),
            [Context(record.passages.get(q, ""))],
        )
        for q in qids
    ]
    labels = [groups.get(q, q) for q in qids] if groups else None
    for metric, values in score_items(items, metrics, embedder).items():
        record.scores[metric] = dict(zip(qids, values, strict=True))
        record.summary[metric] = bootstrap_ci(
            values, groups=labels, n_resamples=n_resamples, seed=seed
        )
    return record


def reader_prompt(strategy_configs: Mapping[str, Any], strategies: Sequence[str]) -> PromptConfig:
    """The system prompt settings the oracle reads under: those of the run's first strategy with
    the `retrieves` role, so the ceiling is that strategy's; else the defaults."""

    for name in strategies:
        cfg = make_config(name, strategy_configs.get(name))
        if get_strategy_class(name).retrieves and isinstance(cfg, PromptConfig):
            return PromptConfig(template=cfg.template, domain=cfg.domain)
    return PromptConfig()


def measure_oracle(
    config: Any,
    ctx: StrategyContext,
    corpus: Corpus,
    test: Sequence[QAPair],
    gold: Mapping[str, GoldPassage],
    embedder: Any = None,
    groups: Mapping[str, str] | None = None,
    counted: Callable[[int, int], None] | None = None,
) -> OracleReading | None:
    """Answer, cost and score the oracle reading of a run (`config` is its RunConfig); None
    when it is switched off, no strategy of the run retrieves (`oracle_planned`) or no test
    question has a gold passage."""

    if not oracle_planned(config.strategies, config.verdict.oracle):
        return None
    if not oracle_contexts(test, gold):
        return None
    prompt = reader_prompt(config.strategy_configs, config.strategies)
    asked, answers, cost = read_gold(
        ctx,
        prompt,
        corpus,
        test,
        gold,
        batch_size=config.batch_size,
        cancelled=ctx.cancelled,
        counted=counted,
    )
    cost["price"] = price(cost["wall_s"], ctx.device, config.prices)
    record = oracle_reading(asked, answers, gold, cost)
    return rescore_oracle(
        record,
        # The factual metrics: the oracle reads in the Q/A layout, whatever the run's task.
        config.metrics or default_metrics(),
        embedder,
        n_resamples=config.bootstrap_resamples,
        seed=config.split.seed,
        groups=groups,
    )
