"""Playground: ask one question, see every prepared strategy's answer side by side."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.allowlist import check_location, load_allowlist
from core.markup import escape_markdown
from core.paths import confined, safe_filename
from eval.run.playground import Playground
from eval.views.display import display_name
from ui.common import home, pick_run, store


def adapter_location(upload, folder: str) -> tuple[Path, str]:
    """(adapter folder, safe display name) for an uploaded zip, unpacked under this session's
    own folder of the app's home, or for a typed folder the server allows; raises ValueError."""
    from strategies.deploy import MAX_ADAPTER_ZIP_BYTES, adapter_folder, unpack_adapter_zip

    if upload is not None:
        if upload.size > MAX_ADAPTER_ZIP_BYTES:  # checked before the bytes are copied out
            raise ValueError(f"the adapter zip is over {MAX_ADAPTER_ZIP_BYTES / 1e6:.0f} MB")
        name = safe_filename(upload.name.removesuffix(".zip"), default="adapter")
        root = home() / "adapters"
        # One folder per session: sessions never overwrite each other's adapters; a second
        # upload under the same name in this session replaces the first as a whole.
        dest = confined(root, safe_filename(st.session_state.session_id), name)
        return unpack_adapter_zip(upload.getvalue(), dest, root=root), name
    allowed = check_location(folder, home=home(), allow=load_allowlist(home()), what="adapter")
    return adapter_folder(allowed), safe_filename(Path(allowed).name, default="adapter")


st.title("Playground")
st.caption(
    "Ask one question; every strategy of a finished run answers it with the contexts or shots it "
    "used, its tokens and its latency. Trained adapters are reused, not retrained."
)
state = st.session_state
state.setdefault("playground", None)


def show_answer(a) -> None:
    """One strategy's answer: its text (marked when the token limit cut it), cost, contexts."""
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


run_id = pick_run("pg_run")
if run_id is not None:
    pg: Playground | None = state.playground
    if pg is not None and pg.run_id != run_id:
        pg.close()
        state.playground = pg = None
    if pg is None:
        if st.button("Prepare this run's strategies", type="primary", key="pg_prepare"):
            with st.spinner("Loading the model, indexes and adapters..."):
                try:
                    state.playground = Playground.from_run(store(), run_id)
                except ValueError as e:
                    st.error(str(e))
            st.rerun()
        st.info("The strategies are prepared once per session (a few seconds; no training).")
    else:
        for w in pg.warnings:
            st.warning(w)
        with st.expander("Add an exported LoRA adapter (a zip or a folder)"):
            upload = st.file_uploader("Adapter zip (peft format)", type=["zip"], key="pg_zip")
            folder = st.text_input("…or a folder on this machine", key="pg_adapter_dir")
            if st.button("Load adapter", key="pg_load", disabled=not (upload or folder.strip())):
                try:
                    path, name = adapter_location(upload, folder)
                except ValueError as e:
                    st.error(escape_markdown(e))
                else:
                    label = pg.add_adapter(path, label=f"adapter: {name}")
                    if label is None:
                        st.error(escape_markdown(pg.warnings[-1]))
                    else:
                        st.success(f"Loaded {name}; it answers as '{label}'.")
        with st.form("pg_form"):
            question = st.text_input("Question", key="pg_question")
            asked = st.form_submit_button("Ask every strategy", type="primary")
        if asked:
            names = list(pg.strategies)
            slots = {}
            for col, name in zip(st.columns(len(names)), names, strict=True):
                with col:
                    # A registry display name, or an uploaded adapter's safe file name (no URL).
                    st.markdown(f"**{display_name(name)}**", help=f"`{name}`")
                    slots[name] = st.empty()
                    slots[name].caption("Waiting for its turn…")
            try:
                # One strategy at a time on the shared model: each answer shows when ready.
                for a in pg.ask_each(question):
                    with slots[a.strategy].container():
                        show_answer(a)
            except ValueError as e:
                st.error(str(e))
            except Exception as e:  # e.g. its adapter was released by another session
                pg.close()
                state.playground = None
                st.error(f"The prepared strategies stopped working ({e}); prepare them again.")
