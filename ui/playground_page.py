"""Playground: ask one question, see every prepared strategy's answer side by side."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from eval.playground import Playground
from ui.common import current_owner, home, pick_run, store

st.title("Playground")
st.caption(
    "Ask one question; every strategy of a finished run answers it with the contexts or shots it "
    "used, its tokens and its latency. Trained adapters are reused, not retrained."
)
state = st.session_state
state.setdefault("playground", None)

run_id = pick_run("pg_run", only_done=True)
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
                from strategies.deploy import unpack_adapter_zip

                try:
                    if upload is not None:
                        name = upload.name.removesuffix(".zip")
                        dest = home() / "adapters" / current_owner() / name
                        path = unpack_adapter_zip(upload.getvalue(), dest)
                    else:
                        path, name = Path(folder.strip()).expanduser(), Path(folder.strip()).name
                except ValueError as e:
                    st.error(str(e))
                else:
                    label = pg.add_adapter(path, label=f"adapter: {name}")
                    if label is None:
                        st.error(pg.warnings[-1])
                    else:
                        st.success(f"Loaded {name}; it answers as '{label}'.")
        with st.form("pg_form"):
            question = st.text_input("Question", key="pg_question")
            asked = st.form_submit_button("Ask every strategy", type="primary")
        if asked:
            try:
                with st.spinner("Answering..."):
                    answers = pg.ask(question)
            except ValueError as e:
                st.error(str(e))
            except Exception as e:  # e.g. its adapter was released by another session
                pg.close()
                state.playground = None
                st.error(f"The prepared strategies stopped working ({e}); prepare them again.")
            else:
                for col, a in zip(st.columns(len(answers)), answers, strict=True):
                    with col:
                        st.markdown(f"**{a.strategy}**")
                        st.write(a.answer.text or "*(empty answer)*")
                        st.caption(
                            f"{a.answer.cost.prompt_tokens} prompt tokens, "
                            f"{a.answer.cost.output_tokens} output tokens, {a.latency_s:.2f} s"
                        )
                        for c in a.answer.contexts:
                            first = c.text.strip().splitlines()[0][:70] if c.text.strip() else ""
                            head = (
                                f"Shot: {first}" if c.kind == "shot" else f"Passage from {c.source}"
                            )
                            score = f" (score {c.score:.2f})" if c.score is not None else ""
                            with st.expander(head + score):
                                st.text(c.text)
