"""Compare: every dashboard of one stored run. Each number comes from the store."""

from __future__ import annotations

import streamlit as st

from eval import views as dashboards
from eval.artifacts import merged_dir
from eval.jobs import JobQueue, ensure_worker, serve_queued
from eval.jobs.page_kinds import submit_merge
from eval.views import charts
from eval.views.html_report import cli_command, html_report, run_config_yaml
from eval.views.tables import failures
from ui.common import access, current_owner, metric_select, pick_run, store, store_path


@st.fragment(run_every=1.0)
def merge_progress(job_key: str) -> None:
    """Polls the merge job in session state `job_key`; when it ends, the page reruns to show
    the merged model's size."""
    queue = JobQueue(store_path())
    job = queue.get(state[job_key])
    if job is None:
        return
    serve_queued(queue, [job])  # a worker that died or went idle is started again
    if job["status"] in ("queued", "running"):
        st.progress(0.0 if job["status"] == "queued" else 0.5, text=f"Merging: {job['stage']}")
        return
    del state[job_key]
    if job["status"] == "failed":
        st.error(f"Merging failed: {job['error']}")
    else:
        st.rerun()


st.title("Compare")
state = st.session_state
run_id = pick_run("cmp_run", only_done=True)
if run_id is None:
    st.stop()
view = dashboards.RunView.load(store(), run_id)
run = view.run
meta, split, corpus = run.meta, run.meta.get("split", {}), run.meta.get("corpus", {})
models = meta.get("models", {})
st.caption(
    f"Status: {run.status}. Corpus: {corpus.get('documents', '?')} documents, "
    f"{corpus.get('chunks', '?')} chunks. Q/A: {split.get('train', '?')} train pairs, "
    f"{split.get('test', '?')} test questions. Models: {models.get('generator', '—')} / "
    f"{models.get('embedder', '—')} on {meta.get('device', '?')}."
)
for name, err in failures(run):
    st.error(f"{name} failed: {err}")
if run.error and run.status != "done":
    st.warning(f"Run {run.status}: {run.error}")
if not view.main:
    st.info("No strategy of this run has finished yet.")
    st.stop()

metrics = dashboards.metric_names(run)
metric = metric_select(metrics, "Quality metric for the charts", "cmp_metric")
label = dashboards.metric_label(metric)

overview, cost_tab, tuning, questions, exports = st.tabs(
    ["Overview", "Cost", "Fine-tuning", "Questions", "Exports"]
)

sbs = dashboards.side_by_side(view)
be = dashboards.break_even(view)

with overview:
    st.subheader("In short")
    st.markdown(dashboards.verdict(view, sbs, be, metric))
    st.subheader("Side by side")
    st.dataframe(sbs.display, hide_index=True, key="side_by_side")
    st.caption(
        "Quality: mean [95% bootstrap interval]. ★ best in the column. (=) the gap to the best "
        "is not significant (paired sign-flip test on the same questions, p ≥ 0.05)."
    )

    st.subheader("Recommendation")
    c1, c2, c3 = st.columns(3)
    volume = c1.number_input(
        "Questions per month", min_value=1, value=10_000, step=1000, key="rec_volume"
    )
    threshold = c2.number_input(
        f"Minimum {label}", min_value=0.0, max_value=1.0, value=0.1, step=0.05, key="rec_min"
    )
    months = c3.number_input(
        "Months to spread preparation over", min_value=1, value=12, step=1, key="rec_months"
    )
    rec = dashboards.recommend(view, int(volume), metric, float(threshold), int(months))
    (st.success if rec.choice else st.warning)(rec.summary)
    st.dataframe(rec.table, hide_index=True, key="rec_table")

with cost_tab:
    st.subheader("Quality against cost")
    axis = st.selectbox(
        "Cost axis", list(dashboards.COST_AXES), format_func=dashboards.COST_AXES.get, key="axis"
    )
    qc = dashboards.quality_vs_cost(view, metric, axis)
    st.altair_chart(charts.quality_cost_chart(qc), width="stretch")
    st.caption("Points on the Pareto frontier: no other strategy is both better and cheaper.")

    st.subheader("Break-even: when does fine-tuning pay off?")
    st.altair_chart(charts.break_even_chart(be), width="stretch")
    for sentence in be.pays_off.get("sentence", []):
        st.markdown(f"- {sentence}")
    st.caption(
        "Total cost = preparation + questions × price per question, at the run's price table."
    )

    st.subheader("Latency")
    st.altair_chart(charts.latency_chart(dashboards.latency_frame(view)), width="stretch")

with tuning:
    st.subheader("Domain gain and general ability")
    rg = dashboards.retention_vs_gain(view, metric)
    st.dataframe(rg, hide_index=True, key="retention_table")
    if rg.attrs.get("note"):
        st.caption(rg.attrs["note"])
    st.altair_chart(charts.retention_chart(rg), width="stretch")

    st.subheader("Known and new facts")
    ks = dashboards.knowledge_slices(view, metric)
    if ks.table is None:
        st.info(ks.reason)
    else:
        st.caption(ks.reason)
        st.dataframe(ks.table, hide_index=True, key="slices_table")

    st.subheader("Learning curve")
    lc = dashboards.learning_curve(view, metric)
    if lc.empty:
        st.info("No learning curve in this run: set fractions under Run settings on the Run page.")
    else:
        st.altair_chart(charts.learning_curve_chart(lc), width="stretch")

    st.subheader("Training loss")
    st.altair_chart(charts.loss_curve_chart(dashboards.loss_curves(view)), width="stretch")
    trained = dashboards.throughput_rows(run)
    if trained:
        st.caption("Throughput of each training run (— where its log does not record it).")
        st.dataframe(trained, hide_index=True, key="throughput_table")

    st.subheader("Retrieval recall@k")
    st.altair_chart(charts.recall_chart(dashboards.retrieval_recall(view)), width="stretch")

with questions:
    st.subheader("Per question")
    which = st.radio(
        "Show",
        ["All questions", "Strategies disagree", "All wrong"],
        horizontal=True,
        key="explorer_filter",
    )
    qx = dashboards.question_explorer(view, metric)
    if which == "Strategies disagree":
        qx = dashboards.disagreements(qx)
    elif which == "All wrong":
        qx = dashboards.all_wrong(qx)
    st.caption(f"{len(qx)} questions. Right/wrong at {label} ≥ 0.5.")
    st.dataframe(qx, hide_index=True, key="explorer")

with exports:
    st.subheader("Downloads")
    s = store()
    c1, c2, c3 = st.columns(3)
    c1.download_button(
        "Run as JSON", s.export_json(run_id), f"{run_id}.json", "application/json", key="dl_json"
    )
    c2.download_button(
        "Answers as CSV", s.export_csv(run_id), f"{run_id}.csv", "text/csv", key="dl_csv"
    )
    if c3.button("Build HTML report", key="build_html"):
        with st.spinner("Rendering the charts..."):
            st.session_state.html_report = (run_id, html_report(s, run_id, metric=metric))
    built = st.session_state.get("html_report")
    if built and built[0] == run_id:
        c3.download_button(
            "Download HTML report", built[1], f"{run_id}.html", "text/html", key="dl_html"
        )

    st.subheader("Repeat this run headless")
    st.download_button(
        "Run config (YAML)", run_config_yaml(run), f"{run_id}.yaml", "text/yaml", key="dl_yaml"
    )
    st.code(cli_command(run, f"{run_id}.yaml"), language="bash")

    trained = [
        r for r in view.main if r.prepare.get("trainable_params") and r.prepare.get("artifact_path")
    ]
    if trained:
        from core.config import ModelConfig
        from strategies import deploy

        st.subheader("Deploy a fine-tuned adapter")
        models_cfg = ModelConfig.from_dict(run.config["models"])
        for r in trained:
            adapter = r.prepare["artifact_path"]
            merged = merged_dir(run.config["workdir"], run_id, r.strategy)
            st.markdown(f"**{r.strategy}**: adapter at `{adapter}`")
            try:
                zipped = deploy.export_adapter_zip(adapter)
            except (OSError, ValueError) as e:
                st.error(f"The adapter cannot be exported: {e}")
                continue
            a, b = st.columns(2)
            a.download_button(
                "Adapter (peft, zip)",
                zipped,
                f"{run_id}-{r.strategy}-adapter.zip",
                "application/zip",
                key=f"dl_adapter_{r.strategy}",
            )
            job_key = f"merge_job_{run_id}_{r.strategy}"
            if b.button("Build merged model", key=f"merge_{r.strategy}"):
                # In the worker, like runs: a full model copy is seconds to minutes of work.
                try:
                    state[job_key] = submit_merge(
                        JobQueue(store_path()), run_id, r.strategy, current_owner(), access()
                    )
                except ValueError as e:
                    st.error(str(e))
                else:
                    ensure_worker(store_path())
            if state.get(job_key):
                merge_progress(job_key)
            sizes = deploy.sizes(models_cfg, adapter, merged if merged.exists() else None)
            st.dataframe(
                [
                    {"Artifact": k, "MB": None if v is None else round(v / 2**20, 2)}
                    for k, v in sizes.items()
                ],
                hide_index=True,
                key=f"sizes_{r.strategy}",
            )
            if merged.exists():
                st.caption(
                    f"Merged model at `{merged}`: use it as the generator (a local folder works "
                    "wherever a model name does)."
                )
