"""Compare: one stored run, first as a decision (what to use and why), then every dashboard.
Each number comes from the store."""

from __future__ import annotations

import streamlit as st

from eval import views
from eval.config import RunConfig
from eval.store.artifacts import merged_dir
from eval.views import charts
from eval.views.display import (
    cost_table,
    knowledge_table,
    quality_table,
    significance_table,
    stability_table,
)
from eval.views.format import display_name
from eval.views.html_report import cli_command, html_report, run_config_yaml
from eval.views.tables import failures, server_line
from eval.views.verdict.confidence import RANK_BY
from eval.views.verdict.decision import decide
from eval.views.verdict.diagnostics import diagnose, power_rows
from eval.views.verdict.stability import stability, stability_frame
from service.jobs import JobQueue, ensure_worker, serve_queued
from service.jobs.page_kinds import submit_merge
from ui.common import (
    access,
    corpus_name,
    current_owner,
    hide_paths,
    initial,
    keep_widgets,
    md,
    metric_select,
    pick_run,
    prose,
    store,
    store_path,
)
from ui.jobs_panel import POLL_S
from ui.judge_tracking import judge_section, tracking_note
from ui.tables import show_frame, show_table
from ui.tuning_tab import show_tuning


@st.fragment(run_every=POLL_S)
def merge_progress(job_key: str) -> None:
    """Polls the merge job in session state `job_key`; when it ends, the page reruns to show
    the merged model's size."""
    queue = JobQueue(store_path())
    job = queue.get(state[job_key])
    if job is None:
        return
    serve_queued(queue, [job])  # a worker that died or went idle is started again
    if job.status in ("queued", "running"):
        st.progress(0.0 if job.status == "queued" else 0.5, text=f"Merging: {job.stage}")
        return
    del state[job_key]
    if job.status == "failed":
        st.error(f"Merging failed: {md(hide_paths(job.error or ''))}")
    else:
        st.rerun()


st.title("Compare")
state = st.session_state
run_id = pick_run("cmp_run")
if run_id is None:
    st.stop()
view = views.RunView.load(store(), run_id)
run = view.run
meta, split, corpus = run.meta, run.meta.split, run.meta.corpus
models = meta.models
st.caption(
    f"Status: {run.status}. Corpus: **{md(corpus_name(run.config))}**, "
    f"{corpus.documents} documents, {corpus.chunks} chunks. "
    f"Q/A: {split.train} training pairs, {split.test} test questions. "
    f"Models: {md(hide_paths(models.get('generator', '—')))} / "
    f"{md(hide_paths(models.get('embedder', '—')))} on "
    f"{meta.device or '?'}."
)
if models.get("server"):
    st.caption(md(f"Engine: {models.get('engine')}, {server_line(models['server'])}."))
tracking_note(run)
for name, err in failures(run):
    st.error(f"{display_name(name)} failed: {md(hide_paths(err))}")
if run.error and run.status != "done":
    st.warning(f"Run {run.status}: {md(hide_paths(run.error))}")
if not view.main:
    st.info("No strategy of this run has finished yet.")
    st.stop()

metrics = views.metric_names(run)
metric = metric_select(metrics, "Quality metric", "cmp_metric", view.settings.task)
label = views.metric_label(metric)

overview, why, cost_tab, fine_tuning_tab, tuning_tab, questions, exports = st.tabs(
    ["Decision", "Why", "Cost", "Fine-tuning", "Tuning", "Questions", "Exports"]
)
diag = diagnose(view)

sbs = views.side_by_side(view)

with overview:
    for sentence in diag.headline:  # said before any ranking
        st.warning(prose(sentence))
    st.caption(
        f"Test set: {len(view.qids())} questions in {view.n_groups()} independent groups "
        "(questions of one source passage, or near-duplicates, count as one: every interval "
        "and test resamples whole groups; Holm's correction over every pair of strategies)."
    )
    c1, c2, c3 = st.columns(3)
    volume = c1.number_input(
        "Questions per month",
        min_value=1,
        value=initial("cmp.volume", 10_000, lambda v: isinstance(v, int) and v >= 1),
        step=1000,
        key="cmp.volume",
    )
    threshold = c2.number_input(
        f"Minimum {label}",
        min_value=0.0,
        max_value=1.0,
        value=float(initial("cmp.threshold", 0.1, lambda v: isinstance(v, float | int))),
        step=0.05,
        key="cmp.threshold",
    )
    months = c3.number_input(
        "Months to spread preparation over",
        min_value=1,
        value=initial("cmp.months", 12, lambda v: isinstance(v, int) and v >= 1),
        step=1,
        key="cmp.months",
    )
    rank_by = st.radio(
        "Recommend the strategy that is",
        list(RANK_BY),
        index=list(RANK_BY).index(initial("cmp.rank_by", "month", lambda v: v in RANK_BY)),
        format_func=RANK_BY.get,
        horizontal=True,
        key="cmp.rank_by",
        help="Cheapest per correct answer divides the cost per question by the share answered "
        "right: a cheap strategy that is often wrong costs more per useful answer.",
    )
    keep_widgets("cmp.")
    decision = decide(view, int(volume), metric, float(threshold), int(months), rank_by)
    (st.success if decision.choice else st.warning)(prose(decision.headline))
    for sentence in decision.sentences()[1:]:
        st.markdown("- " + prose(sentence))
    st.subheader("Quality")
    show_table(quality_table(view, sbs, metric), "quality_table")
    against = sbs.significance[sbs.significance.metric == metric]
    if not against.empty:
        with st.expander(f"Each strategy against the best on {label}"):
            show_table(significance_table(against), "against_best_table")
            st.caption(
                "Difference = strategy − best, with its 95% bootstrap interval; effect size = "
                "mean difference / SD of the differences. McNemar's test for right/wrong "
                "scores, the sign-flip test otherwise, both over whole groups of questions (one "
                "source passage or near-duplicates); the corrected p-value (Holm) allows for "
                "every pair of strategies, the same tests the headline reads."
            )
    st_split = stability(view, metric)
    if st_split is not None:
        st.subheader("Across re-drawn train/test splits")
        show_table(stability_table(stability_frame(st_split)), "stability_table")
        st.caption(
            "Splits won: those on which the strategy had the best mean (ties shared). Mean, "
            "spread, lowest and highest: its score across the splits."
        )
    judge_section(view)  # the judge against F1, when the run was judged
    st.subheader("Cost")
    # Ranked per right answer, that column is the reason: it takes the place of the cost per
    # 1,000 questions (in the column menu then), so the table still fits the page.
    per_right = rank_by == "per_right"
    show_table(
        cost_table(view, int(volume), int(months)),
        "cost_table",
        show=("money_per_right",) if per_right else (),
        hide=("price_per_1k",) if per_right else (),
    )

be = views.break_even(view)
if be.x_max < volume:  # the axis covers the volume the decision is made for
    be = views.break_even(view, x_max=float(volume) * 1.2)

with why:
    right = f"{views.metric_label(diag.metric)} ≥ {diag.threshold:g}"
    for sentence in diag.headline:
        st.warning(prose(sentence))
    st.subheader("Oracle reading: the generator's ceiling")
    if diag.oracle is not None:
        o = diag.oracle
        st.markdown(
            f"Reading each question's gold passage (RAG's layout, the same generator), it scores "
            f"**{views.metric_label(diag.metric)} {o.mean:.3f} [{o.low:.3f}, "
            f"{o.high:.3f}]** on {o.n} questions: the most any retrieval strategy can reach "
            "with this generator.",
            help="Measured once per run; its time is not charged to any strategy.",
        )
    else:
        st.info("Not measured in this run (switched off, or no test question has a passage).")
    st.subheader("Why answers were wrong")
    st.altair_chart(
        charts.attribution_chart(diag.cells, diag.oracle.mean if diag.oracle else None),
        width="stretch",
        key="attribution_chart",
    )
    st.caption(
        f"Right = {right}. Retrieval strategies: was the gold passage among the retrieved chunks? "
        "Closed-book ones: did the base model already know the answer?"
    )
    for strategy, text in diag.advice.items():
        st.markdown(f"- **{strategy}**: {text}")
    st.subheader("What this test set can detect")
    if diag.power:
        st.dataframe(power_rows(diag), hide_index=True, key="power_table")
        for line in diag.power:
            st.caption(line.sentence())
    else:
        st.info("One strategy only: nothing to compare.")

with cost_tab:
    st.subheader("Quality against cost")
    axis = st.selectbox("Cost axis", list(charts.AXES), format_func=charts.AXES.get, key="axis")
    qc = views.quality_vs_cost(view, metric, axis, int(volume), int(months))
    st.altair_chart(charts.quality_cost_chart(qc), width="stretch")
    st.caption("Points on the Pareto frontier: no other strategy is both better and cheaper.")

    trains = not be.pays_off.empty
    st.subheader("Break-even: when does fine-tuning pay off?" if trains else "Total cost")
    st.altair_chart(charts.break_even_chart(be, volume=int(volume)), width="stretch")
    if decision.fine_tuning:
        st.markdown(prose(decision.fine_tuning))
    st.caption(
        "Total cost = preparation + questions × price per question, at the run's price table."
    )

    st.subheader("Latency")
    st.altair_chart(charts.latency_chart(views.latency_frame(view)), width="stretch")

with fine_tuning_tab:
    st.subheader("Domain gain and general ability")
    rg = views.retention_vs_gain(view, metric)
    show_frame(
        rg,
        {
            "strategy": ("Strategy", ""),
            "mean": (label, "%.3f"),
            "domain_gain": (f"{label} gain over the base model", "%+.3f"),
            "retention_score": ("General knowledge", "%.3f"),
            "retention_base": ("Base model's general knowledge", "%.3f"),
            "retention_delta": ("Change in general knowledge", "%+.3f"),
        },
        "retention_table",
    )
    if rg.attrs.get("note"):
        st.caption(rg.attrs["note"])
    st.altair_chart(charts.retention_chart(rg), width="stretch")

    st.subheader("Known and new facts")
    ks = views.knowledge_slices(view, metric)
    if ks.table is None:
        st.info(ks.reason)
    else:
        st.caption(ks.reason)
        show_table(knowledge_table(ks.table, label), "slices_table")

    st.subheader("Training")
    if not view.with_role("trains"):  # said, rather than empty charts
        st.info(
            "No strategy of this run trains, so there is no learning curve, training loss or "
            "throughput to show. Choose a fine-tuning strategy on the Run page to see them."
        )
    else:
        st.markdown("**Learning curve**")
        lc = views.learning_curve(view, metric)
        if lc.empty:
            st.info("No learning curve in this run: set fractions under What to run.")
        else:
            st.altair_chart(charts.learning_curve_chart(lc), width="stretch")
        st.markdown("**Training loss**")
        st.altair_chart(charts.loss_curve_chart(views.loss_curves(view)), width="stretch")
        trained = views.throughput_rows(run)
        if trained:
            st.caption("Throughput of each training run (— where its log does not record it).")
            st.dataframe(trained, hide_index=True, key="throughput_table")

    st.subheader("Retrieval recall@k")
    recall = views.retrieval_recall(view)
    st.altair_chart(charts.recall_chart(recall), width="stretch")
    if not recall.empty:
        st.caption(
            "Retrieval on its own: was a chunk holding a gold answer among the passages "
            "(recall@k), and how high it ranked (MRR = mean of 1 / its rank, 0 when absent)."
        )
        shown = recall.assign(strategy=recall["strategy"].map(display_name)).rename(
            columns={
                "strategy": "Strategy",
                "retriever": "Retriever",
                "mean": "Recall@k",
                "low": "Recall low (95%)",
                "high": "Recall high (95%)",
                "n": "Questions",
                "top_k": "Passages (k)",
                "mrr": "MRR",
                "mrr_low": "MRR low (95%)",
                "mrr_high": "MRR high (95%)",
            }
        )
        st.dataframe(shown, hide_index=True, key="retrieval_table")

with tuning_tab:
    show_tuning(run)

with questions:
    st.subheader("Per question")
    which = st.radio(
        "Show",
        ["All questions", "Strategies disagree", "All wrong"],
        horizontal=True,
        key="explorer_filter",
    )
    qx = views.question_explorer(view, metric)
    if which == "Strategies disagree":
        qx = views.disagreements(qx)
    elif which == "All wrong":
        qx = views.all_wrong(qx)
    st.caption(
        f"{len(qx)} questions. Right/wrong at {label} ≥ 0.5. Each strategy's column is its "
        f"{label}; its answers are under the table's “Show/hide columns” button, and every "
        "answer of one question is in full below."
    )
    strategies = qx.attrs.get("strategies", [])
    config = {
        "question": st.column_config.TextColumn("Question", pinned=True, width=320),
        "golds": st.column_config.TextColumn("Gold answers", width="medium"),
    }
    for name in strategies:
        config[f"{name} answer"] = st.column_config.TextColumn(
            f"{display_name(name)}: answer", width="large"
        )
        config[f"{name} score"] = st.column_config.NumberColumn(
            display_name(name), format="%.2f", help=f"{label} of its answer."
        )
    order = ["question", "golds"] + [
        c for name in strategies for c in (f"{name} answer", f"{name} score")
    ]
    # A score per strategy fits the page where answer and score per strategy did not (3
    # strategies: 8 columns, 5 off-screen); the answers wait in the column menu.
    st.dataframe(
        qx[order] if not qx.empty else qx,
        hide_index=True,
        column_config=config,
        column_order=["question", "golds"] + [f"{name} score" for name in strategies],
        key="explorer",
    )
    if not qx.empty:
        picked = st.selectbox(
            "Read one question in full",
            list(qx.index),
            format_func=lambda i: qx.question[i],
            key="explorer_pick",
        )
        row = qx.loc[picked]
        st.markdown(f"**{md(row.question)}**  \nGold: {md(row.golds)}")
        for col, name in zip(st.columns(len(strategies)), strategies, strict=True):
            with col:
                score = row[f"{name} score"]
                st.markdown(
                    f"**{display_name(name)}**"
                    + ("" if score != score else f" · {label} {score:.2f}")
                )
                st.text(row[f"{name} answer"] or "(no answer)")
                if row[f"{name} contexts"]:
                    with st.expander("Passages or examples it used"):
                        st.text(row[f"{name} contexts"])

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
            st.session_state.html_report = (
                run_id,
                html_report(
                    s,
                    run_id,
                    metric=metric,
                    monthly_volume=int(volume),
                    threshold=float(threshold),
                    months=int(months),
                    corpus_name=corpus_name(run.config),
                ),
            )
    built = st.session_state.get("html_report")
    if built and built[0] == run_id:
        c3.download_button(
            "Download HTML report", built[1], f"{run_id}.html", "text/html", key="dl_html"
        )

    st.subheader("Repeat this run headless")
    st.download_button(
        "Run config (YAML)",
        run_config_yaml(run, portable_paths=True),
        f"{run_id}.yaml",
        "text/yaml",
        key="dl_yaml",
    )
    st.code(cli_command(run, f"{run_id}.yaml"), language="bash")

    trained = [r for r in view.main if r.prepare.trained]
    if trained:
        from strategies.lora import deploy

        st.subheader("Deploy a fine-tuned adapter")
        settings = RunConfig.from_stored(run.config)
        models_cfg = settings.models
        for r in trained:
            adapter = r.prepare.artifact_path
            merged = merged_dir(settings.workdir, run_id, r.strategy)
            st.markdown(f"**{display_name(r.strategy)}**: a trained adapter")
            try:
                zipped = deploy.export_adapter_zip(adapter)
            except (OSError, ValueError) as e:
                st.error(f"The adapter cannot be exported: {md(hide_paths(e))}")
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
                    st.error(md(hide_paths(e)))
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
                    f"Merged model saved with this run's files, in `runs/{run_id}/merged/"
                    f"{merged.name}` of the app's work folder: use that folder as the generator "
                    "(a local folder works wherever a model name does); deleting the run deletes "
                    "it."
                )
