"""The owner's comparison runs in progress, with words, a moving bar, the time left and Cancel;
drawn on the Run page and in History, from the store, so any tab of the owner sees the same."""

from __future__ import annotations

import time

import streamlit as st

from eval.store.runs import RunNotFound, RunStore
from service.estimate.check import stored_estimate
from service.jobs import RUN_KINDS, Job, JobQueue, serve_queued
from service.jobs.progress_view import describe_job, run_plan
from ui.common import access, current_owner, store_path


def active_runs(queue: JobQueue) -> list[dict]:
    """This owner's queued or running comparison jobs, newest first."""
    jobs = queue.list_jobs(owner=current_owner(), kinds=RUN_KINDS)
    return [j for j in jobs if j.status in ("queued", "running")]


def _line(store: RunStore, job: Job):
    try:
        run = store.get_run(job.run_id)
    except RunNotFound:  # deleted meanwhile
        return None
    return describe_job(job, run_plan(run.config), time.time(), stored_estimate(run))


@st.fragment(run_every=1.0)
def runs_in_progress(where: str) -> None:
    """One bar and Cancel per running job of this owner; when one ends the page reruns, so
    buttons that wait for it (Run comparison) come back."""
    queue = JobQueue(store_path())
    store = RunStore(store_path())
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
