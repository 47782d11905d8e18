"""What every page shares: where the app keeps its data, the owner's remembered choices,
run pickers, config widgets and text made safe to show."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from core.access import Access
from core.config import ConfigBase, ConfigError
from core.untrusted.markup import escape_markdown
from eval.metrics import metric_label
from eval.store.rows import RunSummary
from eval.store.runs import RunStore
from eval.views.run_view import lead_metric
from service.corpus_library import CorpusLibrary, CorpusNotFound, SavedCorpus
from service.owner_state import OwnerState, OwnerStates
from service.owners import access_for, new_owner, upload_roots, valid_owner
from service.uploads import LIMITS_FILE, UploadLimits, load_limits
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
        st.error(md(hide_paths(f"Upload limits: {e}. Using the defaults.")))
        return UploadLimits()


def current_owner() -> str:
    """This visitor's owner: in shared mode the signed-in account's (ui.signin.door sets it;
    links are ignored), in personal mode a token kept in the page URL (`?owner=...`) so it
    survives reloads.

    Created on the first visit, or taken from the link a new session opens with. The URL is
    then a private link: whoever opens it sees and changes this owner's runs, jobs and corpora.
    Streamlit drops query parameters when the page changes, so the token is also kept in the
    session and written back into the URL. A link naming another owner never replaces the
    session's owner by itself (someone else's link would have this visitor's uploads land in
    their workspace): it is kept as an offer that `owner_switch_prompt` asks about.
    """
    state = st.session_state
    if state.get("shared"):
        if not state.get("owner"):  # never reached past door(): no workspace without an account
            st.stop()
        return state.owner
    linked = st.query_params.get("owner")
    mine = state.get("owner") if valid_owner(state.get("owner")) else None
    if mine is None:
        token = linked if valid_owner(linked) else new_owner()
    else:
        token = mine
        if valid_owner(linked) and linked != mine:
            state.owner_offer = linked
    if st.query_params.get("owner") != token:
        st.query_params["owner"] = token
    state.owner = token
    return token


def _accept_owner_offer() -> None:
    state = st.session_state
    offer = state.pop("owner_offer", None)
    if valid_owner(offer):
        state.owner = offer
        st.query_params["owner"] = offer


def owner_switch_prompt() -> None:
    """When a link named another owner than this session's: ask before switching to it
    (personal mode only: in shared mode links name nobody)."""
    if st.session_state.get("shared") or not valid_owner(st.session_state.get("owner_offer")):
        return
    st.warning(
        "This link opens another workspace. You stay in your own unless you switch: after "
        "switching, what you upload and run belongs to the linked workspace."
    )
    c1, c2 = st.columns(2)
    c1.button("Switch to the linked workspace", key="owner_switch", on_click=_accept_owner_offer)
    c2.button(
        "Stay in my workspace",
        key="owner_stay",
        on_click=lambda: st.session_state.pop("owner_offer", None),
    )


def access() -> Access:
    """What this visitor may see and change (their own work, or all of it in a team workspace).

    A broken workspace setting stops the page: guessing either way would be wrong."""
    try:
        return access_for(current_owner(), home())
    except ValueError as e:
        st.error(md(hide_paths(f"Workspace setting: {e}")))
        st.stop()


def init_state() -> None:
    """Session defaults; called at the top of every run of the app."""
    state = st.session_state
    current_owner()  # sets state.owner, and the URL's ?owner= on a first visit
    state.setdefault("corpus_id", None)
    state.setdefault("job_id", None)
    state.setdefault("run_id", None)
    # Tests switch on the model-free strategies (AppTest through the session, a browser test
    # through the environment of the server it starts).
    state.setdefault("show_hidden_strategies", os.environ.get("ADAPTLAB_TEST_STRATEGIES") == "1")


def store() -> RunStore:
    return RunStore(store_path())


def my_folders() -> list[Path]:
    """The folders this owner may name in a model or adapter field: their uploads and their
    runs' files (everyone's in a team workspace), never the app's home as a whole."""
    who = access()
    return [*upload_roots(home(), who), *store().run_folders(who)]


# --- the owner's remembered choices ---------------------------------------------------------


def remembered() -> OwnerState:
    """This owner's stored choices (corpus, run, widget values)."""
    return OwnerStates(store_path()).get(current_owner())


def remember(**changes: Any) -> None:
    """Store changed choices of this owner (corpus_id, run_id, widgets, show_all_runs)."""
    OwnerStates(store_path()).update(current_owner(), **changes)


def initial(key: str, default: Any, valid: Callable[[Any], bool] | None = None) -> Any:
    """The starting value of widget `key`: what this owner last set (when still `valid`), else
    `default`. A keyed widget keeps its own state while shown (Streamlit identifies it by its
    key, so this value does not reset it); the store covers reloads and page changes."""
    value = remembered().widgets.get(key, default)
    if valid is not None and not valid(value):
        return default
    return value


def keep_widgets(prefix: str) -> None:
    """Store the current values of the widgets whose keys start with `prefix` (JSON values)."""
    values = {}
    for key, value in st.session_state.items():
        if isinstance(key, str) and key.startswith(prefix):
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue
            values[key] = value
    if values:
        remember(widgets=values)


# --- runs -----------------------------------------------------------------------------------


def corpus_names() -> dict[str, str]:
    """Documents folder -> the corpus's display name, for every saved corpus."""
    return {str(Path(e.docs_path).resolve()): e.name for e in corpus_library().list(access())}


def corpus_name(config: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The display name of a run's corpus (its folder name when no saved corpus has it)."""
    path = str(config.get("corpus") or "")
    if not path:
        return "—"
    names = corpus_names() if names is None else names
    return names.get(str(Path(path).resolve()), Path(path).name)


def run_label(r: RunSummary) -> str:
    """'a1b2c3 · label · done · system_prompt, rag' for a listed run."""
    name = f" · {r.name}" if r.name else ""
    return f"{r.id}{name} · {r.status} · {', '.join(r.strategies)}"


def pick_run(key: str) -> str | None:
    """A run selector over this owner's runs with something finished (a toggle lists all),
    starting at the run the owner last opened; None when there is none."""
    saved = remembered()
    every = store().list_runs(access=access())
    show_all = st.toggle(
        "Show runs with nothing finished",
        value=saved.show_all_runs,
        key=f"{key}_all",
        help="Cancelled, failed or running runs whose strategies have not finished yet.",
    )
    runs = every if show_all else [r for r in every if r.has_finished]
    if not runs:
        hidden = len(every) - len(runs)
        st.info(
            "No finished run yet: pick a corpus, then start a run on the Run page."
            + (f" ({hidden} without a finished strategy are hidden.)" if hidden else "")
        )
        return None
    ids = [r.id for r in runs]
    labels = {r.id: run_label(r) for r in runs}
    index = ids.index(saved.run_id) if saved.run_id in ids else 0
    chosen = st.selectbox("Run", ids, index=index, format_func=labels.get, key=key)
    if chosen != saved.run_id or show_all != saved.show_all_runs:
        remember(run_id=chosen, show_all_runs=show_all)
    return chosen


# --- text for the page ----------------------------------------------------------------------

_PATH = re.compile(r"(?<![\w.:/])(?:/[\w.+@-]+)+/")


def hide_paths(text: str) -> str:
    """`text` with every absolute folder cut away, leaving file names: server paths do not
    belong on the page ('/srv/app/home/corpora/x/docs/a.txt' -> 'a.txt')."""
    return _PATH.sub("", str(text))


def md(text: object) -> str:
    """Untrusted `text` (a question, a gold answer, a corpus, file or run name, a message)
    made inert inside st.markdown and alerts: every Markdown-active character escaped, so an
    image or a link shows as text and is never fetched (core.untrusted.markup)."""
    return escape_markdown(text)


def prose(text: str) -> str:
    """A sentence the library wrote (registry names, numbers and its own **bold**) for
    st.markdown: only a dollar sign is escaped, since it would start a formula. Never for text
    that came from a user; that goes through `md`."""
    return str(text).replace("$", "\\$")


def metric_select(metrics: list[str], label: str, key: str, task: str = "qa") -> str:
    """A metric chooser opening on what a run of task kind `task` is judged by (F1 for Q/A),
    showing the metrics' labels."""
    lead = lead_metric(metrics, task)
    index = metrics.index(lead) if lead in metrics else 0
    return st.selectbox(label, metrics, index=index, format_func=metric_label, key=key)


# Words a field name spells in lower case that people write otherwise.
_WORDS = {"hnsw": "HNSW", "raft": "RAFT", "gb": "GB", "s": "(s)", "k": "k", "r": "rank r"}


def readable(name: str) -> str:
    """A label from a field name when its field declares none ('max_steps' -> 'Max steps')."""
    words = [_WORDS.get(w, w) for w in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if words[0] not in _WORDS else text


def setting_widget(prefix: str, f: dataclasses.Field, value, hint):
    """One widget for one config field, chosen by its declared choices or its type; label and
    help from the dataclass; it starts at the value this owner last set."""
    key = f"{prefix}.{f.name}" if prefix else f.name
    label = f.metadata.get("label") or readable(f.name)
    help_ = f.metadata.get("help")
    choices = f.metadata.get("choices")
    if choices is not None:
        start = initial(key, value, lambda v: v in choices)
        index = choices.index(start) if start in choices else 0
        return st.selectbox(label, choices, index=index, help=help_, key=key)
    if hint is bool:
        start = initial(key, bool(value), lambda v: isinstance(v, bool))
        return st.checkbox(label, value=start, help=help_, key=key)
    if hint is int:
        start = initial(key, int(value), lambda v: isinstance(v, int))
        return int(st.number_input(label, value=start, step=1, help=help_, key=key))
    if hint is float:
        start = initial(key, float(value), lambda v: isinstance(v, (int, float)))
        return float(st.number_input(label, value=float(start), format="%g", help=help_, key=key))
    if typing.get_origin(hint) is list:
        start = initial(key, ", ".join(map(str, value)), lambda v: isinstance(v, str))
        text = st.text_input(label, value=start, help=help_, key=key)
        return _typed_items([x.strip() for x in text.split(",") if x.strip()], hint)
    start = initial(key, str(value), lambda v: isinstance(v, str))
    if isinstance(value, str) and len(value) > 60:
        return st.text_area(label, value=start, help=help_, key=key)
    return st.text_input(label, value=start, help=help_, key=key)


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

    library = CorpusLibrary(home() / "corpora")
    library.sample()
    return library


def selected_entry() -> SavedCorpus:
    """The owner's selected corpus in the library (the sample at first)."""
    library = corpus_library()
    try:
        return library.get(remembered().corpus_id or "sample", access())
    except CorpusNotFound:  # deleted in another tab
        remember(corpus_id=None)
        return library.sample()


def selected_corpus() -> tuple[Path, Path | None, str] | None:
    """(documents folder, Q/A file or None, name) of the owner's corpus (the sample at first)."""
    entry = selected_entry()
    qa = Path(entry.qa_path) if entry.qa_path else None
    return Path(entry.docs_path), qa, entry.name
