"""Playground: ask one question, see every prepared strategy's answer side by side.

Preparing the strategies and answering run in the background worker (job kind "playground"),
like runs: this page submits and polls, so the script thread never loads a model and a reload
neither repeats nor kills the work. The worker keeps the last run it prepared, so the next
question on it is answered without preparing again.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.untrusted.allowlist import check_location, load_allowlist
from core.untrusted.markup import escape_markdown
from core.untrusted.paths import safe_filename
from eval.views.format import display_name
from service.jobs import JobQueue, ensure_worker, serve_queued
from service.jobs.page_kinds import PlaygroundResult, job_result, submit_playground
from service.playground import PlaygroundAnswer
from service.quota import save_adapter_upload
from strategies.lora.deploy import MAX_ADAPTER_ZIP_BYTES, adapter_folder
from ui.common import (
    access,
    current_owner,
    hide_paths,
    home,
    my_folders,
    pick_run,
    store,
    store_path,
)


def adapter_location(upload, folder: str) -> tuple[Path, str]:
    """(adapter folder, safe display name) for an uploaded zip, unpacked under this owner's
    folder of the app's home, or for a typed folder the server allows; raises ValueError."""

    if upload is not None:
        if upload.size > MAX_ADAPTER_ZIP_BYTES:  # checked before the bytes are copied out
            raise ValueError(f"the adapter zip is over {MAX_ADAPTER_ZIP_BYTES / 1e6:.0f} MB")
        name = safe_filename(upload.name.removesuffix(".zip"), default="adapter")
        # One folder per adapter name under the owner's own (named by a hash of the token):
        # a new upload of the name replaces the old, counted against the owner's disk quota.
        folder = save_adapter_upload(home(), current_owner(), store(), name, upload.getvalue())
        return folder, name
    allow = load_allowlist(home())
    allowed = check_location(folder, roots=my_folders(), allow=allow, what="adapter")
    return adapter_folder(allowed), safe_filename(Path(allowed).name, default="adapter")


def show_answer(a: PlaygroundAnswer) -> None:
    """One strategy's answer from a playground job's result: its text as plain text (a Markdown
    image in it would be fetched by the viewer's browser), marked when the token limit cut it,
    its cost and the contexts it used."""
    # A registry display name, or an uploaded adapter's safe file name (no URL).
    st.markdown(f"**{display_name(a.strategy)}**", help=f"`{a.strategy}`")
    st.text(a.answer.text or "(empty answer)")
    if a.answer.truncated:
        st.warning("Cut at the answer-length limit (max new tokens): the answer may be incomplete.")
    st.caption(
        f"{a.answer.cost.prompt_tokens} prompt tokens, "
        f"{a.answer.cost.output_tokens} output tokens, {a.latency_s:.2f} s"
    )
    for c in a.answer.contexts:
        first = c.text.strip().splitlines()[0][:70] if c.text.strip() else ""
        head = f"Shot: {first}" if c.kind == "shot" else f"Passage from {c.source}"
        score = f" (score {c.score:.2f})" if c.score is not None else ""
        with st.expander(escape_markdown(head + score)):  # sources are uploaded file names
            st.text(c.text)


st.title("Playground")
st.caption(
    "Ask one question; every strategy of a finished run answers it with the contexts or shots it "
    "used, its tokens and its latency. Trained adapters are reused, not retrained."
)
state = st.session_state
state.setdefault("pg_job", None)  # the last playground job of this session
state.setdefault("pg_for", None)  # the run it was for
state.setdefault("pg_adapters", [])  # [label, folder] pairs added on this page
queue = JobQueue(store_path())


def submit(run_id: str, question: str = "") -> None:
    try:
        state.pg_job = submit_playground(
            queue, run_id, question, state.pg_adapters, current_owner(), access()
        )
    except ValueError as e:  # over a job cap, or a question over the length limit
        st.error(escape_markdown(e))
    else:
        ensure_worker(store_path())


run_id = pick_run("pg_run")
if run_id is not None:
    if state.pg_for != run_id:  # another run: its own strategies and adapters
        state.pg_job, state.pg_for, state.pg_adapters = None, run_id, []
    if st.button("Prepare this run's strategies", key="pg_prepare"):
        submit(run_id)
    st.caption(
        "Preparing takes a few seconds (no training) and happens by itself on the first "
        "question; the worker keeps the last prepared run for the next ones."
    )
    with st.expander("Add an exported LoRA adapter (a zip or a folder)"):
        upload = st.file_uploader("Adapter zip (peft format)", type=["zip"], key="pg_zip")
        folder = st.text_input("…or a folder on this machine", key="pg_adapter_dir")
        if st.button("Load adapter", key="pg_load", disabled=not (upload or folder.strip())):
            try:
                path, name = adapter_location(upload, folder)
            except ValueError as e:
                st.error(escape_markdown(hide_paths(e)))
            else:
                label = f"adapter: {name}"
                state.pg_adapters = [a for a in state.pg_adapters if a[0] != label]
                state.pg_adapters.append([label, str(path)])
                # `name` is a safe file name (core.untrusted.paths): nothing in it is Markdown.
                st.success(f"Added {name}; it answers as '{label}' from the next question.")
    with st.form("pg_form"):
        question = st.text_input("Question", key="pg_question")
        asked = st.form_submit_button("Ask every strategy", type="primary")
    if asked:
        if question.strip():
            submit(run_id, question)
        else:
            st.error("Type a question first.")

    def answers_panel() -> None:
        """This session's playground job; answers appear one by one as they come (polled
        every second while it runs, not after: a finished panel costs nothing)."""
        job = queue.get(state.pg_job) if state.pg_job else None
        if job is None:
            return
        if job.status in ("queued", "running"):
            state.pg_polled = True
        elif state.pop("pg_polled", False):
            st.rerun(scope="app")  # it ended while polled: the page redraws once, unpolled
        serve_queued(queue, [job])  # a worker that died or went idle is started again
        result = job_result(queue, job.id, access()) or PlaygroundResult()
        for w in result.warnings:
            st.warning(escape_markdown(hide_paths(w)))
        if job.status in ("queued", "running"):
            what = {"prepare": "preparing", "answer": "answering"}.get(job.stage, job.stage)
            frac = job.done / job.total if job.total else 0.0
            st.progress(min(1.0, frac), text=f"{job.strategy or 'strategies'}: {what}")
            if st.button("Cancel", key=f"pg_cancel_{job.id}"):
                queue.cancel(job.id, access())
        elif job.status == "failed":
            st.error(escape_markdown(hide_paths(f"The playground stopped: {job.error}")))
        elif job.status == "done" and not result.answers:
            ready = ", ".join(display_name(n) for n in result.strategies)
            st.success(f"Ready: {ready or 'no strategy'}.")
        if result.answers:
            for col, a in zip(st.columns(len(result.answers)), result.answers, strict=True):
                with col:
                    show_answer(a)

    pg_job = queue.get(state.pg_job) if state.pg_job else None
    live = pg_job is not None and pg_job.status in ("queued", "running")
    st.fragment(answers_panel, run_every=1.0 if live else None)()
