"""A stored run loaded once for every view, and the helpers all views share: metric labels and
directions, roles of the stored strategies, interval formatting, argument checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eval.config import RunConfig
from eval.metrics import METRICS, headline_metric
from eval.records import COST_COLUMNS, CostSummary
from eval.stats.intervals import Interval
from eval.store.runs import Run, RunStore, StoredAnswer, StrategyResult
from strategies import baseline_strategy, get_strategy_class


@dataclass
class RunView:
    """A stored run with its answers, indexed for the dashboards.

    `results` are the finished (status "done") results; `main` excludes learning-curve variants
    (those whose extras carry `variant_of`).
    """

    run: Run
    answers: list[StoredAnswer]
    _by_strategy: dict[str, dict[str, StoredAnswer]] = field(default_factory=dict, repr=False)
    # figures the views derive from the stored run more than once (the paired tests), by key
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for a in self.answers:
            self._by_strategy.setdefault(a.strategy, {})[a.qid] = a
        # The stored config read once into its typed form; views read settings from here.
        self.settings: RunConfig = RunConfig.from_stored(self.run.config)

    @classmethod
    def load(cls, store: RunStore, run_id: str) -> RunView:
        """Read run `run_id` and all its answers from `store` (raises RunNotFound)."""
        return cls(store.get_run(run_id), store.get_answers(run_id))

    @property
    def results(self) -> list[StrategyResult]:
        return [r for r in self.run.results if r.status == "done"]

    @property
    def main(self) -> list[StrategyResult]:
        return [r for r in self.results if not r.extras.is_variant]

    def result(self, strategy: str) -> StrategyResult:
        for r in self.results:
            if r.strategy == strategy:
                return r
        done = ", ".join(r.strategy for r in self.results) or "none"
        raise KeyError(f"no finished strategy {strategy!r} in run {self.run.id} (finished: {done})")

    def has(self, strategy: str) -> bool:
        return any(r.strategy == strategy for r in self.results)

    def with_role(self, role: str) -> list[StrategyResult]:
        """Main results whose strategy class has `role` set (e.g. "trains", "retrieves");
        strategies no longer registered have no role."""
        return [r for r in self.main if has_role(r.strategy, role)]

    def answers_of(self, strategy: str) -> dict[str, StoredAnswer]:
        """qid -> stored answer of one strategy, in question order."""
        return self._by_strategy.get(strategy, {})

    def scores(self, strategy: str, metric: str) -> dict[str, float]:
        """qid -> score of one strategy on one metric (questions it does not apply to left out)."""
        return {
            q: float(a.scores[metric])
            for q, a in self.answers_of(strategy).items()
            if a.scores.get(metric) is not None
        }

    def qids(self) -> list[str]:
        """Every question id of the run, in the order the strategies answered them."""
        seen: dict[str, None] = {}
        for per in self._by_strategy.values():
            seen.update(dict.fromkeys(per))
        return list(seen)

    def groups(self) -> dict[str, str]:
        """qid -> group id of every question of the run: the source passage or near-duplicate
        group the split stored (core.qa.group_ids); a question the run stored no group for
        (every question of runs stored before groups were) is its own group."""
        stored = self.run.meta.split.groups
        return {q: str(stored.get(q, q)) for q in self.qids()}

    def n_groups(self, qids: list[str] | None = None) -> int:
        """How many independent groups `qids` (default: every question of the run) fall in."""
        groups = self.groups()
        return len({groups.get(q, q) for q in (self.qids() if qids is None else qids)})

    def currency(self) -> str:
        for r in self.results:
            if r.cost.currency:
                return r.cost.currency
        return self.settings.prices.currency


def has_role(strategy: str, role: str) -> bool:
    """Whether registered strategy `strategy` has the class attribute `role` set."""
    try:
        return bool(getattr(get_strategy_class(strategy), role, False))
    except KeyError:  # a stored run may name a strategy that is not registered any more
        return False


def baseline_name(base: str | None = None) -> str:
    """`base`, or the registered closed-book baseline strategy the views compare against."""
    return base or baseline_strategy() or "baseline"


def higher_is_better(metric: str) -> bool:
    """The metric's direction from the registry (unknown metrics: higher is better)."""
    return METRICS[metric].higher_is_better if metric in METRICS else True


CONTENDED_LABEL = "Contended"


def contended_mark(cost: CostSummary) -> str:
    """'yes' where the strategy's costs were measured on a contended machine (see
    eval.run.contention), '' where not, '—' for runs measured before the flag existed."""
    if cost.contended is None:
        return "—"
    return "yes" if cost.contended else ""


def format_interval(iv: Interval | None) -> str:
    """'0.412 [0.351, 0.470]', or '—' where the metric does not apply."""
    if iv is None or iv.mean is None:
        return "—"
    return f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def metric_names(run: Run) -> list[str]:
    """Metrics present in the run, in registry order (unknown ones last)."""
    seen = {m for r in run.results for m in r.metrics}
    return [m for m in METRICS if m in seen] + sorted(seen - set(METRICS))


def lead_metric(metrics: list[str], task: str) -> str:
    """The metric a view opens on: in a format or style run the first that only runs of its
    kind score and lead with (valid format, style pass), else F1, else the first present."""
    own = [m for m in metrics if headline_metric(m, task) and set(METRICS[m].tasks) == {task}]
    if own:
        return own[0]
    return "f1" if "f1" in metrics or not metrics else metrics[0]


def run_lead_metric(view: RunView) -> str:
    """The metric `view`'s run is judged by first (lead_metric of its task): what the Compare
    page opens on, and what `compare`, the report and `show` decide on unless told otherwise."""
    return lead_metric(metric_names(view.run), view.settings.task)


def check_metric(view: RunView, metric: str) -> None:
    present = metric_names(view.run)
    if metric not in present:
        raise ValueError(
            f"metric {metric!r} is not in run {view.run.id}; it has: {', '.join(present) or 'none'}"
        )


def check_cost(cost: str) -> None:
    known = [c.key for c in COST_COLUMNS]
    if cost not in known:
        raise ValueError(f"unknown cost {cost!r}; choose one of {', '.join(known)}")


def seed_of(view: RunView) -> int:
    """The run's split seed: paired tests on its questions are seeded with it."""
    return int(view.settings.split.seed)


def priced(cost: CostSummary) -> tuple[float | None, float | None, bool]:
    """(price per 1,000 questions, preparation price, whether from CPU time) of a strategy.

    From wall time as measured, unless the measurement was contended (eval.run.contention):
    then other work stretched the wall clock, and the price follows the CPU seconds per thread
    the strategy itself used (what an idle machine would have taken), never above the
    wall-time price. Runs measured before CPU time was recorded keep their wall-time prices."""
    per_1k, prep = cost.price_per_1k, cost.price_prepare
    threads = cost.threads or 0
    if not cost.contended or threads < 1:
        return per_1k, prep, False
    used = False
    if per_1k is not None and cost.cpu_mean_s and cost.latency_mean_s:
        per_1k *= min(1.0, cost.cpu_mean_s / threads / cost.latency_mean_s)
        used = True
    if prep and cost.contended_prepare and cost.prepare_cpu_s is not None and cost.prepare_s:
        prep *= min(1.0, cost.prepare_cpu_s / threads / cost.prepare_s)
        used = True
    return per_1k, prep, used
