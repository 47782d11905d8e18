"""Playground: one question, every prepared strategy of a stored run, answers side by side.

Strategies are prepared again from the run's stored config; a strategy that trained reuses the
adapter it saved (`Strategy.reuse_config`), so nothing is retrained. An exported adapter (a
folder, or a zip uploaded through the app) can be added next to them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.corpus import fingerprint
from core.types import Answer, PrepareReport
from eval.config import RunConfig
from eval.run.stamp import InputStamp
from eval.run.workbench import Workbench
from eval.store.runs import RunStore
from strategies import Strategy, get_strategy_class, make_config, strategies_with


@dataclass
class PlaygroundAnswer:
    """One strategy's answer to the playground question, timed alone."""

    strategy: str
    answer: Answer
    latency_s: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a playground job's result file holds."""
        return {
            "strategy": self.strategy,
            "answer": self.answer.to_dict(),
            "latency_s": self.latency_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlaygroundAnswer:
        return cls(d["strategy"], Answer.from_dict(d["answer"]), float(d["latency_s"]))


@dataclass
class Playground:
    """Prepared strategies of one run; `ask` answers a question with each of them."""

    run_id: str
    bench: Workbench
    strategies: dict[str, Strategy] = field(default_factory=dict)
    reports: dict[str, PrepareReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # A fresh folder for what preparing writes (indexes): never shared with a run or another
    # playground, removed on close().
    workdir: Path | None = None

    @property
    def config(self) -> RunConfig:
        return self.bench.config

    @classmethod
    def from_run(cls, store: RunStore, run_id: str, names: list[str] | None = None) -> Playground:
        """Prepare the run's finished strategies (or `names` among them) for questions.

        Raises ValueError when the run's corpus can no longer be read.
        """
        run = store.get_run(run_id)
        config = RunConfig.from_dict(run.config)
        done = {
            r.strategy: r for r in run.results if r.status == "done" and not r.extras.is_variant
        }
        chosen = [n for n in (names or list(done)) if n in done]
        try:
            bench = Workbench.open(config, chosen)
        except Exception as e:  # the corpus folder was deleted or moved since the run
            raise ValueError(f"the corpus of run {run_id} cannot be read any more: {e}") from e
        scratch = Path(config.workdir) / "playgrounds"
        scratch.mkdir(parents=True, exist_ok=True)
        pg = cls(run_id, bench, workdir=Path(tempfile.mkdtemp(prefix="playground-", dir=scratch)))
        then = InputStamp.from_dict(run.meta.inputs)
        if then is not None and then.corpus != fingerprint(bench.inputs.corpus.documents, {}):
            pg.warnings.append(
                "The documents changed since this run: retrieval uses their current text."
            )
        for name in chosen:
            result = done[name]
            cfg = get_strategy_class(name).reuse_config(
                # Strategies sit below eval: they read the stored JSON shape, not the record.
                make_config(name, result.config),
                result.prepare.to_dict(),
            )
            pg._add(name, name, cfg)
        return pg

    def _add(self, label: str, name: str, cfg) -> None:
        strategy = self.bench.strategy(name, cfg, self.bench.context(workdir=self.workdir))
        try:
            report = strategy.prepare(self.bench.inputs.corpus, self.bench.inputs.train)
        except Exception as e:  # one strategy that cannot be restored leaves the others usable
            strategy.close()
            self.warnings.append(f"{label} could not be prepared: {type(e).__name__}: {e}")
            return
        self.strategies[label] = strategy
        self.reports[label] = report

    def add_adapter(self, path: str | Path, label: str = "uploaded adapter") -> str | None:
        """Answer with a saved peft adapter too, through the first strategy that accepts one
        (closed book, the run's settings for it otherwise).

        Returns the label it answers under, or None (with a warning) if it could not be loaded.
        """
        takers = strategies_with("accepts_adapter")
        if not takers:
            self.warnings.append("no registered strategy can answer with an adapter")
            return None
        name = takers[0]
        base = make_config(name, self.config.strategy_configs.get(name))
        cfg = get_strategy_class(name).reuse_config(base, {"artifact_path": str(path)})
        before = len(self.strategies)
        self._add(label, name, cfg)
        return label if len(self.strategies) > before else None

    def ask(self, question: str) -> list[PlaygroundAnswer]:
        """Every prepared strategy's answer to `question`, timed one by one."""
        return list(self.ask_each(question))

    def ask_each(self, question: str) -> Iterator[PlaygroundAnswer]:
        """Each prepared strategy's answer to `question` as soon as it is ready (a page shows
        the first while the next is generated). Raises ValueError for an empty question."""
        question = question.strip()
        if not question:
            raise ValueError("type a question first")
        for label, strategy in list(self.strategies.items()):
            t0 = time.perf_counter()
            (answer,) = strategy.answer([question])
            latency = time.perf_counter() - t0
            answer.cost.latency_s = latency
            yield PlaygroundAnswer(label, answer, latency)

    def close(self) -> None:
        """Release adapters held in the shared generator, and remove the scratch folder."""
        for strategy in self.strategies.values():
            strategy.close()
        self.strategies.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
