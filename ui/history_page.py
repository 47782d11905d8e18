"""History: this owner's runs (corpus, strategies, status, duration); follow or cancel the one
in progress, open, resume, delete, see how close the estimate was, compare two runs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from core.untrusted.markup import escape_markdown
from eval import views
from eval.config import RunConfig
from eval.store.artifacts import disk_usage, human_bytes
from eval.store.rows import RunSummary
from eval.views import metric_names
from eval.views.format import display_name
from service.cluster.settings import where_ran
from service.estimate.check import estimate_accuracy
from service.jobs import JobQueue, ensure_worker
from service.jobs.progress_view import duration
from service.quota import owner_disk_use
from ui.common import (
    access,
    corpus_name,
    corpus_names,
    current_owner,
    hide_paths,
    home,
    metric_select,
    remember,
    remembered,
    run_label,
    store,
    store_path,
)
from ui.jobs_panel import runs_in_progress

st.title("History")
s = store()
runs_in_progress("history")
every = s.list_runs(access=access())
if not every:
    st.info("No runs yet.")
    st.stop()
mine = disk_usage(s.run_folders(access()))
quota = owner_disk_use(home(), current_owner(), s)  # per-owner quota: worker_limits.yaml
# Other owners' disk use is theirs: only a team workspace or an admin sees the server's total.
everyone = (
    f"{human_bytes(disk_usage(s.run_folders()))} for every run on this server. "
    if access().everything or st.session_state.get("admin")
    else ""
)
st.caption(
    f"Disk: {human_bytes(mine)} for the files of these runs (adapters, indexes, merged models)"
    f"{', ' + everyone if everyone else '. '}Deleting a run deletes its files. "
    f"Your files (runs, saved corpora, adapter uploads): {quota.describe()}."
)

saved = remembered()
c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
statuses = sorted({r.status for r in every})
shown_status = c1.multiselect("Status", statuses, default=statuses, key="hist_status")
text = c2.text_input("Filter by id, label, corpus or strategy", key="hist_text").strip().lower()
show_all = c3.toggle(
    "Show runs with nothing finished",
    value=saved.show_all_runs,
    key="hist_all",
    help="Cancelled, failed or running runs whose strategies have not finished yet.",
)
if show_all != saved.show_all_runs:
    remember(show_all_runs=show_all)

names = corpus_names()
configs = {r.id: s.get_run(r.id) for r in every}


def words(r: RunSummary) -> str:
    run = configs[r.id]
    return " ".join([r.id, r.name, ",".join(r.strategies), corpus_name(run.config, names)]).lower()


rows = [
    r
    for r in every
    if r.status in shown_status and (show_all or r.has_finished) and (not text or text in words(r))
]
hidden = sum(1 for r in every if not r.has_finished) if not show_all else 0
if hidden:
    st.caption(f"{hidden} run(s) with nothing finished are hidden.")


def took(r: RunSummary) -> str:
    if r.took_s is None:
        return "running" if r.status in ("queued", "running") else "—"
    return duration(r.took_s)


table = pd.DataFrame(
    [
        {
            "Run": r.id,
            "Label": r.name,
            "Corpus": corpus_name(configs[r.id].config, names),
            "Strategies": ", ".join(
                display_name(x) for x in RunConfig.from_stored(configs[r.id].config).strategies
            ),
            "Status": r.status,
            "Started": dt.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M"),
            "Took": took(r),
            "Where": where_ran(configs[r.id].meta, [x.extras for x in configs[r.id].results]),
            "Error": hide_paths(configs[r.id].error or "") if r.status == "failed" else "",
        }
        for r in rows
    ],
    columns=[
        *("Run", "Label", "Corpus", "Strategies", "Status", "Started", "Took", "Where"),
        "Error",
    ],
)
# Error is long text and empty but for failed runs: behind the column menu, and in full under
# the table for the run picked, so the other columns fit the page.
st.dataframe(
    table,
    hide_index=True,
    key="hist_table",
    column_order=[c for c in table.columns if c != "Error"],
    column_config={
        "Run": st.column_config.TextColumn(pinned=True),
        "Strategies": st.column_config.TextColumn(width="medium"),
    },
)
if not rows:
    st.stop()

ids = [r.id for r in rows]
labels = {r.id: run_label(r) for r in rows}
index = ids.index(saved.run_id) if saved.run_id in ids else 0
picked = st.selectbox("Run", ids, index=index, format_func=labels.get, key="hist_pick")
run = configs[picked]
if run.status == "failed" and run.error:
    st.error(f"This run failed: {escape_markdown(hide_paths(run.error))}")
for r in run.results:
    if r.status != "done":
        why = escape_markdown(hide_paths(r.error or "no error"))
        st.warning(f"{display_name(r.strategy)} failed: {why}")

b1, b2, b3 = st.columns(3)
if b1.button("Open in Compare", key="hist_open"):
    remember(run_id=picked)
    st.switch_page("ui/compare_page.py")
if run.status == "interrupted" and b2.button("Resume", key="hist_resume"):
    try:
        JobQueue(store_path()).resume(picked, current_owner(), access())
    except ValueError as e:  # e.g. the Q/A file changed since: says what
        st.error(escape_markdown(hide_paths(e)))
    else:
        ensure_worker(store_path())
        st.rerun()
with b3.popover("Delete"):
    st.write(f"Delete run {picked} with all its answers, scores and files?")
    if st.button("Delete for good", type="primary", key="hist_delete"):
        try:
            s.delete_run(picked, access())
        except ValueError as e:  # still queued or running: cancel it first
            st.error(escape_markdown(e))
        else:
            if saved.run_id == picked:
                remember(run_id=None)
            st.rerun()

acc = estimate_accuracy(run)
if not acc.empty:
    st.subheader("How close the estimate was")
    predicted, actual = acc.attrs["total"]
    if predicted and actual:
        st.caption(
            f"Predicted {duration(predicted)} in all, took {duration(actual)} "
            f"(actual / predicted = {actual / predicted:.2f})."
        )
    st.dataframe(
        acc.assign(strategy=[display_name(x) for x in acc.strategy]),
        hide_index=True,
        key="hist_estimate",
        column_config={
            "strategy": st.column_config.TextColumn("Strategy", pinned=True),
            "predicted_s_per_q": st.column_config.NumberColumn(
                "Predicted s/question", format="%.2f"
            ),
            "actual_s_per_q": st.column_config.NumberColumn("Measured s/question", format="%.2f"),
            "answer_ratio": st.column_config.NumberColumn(
                "Answering: measured / predicted", format="%.2f"
            ),
            "predicted_prepare_s": st.column_config.NumberColumn(
                "Predicted preparation (s)", format="%.1f"
            ),
            "actual_prepare_s": st.column_config.NumberColumn(
                "Measured preparation (s)", format="%.1f"
            ),
            "prepare_ratio": st.column_config.NumberColumn(
                "Preparation: measured / predicted", format="%.2f"
            ),
        },
    )

st.subheader("Compare two runs")
comparable = [r.id for r in rows if r.has_finished]
if len(comparable) < 2:
    st.info("Two runs with finished strategies are needed.")
    st.stop()
c1, c2 = st.columns(2)
first = c1.selectbox("First run", comparable, format_func=labels.get, key="hist_a")
second = c2.selectbox("Second run", comparable, index=1, format_func=labels.get, key="hist_b")
va, vb = views.RunView.load(s, first), views.RunView.load(s, second)
common = [r.strategy for r in va.main if vb.has(r.strategy)]
if first == second:
    st.info("Pick two different runs.")
elif not common:
    st.info("These runs share no finished strategy.")
else:
    shared_metrics = [m for m in metric_names(va.run) if m in metric_names(vb.run)]
    # Runs of one task kind open on what that kind is judged by; mixed kinds on F1.
    task = va.settings.task if va.settings.task == vb.settings.task else "qa"
    metric = metric_select(shared_metrics, "Metric", "hist_metric", task)
    out = []
    for name in common:
        try:
            t = views.compare_runs(va, vb, name, metric)
        except (KeyError, ValueError) as e:
            out.append({"Strategy": display_name(name), "Result": str(e)})
            continue
        out.append({"Strategy": display_name(name), "Result": t.sentence()})
    st.dataframe(pd.DataFrame(out), hide_index=True, key="hist_compare")
