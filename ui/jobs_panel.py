"""The owner's comparison runs in progress, with words, a moving bar, the time left and Cancel;
drawn on the Run page and in History, from the store, so any tab of the owner sees the same.

Watching must cost the server ~nothing (issue 36: one tab polling every second kept it at a
third of a core on a 2-core machine the run needs): only the progress fragment reruns, every
POLL_S seconds and only while a job of this owner is queued or running; each poll reads the
job rows, and a run's plan and estimate once per session."""

from __future__ import annotations

import time

import streamlit as st

from eval.store.runs import RunNotFound, RunStore
from service.estimate.check import stored_estimate
from service.jobs import RUN_KINDS, Job, JobQueue, serve_queued
from service.jobs.progress_view import ProgressLine, describe_job, reads_oracle, run_plan
from ui.common import access, current_owner, store_path

# Seconds between two reads of a background job's progress. A run's stages take minutes and
# its bar moves with counters, so a few seconds is live enough; each read reruns a fragment.
POLL_S = 4.0


@st.cache_resource(max_entries=8)
def job_queue(path: str) -> JobQueue:
    """One queue object per store file: it holds only the path, and building one runs its
    CREATE TABLE scripts, which a poll every few seconds need not repeat."""
    return JobQueue(path)


def queue_here() -> JobQueue:
    return job_queue(str(store_path().resolve()))


def active_runs(queue: JobQueue) -> list[Job]:
    """This owner's queued or running comparison jobs, newest first."""
    jobs = queue.list_jobs(owner=current_owner(), kinds=RUN_KINDS)
    return [j for j in jobs if j.status in ("queued", "running")]


def _line(store: RunStore, job: Job) -> ProgressLine | None:
    """The job's progress line; the run's plan and stored estimate are read once per session
    (they do not change while it runs) unless the estimate was not stored yet."""
    plans = st.session_state.setdefault("_run_plans", {})
    if job.run_id not in plans:
        try:
            run = store.get_run(job.run_id)
        except RunNotFound:  # deleted meanwhile
            return None
        plan, estimate = run_plan(run.config), stored_estimate(run)
        oracle = reads_oracle(run.config)
        if estimate is None:  # launched a moment ago: the page stores the estimate just after
            return describe_job(job, plan, time.time(), None, oracle)
        plans[job.run_id] = (plan, estimate, oracle)
    plan, estimate, oracle = plans[job.run_id]
    return describe_job(job, plan, time.time(), estimate, oracle)


def runs_in_progress(where: str) -> None:
    """One bar and Cancel per running job of this owner, refreshed every POLL_S seconds while
    there is one; when one ends the page reruns, so buttons that wait for it (Run comparison)
    come back. Draws nothing, and polls nothing, when no run of this owner is going."""
    going = bool(active_runs(queue_here()))
    st.fragment(_progress, run_every=POLL_S if going else None)(where)


def _progress(where: str) -> None:
    queue = queue_here()
    store = queue.store
    active = active_runs(queue)
    serve_queued(queue, active)  # a worker that died or went idle is started again
    seen_key = f"_active_runs_{where}"
    before = st.session_state.get(seen_key, set())
    now = {j.id for j in active}
    st.session_state[seen_key] = now
    if before - now:
        st.rerun(scope="app")
    for job in active:
        line = _line(store, job)
        if line is None:
            continue
        head = f"Run {job.run_id}"
        c1, c2 = st.columns([6, 1], vertical_alignment="bottom")
        c1.progress(line.fraction, text=f"{head} · {line.text}")
        if job.cancel_requested:
            c2.caption("Cancelling…")
        elif c2.button("Cancel", key=f"{where}_cancel_{job.id}"):
            queue.cancel(job.id, access())
            st.rerun(scope="fragment")
