"""What every page shares: where the app keeps its data, session state, config widgets."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import streamlit as st

from core.config import ConfigBase, ConfigError
from core.owners import Access, new_owner, valid_owner
from core.uploads import LIMITS_FILE, UploadLimits, load_limits
from eval.store import RunStore
from strategies import get_strategy_class

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def home() -> Path:
    """Where the app keeps its data (read per call: tests point it elsewhere per app)."""
    return Path(os.environ.get("ADAPTLAB_HOME", ".adaptlab"))


def store_path() -> Path:
    return home() / "runs.sqlite"


def upload_limits() -> UploadLimits:
    """The limits in <home>/upload_limits.yaml, else the defaults; a broken file is reported on
    the page and the defaults apply, so uploads never go unlimited."""
    try:
        return load_limits(home() / LIMITS_FILE)
    except ConfigError as e:
        st.error(f"Upload limits: {e}. Using the defaults.")
        return UploadLimits()


def current_owner() -> str:
    """This visitor's owner token, kept in the page URL (`?owner=...`) so it survives reloads.

    Created on the first visit. The URL is then a private link: whoever opens it sees and
    changes this owner's runs, jobs and corpora. Streamlit drops query parameters when the page
    changes, so the token is also kept in the session and written back into the URL.
    """
    state = st.session_state
    token = st.query_params.get("owner")
    if not valid_owner(token):
        token = state.get("owner") if valid_owner(state.get("owner")) else new_owner()
    if st.query_params.get("owner") != token:
        st.query_params["owner"] = token
    state.owner = token
    return token


def access() -> Access:
    """What this visitor may see and change (their own work, or all of it in a team workspace).

    A broken workspace setting stops the page: guessing either way would be wrong."""
    try:
        return Access.for_owner(current_owner(), home())
    except ValueError as e:
        st.error(f"Workspace setting: {e}")
        st.stop()


def init_state() -> None:
    """Session defaults; called at the top of every run of the app."""
    state = st.session_state
    state.session_id = current_owner()  # the name some pages still use for the owner
    state.setdefault("corpus_id", None)
    state.setdefault("job_id", None)
    state.setdefault("run_id", None)
    state.setdefault("show_hidden_strategies", False)  # tests switch on the model-free strategy


def store() -> RunStore:
    return RunStore(store_path())


def run_label(r: dict) -> str:
    name = f" · {r['name']}" if r.get("name") else ""
    return f"{r['id']}{name} · {r['status']} · {r.get('strategies') or ''}"


def pick_run(key: str, only_done: bool = False) -> str | None:
    """A run selector defaulting to this session's latest run; None when there is none."""
    runs = store().list_runs(access=access())
    if only_done:
        runs = [r for r in runs if r["status"] in ("done", "interrupted", "cancelled")]
    if not runs:
        st.info("No runs yet: pick a corpus, then start a run on the Run page.")
        return None
    ids = [r["id"] for r in runs]
    labels = {r["id"]: run_label(r) for r in runs}
    current = st.session_state.get("run_id")
    index = ids.index(current) if current in ids else 0
    chosen = st.selectbox("Run", ids, index=index, format_func=labels.get, key=key)
    st.session_state.run_id = chosen
    return chosen


def metric_select(metrics: list[str], label: str, key: str) -> str:
    """A metric chooser (F1 first when present), showing the metrics' labels."""
    from eval.views import metric_label

    index = metrics.index("f1") if "f1" in metrics else 0
    return st.selectbox(label, metrics, index=index, format_func=metric_label, key=key)


def setting_widget(prefix: str, f: dataclasses.Field, value, hint):
    """One widget for one config field, chosen by its declared choices or its type; label and
    help from the dataclass."""
    key = f"{prefix}.{f.name}" if prefix else f.name
    label = f.metadata.get("label") or f.name.replace("_", " ")
    help_ = f.metadata.get("help")
    choices = f.metadata.get("choices")
    if choices is not None:
        index = choices.index(value) if value in choices else 0
        return st.selectbox(label, choices, index=index, help=help_, key=key)
    if hint is bool:
        return st.checkbox(label, value=value, help=help_, key=key)
    if hint is int:
        return int(st.number_input(label, value=int(value), step=1, help=help_, key=key))
    if hint is float:
        return float(st.number_input(label, value=float(value), format="%g", help=help_, key=key))
    if typing.get_origin(hint) is list:
        text = st.text_input(label, value=", ".join(map(str, value)), help=help_, key=key)
        return _typed_items([x.strip() for x in text.split(",") if x.strip()], hint)
    if isinstance(value, str) and len(value) > 60:
        return st.text_area(label, value=value, help=help_, key=key)
    return st.text_input(label, value=str(value), help=help_, key=key)


def _typed_items(items: list[str], hint) -> list:
    """Items of a list field converted to its item type; left as text when one does not convert,
    so the config's own validation names the field."""
    (kind,) = typing.get_args(hint) or (str,)
    try:
        return [kind(x) for x in items]
    except (TypeError, ValueError):
        return items


def config_form(defaults: ConfigBase, prefix: str, only: list[str] | None = None) -> dict:
    """Widgets for the fields of a config (nested sections too), starting at `defaults`.

    With `only` (dotted names, e.g. "split.seed"), just those fields get widgets and the others
    keep their defaults. Keys are `prefix.field` (just the field name under an empty prefix).
    """
    hints = typing.get_type_hints(type(defaults))
    out = defaults.to_dict()
    for f in dataclasses.fields(defaults):
        value = getattr(defaults, f.name)
        if isinstance(value, ConfigBase):
            inner = (
                None
                if only is None
                else [o.partition(".")[2] for o in only if o.startswith(f"{f.name}.")]
            )
            if inner == []:
                continue
            if only is None:
                st.markdown(f"*{f.name.replace('_', ' ')}*: {f.metadata.get('help', '')}")
            out[f.name] = config_form(value, ".".join(p for p in (prefix, f.name) if p), inner)
        elif only is None or f.name in only:
            out[f.name] = setting_widget(prefix, f, value, hints[f.name])
    return out


def settings_form(name: str) -> dict:
    """Widgets for a strategy's settings, from its config dataclass."""
    return config_form(get_strategy_class(name).config_class(), name)


def corpus_library():
    """The saved corpora, with the bundled sample always among them."""
    from core.corpora import CorpusLibrary

    library = CorpusLibrary(home() / "corpora")
    library.sample()
    return library


def selected_corpus() -> tuple[Path, Path | None, str] | None:
    """(documents folder, Q/A file or None, name) of this session's corpus (the sample at first)."""
    from core.corpora import CorpusNotFound

    library = corpus_library()
    try:
        entry = library.get(st.session_state.get("corpus_id") or "sample", access())
    except CorpusNotFound:  # deleted in another tab
        st.session_state.corpus_id = None
        entry = library.sample()
    qa = Path(entry.qa_path) if entry.qa_path else None
    return Path(entry.docs_path), qa, entry.name
