"""Run: choose strategies and settings, see a dry-run estimate, launch in the background."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.allowlist import check_location, check_model, load_allowlist
from core.config import ConfigError
from eval.config import RunConfig
from eval.jobs import RUN_KINDS, JobQueue, ensure_worker, serve_queued
from eval.run.estimate import estimate_run
from strategies import default_strategies, get_strategy_class, strategy_names
from ui.common import (
    access,
    config_form,
    current_owner,
    home,
    selected_corpus,
    settings_form,
    store_path,
)

# RunConfig fields the Run page offers (dotted: inside a section); the others keep defaults.
RUN_PAGE_FIELDS = [
    "n_test",
    "split.seed",
    "retention_questions",
    "learning_curve",
    "models.generator",
    "models.embedder",
    "models.device",
    "prices.cpu_per_hour",
    "prices.gpu_per_hour",
    "name",
]

state = st.session_state
st.title("Run")

corpus = selected_corpus()
if corpus is None:
    st.info("Pick or upload a corpus on the Corpus page first.")
    st.page_link("ui/corpus_page.py", label="Go to Corpus", icon=":material/folder_open:")
    st.stop()
corpus_path, qa_path, corpus_name = corpus
if qa_path is None:
    st.warning(
        f"**{corpus_name}** has no question/answer pairs yet: generate them on the Corpus page."
    )
    st.page_link("ui/corpus_page.py", label="Go to Corpus", icon=":material/folder_open:")
    st.stop()
st.caption(f"Corpus: **{corpus_name}**")

offered = strategy_names(include_hidden=state.show_hidden_strategies)
default = [n for n in default_strategies() if n in offered]
chosen = st.multiselect("Strategies", offered, default=default, key="strategies")
for name in chosen:
    st.caption(f"**{name}**: {get_strategy_class(name).description}")

# The run's own settings, drawn from RunConfig like every strategy's settings below; the rest
# (paths, chosen strategies) come from the page.
page_defaults = RunConfig(
    corpus=str(corpus_path),
    qa=str(qa_path),
    store_path=str(store_path()),
    workdir=str(home() / "work"),
)
with st.expander("Run settings"):
    run_settings = config_form(page_defaults, "", only=RUN_PAGE_FIELDS)

strategy_settings = {}
for strategy in chosen:
    with st.expander(f"{strategy} settings"):
        strategy_settings[strategy] = settings_form(strategy)

config, problem = None, None
try:
    # Paths typed in the browser: only models and adapters this server allows.
    allow = load_allowlist(home())
    models = run_settings.setdefault("models", {})
    for kind in ("generator", "embedder"):
        models[kind] = check_model(models.get(kind, ""), kind, home(), allow)
    for settings in strategy_settings.values():
        if settings.get("adapter_path"):
            settings["adapter_path"] = check_location(
                settings["adapter_path"], home=home(), allow=allow, what="adapter"
            )
    config = RunConfig.from_dict(
        {**run_settings, "strategies": list(chosen), "strategy_configs": strategy_settings}
    )
except ValueError as e:  # ConfigError is a ValueError; so is a fraction that is not a number
    problem = f"Settings: {e}"
if not chosen:
    problem = "Choose at least one strategy."
if problem:
    st.error(problem)

queue = JobQueue(store_path())
st.subheader("Estimate")
st.caption(
    "A short probe: each strategy answers a few test questions; a strategy that trains runs one "
    "training step, multiplied by the steps the run would take. Nothing is stored."
)
if st.button("Estimate", disabled=config is None, key="estimate"):
    with st.spinner("Probing each strategy..."):
        try:
            state.estimate_result = estimate_run(config)
        except (ValueError, ConfigError, OSError) as e:
            state.estimate_result = None
            st.error(f"Cannot estimate: {e}")
est = state.get("estimate_result")
if est:
    rows = [
        {
            "Strategy": e["strategy"],
            "Prompt tokens / q": round(e["prompt_tokens_mean"]),
            "s / question": round(e["seconds_per_question"], 2),
            "Preparation s": round(e["prepare_s"], 1),
            "Total s": round(e["total_s"], 1),
            "Note": e["error"] or e["prepare_note"],
        }
        for e in est["strategies"]
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="estimate_table")
    st.write(
        f"{est['questions']} test questions, {est['train']} training pairs, "
        f"{est['retention_questions']} general questions on {est['device']}: about "
        f"**{est['total_s'] / 60:.1f} minutes** in all."
    )

st.subheader("Launch")
mine = queue.list_jobs(owner=current_owner(), kinds=RUN_KINDS)
active = [j for j in mine if j["status"] in ("queued", "running")]
if st.button("Run comparison", type="primary", disabled=config is None or bool(problem), key="run"):
    state.job_id = queue.submit(config, owner=current_owner())
    state.run_id = queue.get(state.job_id)["run_id"]
    ensure_worker(store_path())
    st.rerun()


@st.fragment(run_every=1.0)
def progress_panel():
    """Polls this session's jobs from the store; a reload or a second tab sees the same."""
    jobs = queue.list_jobs(owner=current_owner(), kinds=RUN_KINDS)
    if not jobs:
        return
    serve_queued(queue, jobs)  # a worker that died or went idle is started again
    for job in jobs[:5]:
        status = job["status"]
        head = f"Run {job['run_id']}: {status}"
        if status in ("queued", "running"):
            frac = job["done"] / job["total"] if job["total"] else 0.0
            what = {"train": "training", "answer": "answering"}.get(job["stage"], job["stage"])
            text = f"{job['strategy'] or 'run'}: {what}"
            if job["total"]:
                text += f" {job['done']}/{job['total']}"
            if job.get("loss") is not None and job["stage"] == "train":
                text += f", loss {job['loss']:.3f}"
            if job.get("eta_s") and job["stage"] == "train":
                text += f", about {job['eta_s']:.0f} s left"
            st.progress(min(1.0, frac), text=f"{head}: {text}")
            if st.button("Cancel", key=f"cancel_{job['id']}"):
                queue.cancel(job["id"], access())
            with st.expander("Log"):
                st.text("\n".join(job["log"]))
        elif status == "failed":
            st.error(f"{head}: {job['error']}")
        elif status == "interrupted":
            st.warning(f"{head}: the worker stopped; finished strategies are kept.")
            if st.button("Resume", key=f"resume_{job['id']}"):
                try:
                    state.job_id = queue.resume(job["run_id"], current_owner(), access())
                except ValueError as e:  # e.g. the Q/A file changed since: says what
                    st.error(str(e))
                else:
                    ensure_worker(store_path())
        else:
            st.success(f"{head}. Open the Compare page to read the results.")


progress_panel()
if active:
    st.caption("Runs go on in the background: reloading or closing this page does not stop them.")
st.page_link("ui/compare_page.py", label="Compare results", icon=":material/bar_chart:")
