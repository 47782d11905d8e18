"""Operator: for the admins of a shared server (listed in `<home>/server.yaml`), every account's
queued and running jobs with cancel, and each account's disk use against its quota.

The app lists this page only for an admin; the page checks again, since a page's address could
be typed by anyone."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from core.access import Access
from eval.store.artifacts import human_bytes
from service.accounts import AccountBook
from service.admin import account_uses, owner_label
from service.jobs import JobNotFound, JobQueue
from service.limits import load_worker_limits
from ui.common import hide_paths, home, md, store_path

st.title("Operator")
if not st.session_state.get("admin"):
    st.error("This page is for the server's admins.")
    st.stop()

queue = JobQueue(store_path())
labels = AccountBook(store_path()).labels()
limits = load_worker_limits(home())
st.caption(
    f"Caps: {limits.owner_jobs} jobs per account, {limits.queued_jobs} queued in all, "
    f"{limits.owner_disk_mb:g} MB of disk per account (`worker_limits.yaml`)."
)

st.subheader("Queue")
live = [j for j in queue.list_jobs(limit=1000) if j.status in ("queued", "running")]
if not live:
    st.info("Nothing queued or running.")
else:
    st.dataframe(
        pd.DataFrame(
            {
                "Job": [j.id for j in live],
                "Account": [owner_label(j.owner, labels) for j in live],
                "Kind": [j.kind for j in live],
                "Status": [j.status for j in live],
                "Stage": [j.stage for j in live],
                "Queued at": [
                    dt.datetime.fromtimestamp(j.created_at).strftime("%H:%M:%S") for j in live
                ],
            }
        ),
        hide_index=True,
    )
    names = {j.id: f"{j.id} · {owner_label(j.owner, labels)} · {j.kind}" for j in live}
    picked = st.selectbox("Job", list(names), format_func=names.get, key="op_job")
    if st.button("Cancel this job", key="op_cancel"):
        try:
            queue.cancel(picked, Access())  # the operator's full access: any account's job
        except JobNotFound as e:
            st.error(md(hide_paths(e)))
        else:
            st.success(f"Cancelled {md(picked)}.")

st.subheader("Accounts")
uses = account_uses(home(), store_path())
if uses:
    st.dataframe(
        pd.DataFrame(
            {
                "Account": [u.label for u in uses],
                "Disk used": [human_bytes(u.used_bytes) for u in uses],
                "Quota": [human_bytes(u.quota_bytes) for u in uses],
                "Queued": [u.queued for u in uses],
                "Running": [u.running for u in uses],
            }
        ),
        hide_index=True,
    )
else:
    st.info("No account has used the server yet.")
