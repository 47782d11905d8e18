"""AdaptLab web app: pick a corpus and strategies, compare them. UI only: the library works.

Run with `make run` (or `streamlit run app.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import typing
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

from core.config import ConfigError, ModelConfig, PriceTable
from core.uploads import DOC_TYPES, QA_TYPES, UploadLimits, save_documents, save_qa
from eval.config import RunConfig
from eval.harness import preview_inputs
from eval.jobs import default_manager
from eval.report import cost_rows, failures, quality_rows
from eval.store import RunStore
from strategies import get_strategy_class, strategy_names

HOME = Path(os.environ.get("ADAPTLAB_HOME", ".adaptlab"))  # where the app keeps its data
SAMPLE = Path(__file__).resolve().parent / "sample_data"
LIMITS = UploadLimits()

st.set_page_config(page_title="AdaptLab", layout="wide")

state = st.session_state
state.setdefault("session_id", uuid.uuid4().hex[:12])
state.setdefault("job_id", None)
state.setdefault("run_id", None)
state.setdefault("show_hidden_strategies", False)  # tests switch on the model-free strategy

store = RunStore(HOME / "runs.sqlite")
manager = default_manager()


@st.cache_data(show_spinner="Reading the corpus...", max_entries=16)
def cached_preview(config_json: str) -> dict:
    return preview_inputs(RunConfig.from_yaml(config_json))


def setting_widget(prefix: str, f: dataclasses.Field, value, hint):
    """One widget for one config field, chosen by the field's type; help from the dataclass."""
    key, label, help_ = f"{prefix}.{f.name}", f.name.replace("_", " "), f.metadata.get("help")
    if hint is bool:
        return st.checkbox(label, value=value, help=help_, key=key)
    if hint is int:
        return int(st.number_input(label, value=int(value), step=1, help=help_, key=key))
    if hint is float:
        return float(st.number_input(label, value=float(value), format="%g", help=help_, key=key))
    if typing.get_origin(hint) is list:
        text = st.text_input(label, value=", ".join(map(str, value)), help=help_, key=key)
        return [x.strip() for x in text.split(",") if x.strip()]
    if isinstance(value, str) and len(value) > 60:
        return st.text_area(label, value=value, help=help_, key=key)
    return st.text_input(label, value=str(value), help=help_, key=key)


def settings_form(name: str) -> dict:
    """Widgets for every field of a strategy's config dataclass; returns the chosen values."""
    cls = get_strategy_class(name).config_class
    defaults, hints = cls(), typing.get_type_hints(cls)
    return {
        f.name: setting_widget(name, f, getattr(defaults, f.name), hints[f.name])
        for f in dataclasses.fields(cls)
    }


def uploaded_corpus(docs, qa_file) -> tuple[Path | None, Path | None, list]:
    """Save this session's uploads (once per distinct set of files); returns the paths."""
    if not docs:
        return None, None, []
    digest = hashlib.sha256()
    for f in docs:
        digest.update(f.name.encode() + f.getvalue())
    folder = HOME / "uploads" / state.session_id / digest.hexdigest()[:12]
    corpus_dir = folder / "corpus"
    saved, refused = save_documents([(f.name, f.getvalue()) for f in docs], corpus_dir, LIMITS)
    qa_path = None
    if qa_file is not None:
        try:
            qa_path = save_qa(qa_file.name, qa_file.getvalue(), folder, LIMITS)
        except ValueError as e:
            st.error(str(e))
    return (corpus_dir if saved else None), qa_path, refused


# --- Page ---------------------------------------------------------------------------------------
st.title("AdaptLab")
st.caption(
    "Should you fine-tune, use RAG, add few-shot examples or just write a better system prompt? "
    "Run all four on your own documents, with the same model and the same test questions."
)

left, right = st.columns([1, 1], gap="large")
with left:
    st.subheader("1. Corpus")
    source = st.radio(
        "Documents and questions",
        ["Bundled sample (two health articles, 367 Q/A pairs)", "Upload my own"],
        key="source",
    )
    refused_uploads: list = []
    if source.startswith("Bundled"):
        corpus_path, qa_path = SAMPLE / "corpus", SAMPLE / "qa.jsonl"
    else:
        docs = st.file_uploader(
            f"Documents ({', '.join(DOC_TYPES)}; up to {LIMITS.max_files} files, "
            f"{LIMITS.max_file_mb:g} MB each)",
            type=list(DOC_TYPES),
            accept_multiple_files=True,
            key="docs",
        )
        qa_upload = st.file_uploader(
            "Question/answer file (JSONL or CSV with `question` and `answers` or `answer`)",
            type=list(QA_TYPES),
            key="qa",
        )
        corpus_path, qa_path, refused_uploads = uploaded_corpus(docs, qa_upload)
        if corpus_path is None or qa_path is None:
            st.info("Upload at least one document and a Q/A file to continue.")

with right:
    st.subheader("2. Strategies and settings")
    offered = strategy_names(include_hidden=state.show_hidden_strategies)
    default = [n for n in ("system_prompt", "few_shot", "rag", "lora") if n in offered]
    chosen = st.multiselect("Strategies", offered, default=default, key="strategies")
    for name in chosen:
        st.caption(f"**{name}**: {get_strategy_class(name).description}")
    with st.expander("Run settings"):
        n_test = st.number_input(
            "Test questions (0 = the whole test split)",
            min_value=0,
            value=20,
            step=5,
            help=RunConfig.help()["n_test"],
            key="n_test",
        )
        seed = st.number_input("Seed", value=0, step=1, key="seed")
        generator = st.text_input(
            "Generator",
            value=ModelConfig().generator,
            help=ModelConfig.help()["generator"],
            key="generator",
        )
        embedder = st.text_input(
            "Embedder",
            value=ModelConfig().embedder,
            help=ModelConfig.help()["embedder"],
            key="embedder",
        )
        prices = {}
        for column, field in zip(st.columns(2), ("cpu_per_hour", "gpu_per_hour"), strict=True):
            prices[field] = column.number_input(
                f"{field[:3].upper()} price per hour ({PriceTable().currency})",
                min_value=0.0,
                value=getattr(PriceTable(), field),
                format="%g",
                help=PriceTable.help()[field],
                key=field,
            )
    strategy_settings = {}
    for name in chosen:
        with st.expander(f"{name} settings"):
            strategy_settings[name] = settings_form(name)

config = None
problem = None
if corpus_path is not None and qa_path is not None and chosen:
    try:
        config = RunConfig(
            corpus=str(corpus_path),
            qa=str(qa_path),
            strategies=list(chosen),
            strategy_configs=strategy_settings,
            models=ModelConfig(generator=generator, embedder=embedder),
            split={"seed": int(seed)},
            prices=prices,
            n_test=int(n_test),
            store_path=str(HOME / "runs.sqlite"),
            workdir=str(HOME / "work"),
        )
    except (ConfigError, TypeError, ValueError) as e:
        problem = f"Settings: {e}"
elif not chosen:
    problem = "Choose at least one strategy."

with left:
    for err in refused_uploads:
        st.warning(f"Refused **{err.name}**: {err.reason}")
    if config is not None:
        pre = cached_preview(config.to_yaml())
        if pre["problem"]:
            problem = pre["problem"]
        else:
            docs, split = pre["corpus"], pre["split"]
            st.write(
                f"**{docs['documents']}** documents, **{docs['chunks']}** chunks, "
                f"**{docs['tokens']:,}** tokens. **{split['pairs']}** Q/A pairs: "
                f"**{split['train']}** train, **{split['test_split']}** test"
                + (
                    f" (the run asks the first {split['test']})"
                    if split["test"] < split["test_split"]
                    else ""
                )
                + "."
            )
            for err in docs["errors"]:
                st.warning(f"Skipped **{err['name']}**: {err['reason']}")

if problem:
    st.error(problem)

st.subheader("3. Run")
job = manager.get(state.job_id) if state.job_id else None
running = job is not None and job["status"] in ("queued", "running")
col_run, col_cancel = st.columns([1, 5])
if col_run.button(
    "Run comparison", type="primary", disabled=config is None or bool(problem) or running, key="run"
):
    state.job_id = manager.submit(config)
    state.run_id = None
    st.rerun()
if running and col_cancel.button("Cancel", key="cancel"):
    manager.cancel(state.job_id)


@st.fragment(run_every=1.0)
def progress_panel():
    """Polls the background job; reruns the whole page once when the job ends."""
    snap = manager.get(state.job_id) if state.job_id else None
    if snap is None:
        return
    state.run_id = snap["run_id"] or state.run_id
    if snap["status"] in ("queued", "running"):
        frac = snap["done"] / snap["total"] if snap["total"] else 0.0
        what = {"train": "training", "answer": "answering"}.get(snap["stage"], snap["stage"])
        text = f"{snap['strategy'] or 'run'}: {what}"
        if snap["total"]:
            text += f" {snap['done']}/{snap['total']}"
        if snap["loss"] is not None and snap["stage"] == "train":
            text += f", loss {snap['loss']:.3f}"
        if snap["eta_s"] and snap["stage"] == "train":
            text += f", about {snap['eta_s']:.0f} s left"
        st.progress(min(1.0, frac), text=text)
        with st.expander("Log"):
            st.text("\n".join(snap["log"]))
    elif state.get("seen_end") != snap["id"]:
        state.seen_end = snap["id"]
        st.rerun()


progress_panel()
if job is not None and job["status"] == "failed":
    st.error(f"The run failed: {job['error']}")

st.subheader("4. Results")
runs = store.list_runs()
if runs:
    ids = [r["id"] for r in runs]
    labels = {r["id"]: f"{r['id']} · {r['status']} · {r['strategies'] or ''}" for r in runs}
    index = ids.index(state.run_id) if state.run_id in ids else 0
    # No key: when this session's newest run appears the widget resets to it.
    shown = st.selectbox("Run", ids, index=index, format_func=labels.get)
    run = store.get_run(shown)
    meta = run.meta
    split = meta.get("split", {})
    st.caption(
        f"Status: {run.status}. Test questions: {split.get('test', '?')}, train pairs: "
        f"{split.get('train', '?')}. Device: {meta.get('device', '?')}. "
        "Quality: mean with 95% bootstrap interval; — means not applicable."
    )
    if run.results:
        st.markdown("**Quality**")
        st.dataframe(pd.DataFrame(quality_rows(run)), hide_index=True, key="quality")
        st.markdown("**Cost**")
        st.dataframe(pd.DataFrame(cost_rows(run)), hide_index=True, key="cost")
    else:
        st.info("No strategy has finished yet.")
    for name, err in failures(run):
        st.error(f"{name} failed: {err}")
    if run.error and run.status != "done":
        st.warning(f"Run {run.status}: {run.error}")
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download JSON",
        store.export_json(shown),
        f"{shown}.json",
        "application/json",
        key="dl_json",
    )
    c2.download_button(
        "Download CSV", store.export_csv(shown), f"{shown}.csv", "text/csv", key="dl_csv"
    )
else:
    st.info("No runs yet: choose a corpus and strategies, then press Run comparison.")
