"""Job kinds the pages submit besides runs: preparing a run's strategies and answering a
question with each ("playground"), and folding a trained adapter into a full model
("merge"). Like comparison runs, they run in the worker with progress, so a reload neither
kills nor repeats them, and the page's script thread never loads a model.

A job's outcome is a JSON file (`JobQueue.result_path` of its kind, removed when the job is
pruned), rewritten as it grows: a playground
job adds each strategy's answer as soon as it has it, so a page can show answers one by one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.access import Access
from core.files import write_text_atomic
from core.types import known_fields
from core.untrusted.caps import MAX_QUESTION_CHARS, check_length
from eval.config import RunConfig
from eval.events import ProgressEvent
from eval.store.artifacts import Staged, merged_dir
from service.jobs.job import Job
from service.jobs.kinds import register_job_kind
from service.jobs.progress import CancelFlag, JobProgress
from service.jobs.queue import JobNotFound, JobQueue
from service.playground import Playground, PlaygroundAnswer
from strategies.lora import deploy

PLAYGROUND, MERGE = "playground", "merge"


# --- what the jobs write -----------------------------------------------------------------------
@dataclass
class PlaygroundResult:
    """A playground job's result so far: the strategies it prepared (and adapters, by label),
    what preparing warned about, and the answers given yet, in the strategies' order."""

    strategies: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    answers: list[PlaygroundAnswer] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategies": list(self.strategies),
            "warnings": list(self.warnings),
            "answers": [a.to_dict() for a in self.answers],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PlaygroundResult:
        known = known_fields(cls, d, skip=("answers",))
        answers = [PlaygroundAnswer.from_dict(a) for a in (d or {}).get("answers") or []]
        return cls(**known, answers=answers)


@dataclass
class ModelSizes:
    """Bytes on disk of a merged model and what it was built from (strategies.lora.deploy.sizes);
    None where not known (a hub base model, no merged model yet)."""

    base_bytes: int | None = None
    adapter_bytes: int | None = None
    merged_bytes: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ModelSizes:
        return cls(**known_fields(cls, d))


@dataclass
class MergeResult:
    """A merge job's result: where the merged model was saved and the sizes on disk."""

    path: str
    sizes: ModelSizes = field(default_factory=ModelSizes)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sizes": asdict(self.sizes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MergeResult:
        return cls(path=d["path"], sizes=ModelSizes.from_dict(d.get("sizes")))


# Each page kind's result record, read back by `job_result` from the job's kind.
RESULTS: dict[str, type[PlaygroundResult] | type[MergeResult]] = {
    PLAYGROUND: PlaygroundResult,
    MERGE: MergeResult,
}


# --- submitting and reading ------------------------------------------------------------------
def submit_playground(
    queue: JobQueue,
    run_id: str,
    question: str = "",
    adapters: list[tuple[str, str | Path]] = (),
    owner: str = "",
    access: Access = Access(),
) -> str:
    """Queue a playground job for stored run `run_id`: prepare its finished strategies (and the
    adapters given as (label, folder)), then answer `question` with each when there is one.
    Returns the job id. Raises RunNotFound for a run `access` does not see."""
    queue.store.get_run(run_id, access)
    check_length(question.strip(), MAX_QUESTION_CHARS, "the question")
    payload = {
        "run_id": run_id,
        "question": question.strip(),
        "adapters": [{"label": label, "path": str(path)} for label, path in adapters],
    }
    # The run id stays in the payload, not the job's run column: cancelling or failing this job
    # must never change the finished run's status.
    return queue.submit_task(PLAYGROUND, payload, owner)


def submit_merge(
    queue: JobQueue, run_id: str, strategy: str, owner: str = "", access: Access = Access()
) -> str:
    """Queue folding `strategy`'s adapter of run `run_id` into a copy of the base model, saved
    under the run's folder (`eval.store.artifacts.merged_dir`). Returns the job id. Raises
    RunNotFound for a run `access` does not see, ValueError when that strategy saved no
    adapter."""
    run = queue.store.get_run(run_id, access)
    _adapter_of(run, strategy)
    return queue.submit_task(MERGE, {"run_id": run_id, "strategy": strategy}, owner)


def job_result(
    queue: JobQueue, job_id: str, access: Access = Access()
) -> PlaygroundResult | MergeResult | None:
    """What a playground or merge job has written so far, as its kind's record (`RESULTS`);
    None before anything. Raises JobNotFound for a job `access` does not see or that is no
    page job."""
    job = queue.get(job_id)
    record = RESULTS.get(job.kind) if job is not None else None
    if job is None or record is None or not access.sees(job.owner):
        raise JobNotFound(job_id)
    path = queue.result_path(job_id, job.kind)
    if not path.is_file():
        # Versions before wrote page results under the qagen folder, where pruning never
        # looked; a job still listed from then reads from there.
        path = queue.result_path(job_id)
    if not path.is_file():
        return None
    return record.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _adapter_of(run, strategy: str) -> str:
    for r in run.results:
        if r.strategy == strategy and r.status == "done" and r.prepare.trained:
            return str(r.prepare.artifact_path)
    raise ValueError(f"{strategy} of run {run.id} saved no trained adapter")


# --- the bodies --------------------------------------------------------------------------------
class _Prepared:
    """The worker's last prepared playground: the next question on the same run (and adapters)
    is answered without preparing again. One at a time: each holds adapters and indexes."""

    key: str | None = None
    playground = None

    @classmethod
    def get(cls, queue: JobQueue, payload: dict[str, Any], progress: JobProgress):

        key = json.dumps([str(queue.path), payload["run_id"], payload["adapters"]])
        if cls.key == key and cls.playground is not None and cls.playground.strategies:
            return cls.playground
        cls.release()
        progress(ProgressEvent("prepare"))
        pg = Playground.from_run(queue.store, payload["run_id"])
        for adapter in payload["adapters"]:
            progress(ProgressEvent("prepare", strategy=adapter["label"]))
            pg.add_adapter(adapter["path"], label=adapter["label"])
        cls.key, cls.playground = key, pg
        return pg

    @classmethod
    def release(cls) -> None:
        """Close the kept playground (its adapters leave the shared generator)."""
        if cls.playground is not None:
            cls.playground.close()
        cls.key, cls.playground = None, None


release_playground = _Prepared.release


@register_job_kind(PLAYGROUND)
def playground(queue: JobQueue, job: Job, progress: JobProgress) -> str:
    """Prepare (or reuse) the run's strategies, then answer the question with each, writing
    every answer to the result file as it comes."""
    payload, cancel = job.config, CancelFlag(queue, job.id)
    pg = _Prepared.get(queue, payload, progress)
    out = PlaygroundResult(list(pg.strategies), list(pg.warnings))
    path = queue.result_path(job.id, job.kind)
    write_text_atomic(path, json.dumps(out.to_dict()))
    question = payload["question"]
    if not question:
        return "done"
    total = len(pg.strategies)
    progress(ProgressEvent("answer", done=0, total=total))
    for i, a in enumerate(pg.ask_each(question), start=1):
        out.answers.append(a)
        write_text_atomic(path, json.dumps(out.to_dict()))
        progress(ProgressEvent("answer", strategy=a.strategy, done=i, total=total))
        if cancel.is_set():
            return "cancelled"
    return "done"


@register_job_kind(MERGE)
def merge(queue: JobQueue, job: Job, progress: JobProgress) -> str:
    """Fold the adapter into a fresh copy of the base model, built in a temporary folder and
    renamed into the run's folder; the result file holds its path and the sizes on disk."""

    payload = job.config
    run = queue.store.get_run(payload["run_id"])
    strategy = payload["strategy"]
    adapter = _adapter_of(run, strategy)
    settings = RunConfig.from_stored(run.config)
    models = settings.models
    final = merged_dir(settings.workdir, run.id, strategy)
    progress(ProgressEvent("merge", strategy=strategy))
    with Staged(final) as staged:
        deploy.merge_adapter(models, adapter, staged.path)
        staged.publish()
    result = MergeResult(str(final), ModelSizes.from_dict(deploy.sizes(models, adapter, final)))
    write_text_atomic(queue.result_path(job.id, job.kind), json.dumps(result.to_dict()))
    return "done"
