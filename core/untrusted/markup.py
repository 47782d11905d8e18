"""Untrusted text (model answers, passages, file names, parser messages) made inert for Markdown.

Streamlit renders Markdown in `st.markdown`, `st.write` of a string, alerts and widget labels;
an injected `![](https://host/x.png)` there makes every viewer's browser fetch that URL, and
links or `:red[...]` directives change what the page says. Show such text with `st.text`, or
pass it through `escape_markdown` where only a Markdown-rendering element fits (labels, alerts).
"""

from __future__ import annotations

import re

# The characters that make Markdown active: images and links (! [ ] ( ) and < > autolinks),
# emphasis and code (* _ ~ `), HTML (< >), tables (|), headings (#), Streamlit's `:emoji:` and
# `:color[...]` directives (:) and LaTeX ($). Dots and hyphens stay: on one line they can at
# most start a list, and file names stay readable.
_ACTIVE = re.compile(r"([\\`*_{}\[\]()<>!:$~|#])")


def escape_markdown(text: object) -> str:
    """`text` with every Markdown-active character backslash-escaped and line breaks turned
    into spaces (a label or an alert then shows it literally, on one line)."""
    flat = " ".join(str(text).split())
    return _ACTIVE.sub(r"\\\1", flat)
