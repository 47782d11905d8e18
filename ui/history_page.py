"""History: every stored run; filter, open, delete, resume, compare two runs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from eval import views as dashboards
from eval.artifacts import disk_usage, human_bytes
from eval.jobs import JobQueue, ensure_worker
from eval.views import metric_names
from ui.common import access, current_owner, metric_select, run_label, store, store_path

st.title("History")
state = st.session_state
s = store()
runs = s.list_runs(access=access())
if not runs:
    st.info("No runs yet.")
    st.stop()
mine, everyone = disk_usage(s.run_folders(access())), disk_usage(s.run_folders())
st.caption(
    f"Disk: {human_bytes(mine)} for the files of these runs (adapters, indexes, merged models), "
    f"{human_bytes(everyone)} for every run on this server. Deleting a run deletes its files."
)

c1, c2 = st.columns([1, 2])
statuses = sorted({r["status"] for r in runs})
shown_status = c1.multiselect("Status", statuses, default=statuses, key="hist_status")
text = c2.text_input("Filter by id, label or strategy", key="hist_text").strip().lower()
rows = [
    r
    for r in runs
    if r["status"] in shown_status
    and (
        not text
        or text in " ".join(str(r.get(k) or "") for k in ("id", "name", "strategies")).lower()
    )
]
table = pd.DataFrame(
    [
        {
            "Run": r["id"],
            "Label": r["name"] or "",
            "Status": r["status"],
            "Started": dt.datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M"),
            "Strategies": r["strategies"] or "",
        }
        for r in rows
    ]
)
st.dataframe(table, hide_index=True, key="hist_table")
if not rows:
    st.stop()

ids = [r["id"] for r in rows]
labels = {r["id"]: run_label(r) for r in rows}
picked = st.selectbox("Run", ids, format_func=labels.get, key="hist_pick")
status = next(r["status"] for r in rows if r["id"] == picked)
b1, b2, b3 = st.columns(3)
if b1.button("Open in Compare", key="hist_open"):
    state.run_id = picked
    st.switch_page("ui/compare_page.py")
if status == "interrupted" and b2.button("Resume", key="hist_resume"):
    try:
        state.job_id = JobQueue(store_path()).resume(picked, current_owner(), access())
    except ValueError as e:  # e.g. the Q/A file changed since: says what
        st.error(str(e))
    else:
        ensure_worker(store_path())
        st.success("Resumed: finished strategies are kept; follow it on the Run page.")
with b3.popover("Delete"):
    st.write(f"Delete run {picked} with all its answers and scores?")
    if st.button("Delete for good", type="primary", key="hist_delete"):
        try:
            s.delete_run(picked, access())
        except ValueError as e:  # still queued or running: cancel it first
            st.error(str(e))
        else:
            if state.get("run_id") == picked:
                state.run_id = None
            st.rerun()

st.subheader("Compare two runs")
if len(ids) < 2:
    st.info("Two runs are needed.")
    st.stop()
c1, c2 = st.columns(2)
first = c1.selectbox("First run", ids, format_func=labels.get, key="hist_a")
second = c2.selectbox("Second run", ids, index=1, format_func=labels.get, key="hist_b")
va, vb = dashboards.RunView.load(s, first), dashboards.RunView.load(s, second)
common = [r.strategy for r in va.main if vb.has(r.strategy)]
if first == second:
    st.info("Pick two different runs.")
elif not common:
    st.info("These runs share no finished strategy.")
else:
    shared_metrics = [m for m in metric_names(va.run) if m in metric_names(vb.run)]
    metric = metric_select(shared_metrics, "Metric", "hist_metric")
    out = []
    for name in common:
        try:
            t = dashboards.compare_runs(va, vb, name, metric)
        except (KeyError, ValueError) as e:
            out.append({"Strategy": name, "Result": str(e)})
            continue
        out.append({"Strategy": name, "Result": t.sentence()})
    st.dataframe(pd.DataFrame(out), hide_index=True, key="hist_compare")
