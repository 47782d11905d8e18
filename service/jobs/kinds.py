"""What each kind of job does, registered by kind: "run" and "resume" (a comparison run through
the harness), "qagen" (question/answer pairs generated from a corpus) and "estimate" (a dry-run
estimate of a run config). The worker looks the
body up here; a new kind of job is one registered function."""

from __future__ import annotations

import json
from collections.abc import Callable

from core.config import ModelConfig
from core.files import write_text_atomic
from core.qagen import QAGenConfig, generate_qa, pairs_to_records
from core.registry import Registry
from eval.config import RunConfig
from eval.events import ProgressEvent
from eval.run.inputs import read_corpus
from service.cluster.slots import with_operator_executor
from service.estimate.probe import estimate_run
from service.jobs.job import Job
from service.jobs.progress import CancelFlag, JobProgress
from service.jobs.queue import JobQueue
from service.tracking import run_and_track

# A job body: (queue, claimed job, progress sink) -> final status ("done" or "cancelled").
JobBody = Callable[[JobQueue, Job, JobProgress], str]
JOB_KINDS: Registry[JobBody] = Registry("job kind", KeyError, unique=False)


def register_job_kind(*kinds: str) -> Callable[[JobBody], JobBody]:
    """Decorator: run `fn` for jobs of each of `kinds`."""

    return JOB_KINDS.register(*kinds)


def job_body(kind: str) -> JobBody:
    """The registered body of jobs of `kind` (KeyError naming the known kinds otherwise)."""
    return JOB_KINDS[kind]


class _Cancelled(Exception):
    pass


@register_job_kind("run", "resume")
def compare(queue: JobQueue, job: Job, progress: JobProgress) -> str:
    """A comparison run into the job's run row; "resume" keeps the strategies already done."""

    run_id = job.run_id
    run_and_track(
        with_operator_executor(RunConfig.from_dict(job.config), queue.path),
        store=queue.store,
        progress=progress,
        cancel=CancelFlag(queue, job.id),
        run_id=run_id,
        resume=job.kind == "resume",
    )
    return "cancelled" if queue.store.get_run(run_id).status == "cancelled" else "done"


@register_job_kind("qagen")
def generate_pairs(queue: JobQueue, job: Job, progress: JobProgress) -> str:
    """Question/answer pairs from the job's corpus into `queue.result_path(job id)`."""

    payload, cancel = job.config, CancelFlag(queue, job.id)
    models = ModelConfig.from_dict(payload["models"])
    progress(ProgressEvent("read corpus"))
    corpus = read_corpus(payload["corpus"], RunConfig(models=models))
    progress(ProgressEvent("generate"))

    def step(done: int, total: int) -> None:
        progress(ProgressEvent("generate", done=done, total=total))
        if cancel.is_set():
            raise _Cancelled

    try:
        result = generate_qa(corpus, QAGenConfig.from_dict(payload["qagen"]), models, step)
    except _Cancelled:
        return "cancelled"
    result_json = json.dumps({"records": pairs_to_records(result.pairs), "stats": result.stats})
    write_text_atomic(queue.result_path(job.id), result_json)  # the page polls for it
    return "done"


@register_job_kind("estimate")
def estimate(queue: JobQueue, job: Job, progress: JobProgress) -> str:
    """A dry-run estimate of the job's run config into `queue.result_path(job id, "estimate")`.
    Models loaded here stay loaded in the worker for the run that follows."""

    # The operator's executor, as the run will have: the estimate shows its placement plan.
    config = with_operator_executor(RunConfig.from_dict(job.config), queue.path)
    result = estimate_run(config, progress=progress)
    write_text_atomic(queue.result_path(job.id, "estimate"), json.dumps(result.to_dict()))
    return "done"
