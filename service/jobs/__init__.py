"""Background jobs: a durable queue in the run store's SQLite file (`queue`), what a running job
reports (`progress`), the bodies of each kind of job (`kinds`) and the worker process (`worker`).

Typical use (the app):
    queue = JobQueue(store_path)
    job_id = queue.submit(config, owner=session_id)
    ensure_worker(store_path)
    queue.get(job_id)  # poll
"""

from service.jobs.job import Job
from service.jobs.queue import FINISHED, RUN_KINDS, STALE_S, STATUSES, JobNotFound, JobQueue
from service.jobs.worker import ensure_worker, main_worker, serve_queued, work, worker_pid

__all__ = [
    "FINISHED",
    "RUN_KINDS",
    "STALE_S",
    "STATUSES",
    "Job",
    "JobNotFound",
    "JobQueue",
    "ensure_worker",
    "main_worker",
    "serve_queued",
    "work",
    "worker_pid",
]
