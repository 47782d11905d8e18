"""Corpus: pick a saved corpus or upload one; see what was read; generate and edit Q/A pairs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from core.config import ModelConfig
from core.qa import load_qa_bounded
from core.qagen import (
    METHODS,
    QAGenConfig,
    check_records,
    records_to_pairs,
)
from core.untrusted.allowlist import check_model, load_allowlist
from core.untrusted.markup import escape_markdown
from eval.run.inputs import (
    format_pairs_bounded,
    generate_pairs_bounded,
    preview_corpus,
    preview_split,
)
from eval.views.format import count, noun
from service.corpus_library import CorpusLibrary
from service.jobs import JobQueue, ensure_worker, serve_queued
from service.quota import save_corpus_upload, save_format_task
from service.uploads import DOC_TYPES, QA_TYPES
from ui.common import (
    access,
    corpus_library,
    current_owner,
    hide_paths,
    home,
    md,
    my_folders,
    remember,
    remembered,
    selected_corpus,
    store,
    store_path,
    upload_limits,
)
from ui.jobs_panel import POLL_S

state = st.session_state
LIMITS = upload_limits()
library: CorpusLibrary = corpus_library()
queue = JobQueue(store_path())

st.title("AdaptLab")
st.caption(
    "Should you fine-tune, use RAG, add few-shot examples or just write a better system prompt? "
    "Run all four on your own documents, with the same model and the same test questions."
)
st.header("Corpus")


def why_unusable(entry) -> tuple[str | None, int]:
    """Why a just-saved corpus cannot be used (no document with text, a Q/A file that does not
    parse or holds no pairs), or None when it can; and how many documents have usable text."""
    # Read and chunked in the bounded corpus child (seconds: it loads the tokenizer), cached:
    # the page shows this same preview once the saved corpus is selected.
    pre = cached_preview(entry.docs_path, None)
    if pre.get("problem"):
        cached_preview.clear()  # a refusal may be passing (the server busy): not kept
    read = pre.get("corpus") or {}
    usable = int(read.get("documents") or 0)
    if pre.get("problem") and not read:  # refused as a whole: too much text, too much memory
        return pre["problem"], 0
    if pre.get("problem") or not read.get("chunks"):
        skipped = "; ".join(f"{e['name']}: {e['reason']}" for e in read.get("errors", []))
        return "no document has usable text" + (f" ({skipped})" if skipped else ""), 0
    if entry.uploaded_qa:
        name = entry.uploaded_qa.replace("\\", "/").rsplit("/", 1)[-1]
        try:
            pairs = load_qa_bounded(entry.uploaded_qa)  # in the bounded parser child
        except Exception as e:  # every parse problem is the upload's, said on the page
            return f"the question/answer file {name} cannot be read: {e}", usable
        if not pairs:
            return f"the question/answer file {name} holds no pairs", usable
    return None, usable


@st.cache_data(show_spinner="Reading the corpus...", max_entries=16)
def cached_preview(corpus: str, qa: str | None) -> dict:
    if qa is None:
        return preview_corpus(corpus)
    return preview_split(corpus, qa)


def format_pairs(entry, corpus_path, qa_path) -> None:
    """The format task made from the pairs in use: each gold answer as a JSON object
    {"answer", "source", "quote"} with the JSON Schema they validate against, kept with the
    corpus for the Run page's format task. The sample ships its own."""
    if entry.builtin:
        return
    if entry.format_qa:
        st.caption(
            f"Format pairs: `{Path(entry.format_qa).name}` with its schema "
            f"`{Path(entry.format_schema).name}`; the Run page's format task offers them."
        )
    label = "Make format pairs again" if entry.format_qa else "Make format pairs"
    if not st.button(
        label,
        key="make_format",
        help="Write these pairs again with JSON answers {answer, source, quote} (quote: the "
        "sentence holding the answer) and a JSON Schema for them, for the format task.",
    ):
        return
    try:  # the Q/A file and the documents are read in the bounded corpus child
        made = format_pairs_bounded(corpus_path, qa_path)
        save_format_task(home(), current_owner(), store(), entry.id, made, access())
    except ValueError as e:  # unreadable files, over the quota
        st.error(md(hide_paths(e)))
        return
    st.success(
        f"Wrote {count(len(made.records), 'format pair')} ({made.quoted} of "
        f"{made.answers} answers with a quote) and their schema: pick the format task on "
        "the Run page."
    )


def show_generated(records: list[dict], stats: dict, corpus_id: str) -> None:
    """Put generated pairs into the review table (for `corpus_id` only) with a summary."""
    state.generated, state.generated_for = records, corpus_id
    rejected = ", ".join(f"{k}: {v}" for k, v in stats.get("rejected", {}).items())
    msg = f"{len(records)} pairs generated from {stats.get('considered', '?')} candidates"
    msg += f" (rejected: {rejected})." if rejected else "."
    state.gen_notice = ("success" if records else "warning", msg)


@st.fragment(run_every=POLL_S)
def qagen_progress() -> None:
    """Polls the background generation; when it ends, the whole page reruns to show it."""
    job = queue.get(state.qagen_job)
    if job is None:
        state.qagen_job = None
        return
    serve_queued(queue, [job])  # a worker that died or went idle is started again
    if job.status in ("queued", "running"):
        done, total = job.done, job.total
        text = "Generating pairs with the model"
        text += f": {done}/{total} passages" if total else f" ({job.stage})"
        st.progress(done / total if total else 0.0, text=text)
        if st.button("Cancel generation", key="qagen_cancel"):
            queue.cancel(job.id)
        return
    state.qagen_job = None
    if job.status == "done":
        try:
            result = queue.qagen_result(job.id)
        except (KeyError, ValueError, OSError) as e:  # its file removed or damaged meanwhile
            state.gen_notice = ("error", f"The generated pairs cannot be read: {md(hide_paths(e))}")
        else:
            show_generated(result["records"], result["stats"], state.qagen_for)
    elif job.status == "cancelled":
        state.gen_notice = ("info", "Generation cancelled; nothing was kept.")
    else:
        state.gen_notice = ("error", f"Generation {job.status}: {md(hide_paths(job.error or ''))}")
    st.rerun()


# The uploader's own "Limit ... per file" and the label say the app's limit: one source, the
# operator's upload_limits.yaml (server.maxUploadSize in .streamlit/config.toml only caps it).
PER_FILE_MB = max(1, math.ceil(LIMITS.max_file_mb))
# A form cleared only after a successful save: a refused upload keeps the name and files to fix
# (clear_on_submit would empty it on every submit). New keys make fresh, empty widgets.
upload_round = state.setdefault("upload_round", 0)
suffix = f"_{upload_round}" if upload_round else ""

pick, upload = st.tabs(["Saved corpora", "Upload a new one"])
with upload:
    for kind, text in state.pop("upload_notes", []):
        getattr(st, kind)(text)
    with st.form(f"upload_form{suffix}"):
        name = st.text_input("Name", placeholder="e.g. Support handbook", key=f"up_name{suffix}")
        docs = st.file_uploader(
            f"Documents ({', '.join(DOC_TYPES)}; up to {count(LIMITS.max_files, 'file')}, "
            f"{LIMITS.max_file_mb:g} MB each, {LIMITS.max_total_mb:g} MB in all)",
            type=list(DOC_TYPES),
            accept_multiple_files=True,
            max_upload_size=PER_FILE_MB,
            key=f"docs{suffix}",
        )
        qa_upload = st.file_uploader(
            "Question/answer file, optional (JSONL or CSV with `question` and `answers` or "
            f"`answer`, up to {LIMITS.max_file_mb:g} MB); without one, generate pairs below",
            type=list(QA_TYPES),
            max_upload_size=PER_FILE_MB,
            key=f"qa{suffix}",
        )
        saved = st.form_submit_button("Save corpus", type="primary")
    if saved:
        if not docs:
            st.error("Choose at least one document.")
        else:
            known = {e.id for e in library.list(access())}
            try:
                # Upload objects, not bytes: the limits are checked on their sizes first.
                # Counted against the owner's disk quota first, like adapters and runs.
                entry = save_corpus_upload(
                    home(),
                    current_owner(),
                    store(),
                    name.strip() or docs[0].name,
                    docs,
                    qa_upload,
                    LIMITS,
                )
            except ValueError as e:
                st.error(f"Refused: {escape_markdown(hide_paths(e))}. Nothing was saved.")
            else:
                notes = [
                    (
                        "warning",
                        f"Refused **{escape_markdown(err['name'])}**: "
                        f"{escape_markdown(hide_paths(err['reason']))}",
                    )
                    for err in entry.refused
                ]
                why, usable = why_unusable(entry)
                if why is not None:
                    if entry.id not in known:  # saved a moment ago: take it back
                        library.delete(entry.id)
                    for kind, text in notes:
                        getattr(st, kind)(text)
                    st.error(f"Refused: {escape_markdown(hide_paths(why))}. Nothing was saved.")
                else:
                    library.set_usable(entry.id, usable, access())
                    remember(corpus_id=entry.id)
                    # The picker has not been drawn in this run: its key set now selects the
                    # new entry (a key set after its widget is drawn would raise).
                    state.corpus_pick = entry.id
                    state.upload_round = upload_round + 1  # fresh keys: an empty form
                    notes.append(
                        (
                            "success",
                            f"Saved **{escape_markdown(entry.name)}**; it is now the selected "
                            "corpus.",
                        )
                    )
                    state.upload_notes = notes  # said after the rerun that empties the form
                    st.rerun()

with pick:
    entries = library.list(access())
    ids = [e.id for e in entries]
    names = {
        e.id: f"{e.name} ({count(e.usable_docs, 'document')}{', Q/A' if e.has_qa else ''})"
        for e in entries
    }
    current = remembered().corpus_id
    if state.get("corpus_pick") not in ids:  # first draw, or its corpus deleted meanwhile
        state.corpus_pick = current if current in ids else "sample" if "sample" in ids else ids[0]
    chosen = st.selectbox("Corpus", ids, format_func=names.get, key="corpus_pick")
    if chosen != current:
        remember(corpus_id=chosen)
    entry = library.get(chosen, access())
    if not entry.builtin:
        with st.popover("Delete this corpus"):
            st.write("Runs made with it stay in History, but cannot be reopened in the Playground.")
            if st.button("Delete for good", key="corpus_delete"):
                try:
                    library.delete(chosen, access(), queue.inputs_in_use())
                except ValueError as e:  # a job reads it, or it is not this owner's
                    st.error(escape_markdown(hide_paths(e)))
                else:
                    remember(corpus_id=None)
                    st.rerun()

selection = selected_corpus()
if selection is not None:
    corpus_path, qa_path, corpus_name = selection
    pre = cached_preview(str(corpus_path), str(qa_path) if qa_path else None)
    # Named: under the upload form these figures would otherwise read as a preview of the
    # files chosen there, which are only read once saved.
    st.subheader(f"Selected corpus: {md(corpus_name)}")
    if pre.get("corpus"):
        docs, split = pre["corpus"], pre.get("split")
        line = (
            f"**{docs['documents']}** {noun(docs['documents'], 'document')}, "
            f"**{docs['chunks']}** {noun(docs['chunks'], 'chunk')}, "
            f"**{docs['tokens']:,}** {noun(docs['tokens'], 'token')}."
        )
        if qa_path is not None:
            line += (
                f" **{split['pairs']}** {noun(split['pairs'], 'Q/A pair')}: "
                f"**{split['train']}** train, "
                f"**{split['test_split']}** test."
            )
        st.write(line)
        for err in docs["errors"]:
            st.warning(
                f"Skipped **{escape_markdown(err['name'])}**: "
                f"{escape_markdown(hide_paths(err['reason']))}"
            )
        for doubt in docs.get("warnings", []):  # read, but the user should look at it
            st.warning(
                f"Read **{escape_markdown(doubt['name'])}**, but: "
                f"{escape_markdown(hide_paths(doubt['reason']))}"
            )
        with st.expander("Documents"):
            st.dataframe(pd.DataFrame({"Document": docs["names"]}), hide_index=True)
    if pre["problem"]:
        st.error(escape_markdown(hide_paths(pre["problem"])))

    st.subheader("Question/answer pairs")
    if qa_path is None:
        st.info("This corpus has no Q/A pairs: generate them from the documents, review, save.")
    else:
        st.caption(f"Using `{qa_path.name}`. Generating new pairs replaces generated ones.")
        format_pairs(library.get(chosen, access()), corpus_path, qa_path)
    with st.form("gen_form"):
        help_ = QAGenConfig.help()
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox("Method", METHODS, help=help_["method"], key="gen_method")
        n = c2.number_input(
            "Pairs",
            min_value=10,
            max_value=5000,
            value=QAGenConfig().n,
            help=help_["n"],
            key="gen_n",
        )
        seed = c3.number_input("Seed", value=0, step=1, help=help_["seed"], key="gen_seed")
        generator = st.text_input(
            "Generator (model method)",
            value=ModelConfig().generator,
            help=ModelConfig.help()["generator"],
            key="gen_generator",
        )
        generate = st.form_submit_button("Generate pairs")
    if generate:
        try:
            config = QAGenConfig(method=method, n=int(n), seed=int(seed))
            chosen_model = generator.strip() or ModelConfig().generator
            allowed = check_model(chosen_model, "generator", my_folders(), load_allowlist(home()))
            models = ModelConfig(generator=allowed)
        except ValueError as e:
            st.error(md(hide_paths(e)))
        else:
            if config.method == "model":
                # Minutes with a capable model: the worker writes the pairs, this page polls.
                try:
                    state.qagen_job = queue.submit_qagen(
                        corpus_path, config, models, owner=current_owner()
                    )
                except ValueError as e:  # JobRefused: over the owner's or server's job cap
                    st.error(md(e))
                else:
                    state.qagen_for = chosen
                    ensure_worker(store_path())
            else:  # no model: seconds, in the bounded corpus child (never the corpus here)
                try:
                    result = generate_pairs_bounded(corpus_path, config)
                except (ValueError, RuntimeError) as e:
                    st.error(md(hide_paths(e)))
                else:
                    show_generated(result["records"], result["stats"], chosen)
    if state.get("qagen_job"):
        qagen_progress()
    notice = state.pop("gen_notice", None)
    if notice:
        getattr(st, notice[0])(notice[1])
    if state.get("generated") and state.get("generated_for") == chosen:
        st.caption("Review and edit; rows whose answer is no longer in their passage are refused.")
        edited = st.data_editor(
            pd.DataFrame(state.generated), num_rows="dynamic", hide_index=True, key="gen_editor"
        )
        records = edited.to_dict("records")
        for problem in check_records(records)[:10]:
            st.warning(md(problem))
        if st.button("Save these pairs", type="primary", key="gen_save"):
            try:
                pairs = records_to_pairs(records)
                library.set_qa(chosen, pairs, access())
            except ValueError as e:
                st.error(md(hide_paths(e)))
            else:
                state.generated = None
                st.success(f"Saved {len(pairs)} pairs: the Run page uses them now.")
                cached_preview.clear()
                st.rerun()

st.page_link(
    "ui/run_page.py", label="Next: choose strategies and run", icon=":material/play_arrow:"
)
