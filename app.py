"""AdaptLab web app: navigation only. Each page is in ui/ and calls the library.

Run with `make run` (or `streamlit run app.py`).
"""

from __future__ import annotations

import streamlit as st

from ui.common import init_state, owner_switch_prompt
from ui.signin import door

st.set_page_config(page_title="AdaptLab", layout="wide")
door()  # shared mode: the signed-in account, or the sign-in page and nothing else
init_state()
owner_switch_prompt()

pages = [
    st.Page("ui/corpus_page.py", title="Corpus", icon=":material/folder_open:", default=True),
    st.Page("ui/run_page.py", title="Run", icon=":material/play_arrow:"),
    st.Page("ui/compare_page.py", title="Compare", icon=":material/bar_chart:"),
    st.Page("ui/playground_page.py", title="Playground", icon=":material/chat:"),
    st.Page("ui/history_page.py", title="History", icon=":material/history:"),
]
if st.session_state.get("admin"):  # the admins of server.yaml only (ui.signin.door)
    pages.append(st.Page("ui/operator_page.py", title="Operator", icon=":material/shield:"))
st.navigation(pages).run()
