"""What the verdict knows beyond the ranking: why each strategy lost, the generator's ceiling,
what the test set can detect, and whether cost figures were taken on a contended machine.

`diagnose(view)` reads a stored run (answers with their contexts, the stored gold passages and
oracle reading, per-question scores, cost records) and returns a `Diagnostics` record that the
CLI table, the Compare page, the HTML report and the JSON summary all show. Nothing here
generates or rescores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.tasks import TaskSpec
from eval.attribution import (
    CELL_LABELS,
    Cells,
    GoldPassage,
    VerdictConfig,
    advice,
    closed_book_cells,
    passage_retrieved,
    retrieval_cells,
)
from eval.metrics import metric_label
from eval.run.oracle import OracleReading
from eval.stats.intervals import Interval
from eval.stats.power import PowerLine, power_line
from eval.store.rows import RunMeta
from eval.views.run_view import baseline_name, format_interval, has_role, higher_is_better, seed_of
from eval.views.tables import render_table
from eval.views.tuning import tuning_notes
from eval.views.verdict.confidence import paired_family, significant_pairs
from strategies import get_strategy_class


@dataclass
class Diagnostics:
    """The verdict's diagnostic figures for one run (see the module docstring).

    headline: sentences the verdict says first: no strategy shown better, or the significant
        paired differences whose marginal intervals overlap (both read the Holm-adjusted paired
        tests of eval.views.verdict.confidence.paired_family); generator-limited.
    cells: per main strategy (except the base), its attribution cells; advice: its sentence.
    oracle: the oracle-reading mean, interval and n on `metric` (None when not measured);
        oracle_cost: what reading it cost (wall and CPU seconds, tokens).
    power: one PowerLine per strategy against the best on `metric`.
    contended: strategy -> whether its cost figures were taken on a contended machine.
    """

    metric: str
    threshold: float
    n: int
    headline: list[str] = field(default_factory=list)
    cells: list[Cells] = field(default_factory=list)
    advice: dict[str, str] = field(default_factory=dict)
    oracle: Interval | None = None
    oracle_cost: dict[str, Any] = field(default_factory=dict)
    power: list[PowerLine] = field(default_factory=list)
    contended: dict[str, bool] = field(default_factory=dict)
    all_overlap: bool = False  # context only: the verdict is the paired tests
    generator_limited: bool = False
    groups: int = 0  # independent groups among the test questions
    pairs: int = 0  # paired tests in the Holm family
    significant: list[dict[str, Any]] = field(default_factory=list)  # winner − loser rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "threshold": self.threshold,
            "n": self.n,
            "headline": self.headline,
            "attribution": [c.to_dict() for c in self.cells],
            "advice": self.advice,
            "oracle": None
            if self.oracle is None
            else {**self.oracle.to_dict(), "metric": self.metric, "cost": self.oracle_cost},
            "power": [p.to_dict() for p in self.power],
            "contended": self.contended,
            "all_overlap": self.all_overlap,
            "generator_limited": self.generator_limited,
            "groups": self.groups,
            "pairs": self.pairs,
            "significant": [
                {k: r[k] for k in ("a", "b", "diff", "diff_low", "diff_high", "p_holm", "test")}
                for r in self.significant
            ],
        }


def verdict_config(run_config: dict[str, Any]) -> VerdictConfig:
    """The run's verdict settings (defaults for runs stored before they existed)."""
    return VerdictConfig.from_dict(run_config.get("verdict") or {})


def retrieves(view, strategy: str) -> bool:
    """Whether a strategy retrieves: its `retrieves` role, or, for a strategy no longer
    registered, whether any of its stored answers used a retrieved chunk."""

    try:
        get_strategy_class(strategy)
    except KeyError:
        return any(
            c.kind == "chunk" for a in view.answers_of(strategy).values() for c in a.answer.contexts
        )
    return has_role(strategy, "retrieves")


def stored_gold(run_meta: RunMeta) -> dict[str, GoldPassage]:
    """qid -> gold passage as stored with the run (empty for runs stored before)."""
    return {q: GoldPassage(**g) for q, g in run_meta.gold_passages.items()}


def attribution(view, config: VerdictConfig, base: str | None = None) -> list[Cells]:
    """Cells of every main strategy but the base: retrieval strategies against the stored gold
    passages, closed-book ones against the base model's scores (when the run has the base)."""
    base = baseline_name(base)
    gold = stored_gold(view.run.meta)
    task = TaskSpec.from_dict(view.run.meta.task)  # a JSON gold is looked for by its fields
    metric, thr = config.right_metric, config.right_threshold
    base_scores = view.scores(base, metric) if view.has(base) else None
    out = []
    for r in view.main:
        if r.strategy == base:
            continue
        scores = view.scores(r.strategy, metric)
        if retrieves(view, r.strategy):
            flags = {
                q: passage_retrieved(gold.get(q), a.golds, a.answer.contexts, task)
                for q, a in view.answers_of(r.strategy).items()
            }
            out.append(retrieval_cells(r.strategy, scores, flags, thr))
        elif base_scores is not None:
            out.append(closed_book_cells(r.strategy, scores, base_scores, thr))
    return out


def trained_on_corpus_pairs(view, strategy: str) -> bool:
    """Whether `strategy` trained on pairs generated from the corpus (its stored config)."""
    return view.result(strategy).config.get("data") == "pairs+corpus"


def _gap_words(row: dict[str, Any], label: str, hib: bool) -> str:
    """'rag ahead of lora by 0.083 F1 [0.031, 0.140], Holm p 0.006' for a winner − loser row
    (for a lower-is-better metric the gap is loser − winner, so it reads positive too)."""
    sign = 1.0 if hib else -1.0
    gap, ends = sign * row["diff"], sorted((sign * row["diff_low"], sign * row["diff_high"]))
    return (
        f"{row['a']} ahead of {row['b']} by {gap:.3f} {label} [{ends[0]:.3f}, {ends[1]:.3f}], "
        f"Holm p {row['p_holm']:.3g}"
    )


def _overlap(a: Interval, b: Interval) -> bool:
    return a.low <= b.high and b.low <= a.high


def diagnose(view, config: VerdictConfig | None = None) -> Diagnostics:
    """Every diagnostic figure of a stored run, from its stored records."""
    config = config or verdict_config(view.run.config)
    metric = config.right_metric
    label = metric_label(metric)
    results = [r for r in view.main if r.mean(metric) is not None]
    n = max((r.interval(metric).n for r in results), default=0)
    d = Diagnostics(metric, config.right_threshold, n)
    d.groups = view.n_groups()

    oracle = OracleReading.from_dict(view.run.meta.oracle)
    ceiling = oracle.mean(metric) if oracle else None
    if oracle and ceiling is not None:
        d.oracle, d.oracle_cost = oracle.summary[metric], oracle.cost

    d.cells = attribution(view, config)
    d.advice = {
        c.strategy: advice(c, ceiling, label, trained_on_corpus_pairs(view, c.strategy))
        for c in d.cells
    }

    if results:
        ivs = {r.strategy: r.metrics[metric] for r in results}
        best = max(ivs, key=lambda s: ivs[s].mean)
        for r in results:
            if r.strategy != best:
                # simulated for the sign-flip test (about a second): once per view
                key = ("power", r.strategy, best, metric, config.power_target)
                if key not in view.memo:
                    view.memo[key] = power_line(
                        view.scores(r.strategy, metric),
                        view.scores(best, metric),
                        names=(r.strategy, best),
                        metric=metric,
                        target=config.power_target,
                        groups=view.groups(),
                        seed=seed_of(view),
                    )
                d.power.append(view.memo[key])
        names = list(ivs)
        d.all_overlap = len(names) > 1 and all(
            _overlap(ivs[a], ivs[b]) for i, a in enumerate(names) for b in names[i + 1 :]
        )
    # The verdict is the Holm-adjusted paired tests (one family, read by every view);
    # overlapping marginal intervals are only context.
    if len(results) > 1:
        family = paired_family(view, metric)
        d.pairs = int(len(family))
        d.significant = significant_pairs(view, metric)
        units = f"{n} questions" + (f" ({d.groups} independent groups)" if d.groups != n else "")
        holm_words = f"Holm's correction over {d.pairs} pair{'s' if d.pairs != 1 else ''}"
        if not d.significant:
            widest = max((p.mdd for p in d.power if p.mdd is not None), default=None)
            text = (
                f"No strategy is shown to be better on {units}: no paired difference is "
                f"significant after {holm_words}"
            )
            text += " (and every 95% interval overlaps)." if d.all_overlap else "."
            if widest:  # 0 when the scores do not vary: no gap size to quote
                text += f" This test set detects only gaps of about {widest:.2f} {label} or more."
            d.headline.append(text)
        else:
            hidden = [r for r in d.significant if _overlap(ivs[r["a"]], ivs[r["b"]])]
            if hidden:  # the marginal intervals would suggest no difference: say there is one
                gaps = "; ".join(_gap_words(r, label, higher_is_better(metric)) for r in hidden)
                d.headline.append(
                    f"Paired on the same {units}, with {holm_words}: {gaps}. Their separate 95% "
                    "intervals overlap, but the paired test removes what the questions share, "
                    "so the difference is significant."
                )
    if ceiling is not None and ceiling < config.low_ceiling:
        # A trained arm (RAFT) can read better than the base model reads the gold passage:
        # then the base generator limits the other strategies, not every score.
        above = [s for s in ivs if ivs[s].low > ceiling] if results else []
        d.generator_limited = not above
        reading = (
            f"Even reading the gold passage the generator scores {label} {ceiling:.2f} "
            f"(below {config.low_ceiling:g})"
        )
        if above:
            d.headline.append(
                f"{reading}, yet {', '.join(above)} scored above that ceiling: it limits the "
                "other strategies, not every score."
            )
        else:
            d.headline.append(
                f"{reading}: the generator, not the strategy, limits every score; a stronger "
                "model raises them all."
            )

    d.headline.extend(tuning_notes(view.run))  # an untuned arm, a tuning gain within noise
    d.contended = {r.strategy: bool(r.cost.contended) for r in view.main}
    busy = [s for s, c in d.contended.items() if c]
    if busy:
        d.headline.append(
            f"Cost figures of {', '.join(busy)} were measured while other work competed for "
            "the CPU: their times are inflated; compare CPU seconds instead."
        )
    return d


# --- as text (CLI) ------------------------------------------------------------------------------


def cells_rows(d: Diagnostics) -> list[dict[str, str]]:
    """One row per strategy: its four cells as 'count (share of its questions)'."""

    rows = []
    for c in d.cells:
        row = {"Strategy": c.strategy}
        for i, (cell, ids) in enumerate(c.qids.items()):
            share = len(ids) / c.n if c.n else 0.0
            row[f"cell {i + 1}"] = f"{CELL_LABELS[cell]}: {len(ids)} ({share:.0%})"
        rows.append(row)
    return rows


def power_rows(d: Diagnostics) -> list[dict[str, str]]:
    """One row per comparison against the best: n, gap, its MDD and the n for the target."""
    return [
        {
            "Comparison": f"{p.a} − {p.b}",
            "n": str(p.n),
            "Gap": "—" if p.mean_diff is None else f"{p.mean_diff:+.3f}",
            "Detectable gap (MDD)": "—" if p.mdd is None else f"{p.mdd:.3f}",
            f"n for {p.target:g}": "—" if p.n_needed is None else f"{p.n_needed:,}",
        }
        for p in d.power
    ]


def render_diagnostics(d: Diagnostics) -> str:
    """The diagnostics as text for the CLI: headline, oracle ceiling, cells, advice, power."""

    label = metric_label(d.metric)
    out = [f"Verdict diagnostics (an answer is right when {label} >= {d.threshold:g})"]
    out += [f"! {h}" for h in d.headline]
    if d.oracle is not None:
        out.append(
            f"Oracle reading (gold passage, same generator, RAG layout): {label} "
            f"{format_interval(d.oracle)} on {d.oracle.n} questions: the ceiling of "
            "any retrieval strategy with this generator."
        )
    else:
        out.append("Oracle reading: not measured (off, or no test question has a gold passage).")
    if d.cells:
        out += ["", "Why answers were wrong (attribution)"]
        for row in cells_rows(d):
            out.append(f"  {row.pop('Strategy')}: " + "; ".join(row.values()))
        out += [f"  -> {text}" for text in d.advice.values()]
    if d.power:
        out += [
            "",
            "Power (paired, alpha 0.05, power 0.8, for the test each comparison runs; "
            "each against the best)",
        ]
        out.append(render_table(power_rows(d)))
    return "\n".join(out)
