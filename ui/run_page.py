"""Run: choose strategies and settings, estimate in the background, launch, follow the run.

Every setting starts at what this owner last chose (kept in the store), so a reload or a visit
to another page changes nothing; a run in progress shows here and in History with Cancel."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import pandas as pd
import streamlit as st

from core.bundled import is_sample_qa, sample_task_files
from core.engines.in_process import resolve_device
from core.tasks import MAX_TASK_FILE_BYTES, TaskFileError, check_pattern
from core.tuning_space import describe_spaces
from core.untrusted.allowlist import (
    check_run_settings,
    check_strategy_settings,
    load_allowlist,
)
from eval.config import RunConfig
from eval.run.inputs import preview_split, task_inputs_problem
from eval.views.format import display_name
from service.estimate.probe import Estimate, training_seconds
from service.jobs import JobQueue, ensure_worker, serve_queued
from service.jobs.progress_view import duration, stage_words
from service.quota import save_task_upload
from service.uploads import TASK_FILE_TYPES
from strategies import default_strategies, get_strategy_class, strategy_names
from ui.common import (
    config_form,
    current_owner,
    hide_paths,
    home,
    initial,
    keep_widgets,
    md,
    my_folders,
    remember,
    remembered,
    selected_corpus,
    selected_entry,
    store,
    store_path,
)
from ui.jobs_panel import POLL_S, active_runs, runs_in_progress
from ui.judge_tracking import judge_and_tracking_settings, unservable

# RunConfig fields the Run page offers (dotted: inside a section), in the groups a user looks
# for them in; the others keep their defaults. Labels and help come from the fields' option().
SETTING_GROUPS = {
    "What to run": ["n_test", "retention_questions", "learning_curve", "name"],
    "Model and engine": [
        "models.generator",
        "models.embedder",
        "models.device",
        "models.engine",
        "models.base_url",
        "models.api_model",
        "models.api_key_env",
    ],
    "Budget and prices": [
        "tuning.budget",
        "tuning.n_trials",
        "tuning.max_seconds",
        "prices.cpu_per_hour",
        "prices.gpu_per_hour",
    ],
    "Advanced": [
        "split.seed",
        "stability.resplits",
        "stability.include_trained",
        "tuning.adopt",
        "tuning.racing",
    ],
}


def _dotted(d: dict, dotted: str) -> tuple[dict, str]:
    """The dict holding field `dotted` ("models.engine") inside the nested `d`, and its key."""
    *sections, key = dotted.split(".")
    for section in sections:
        d = d[section]
    return d, key


state = st.session_state
st.title("Run")
queue = JobQueue(store_path())

corpus = selected_corpus()
corpus_path, qa_path, corpus_name = corpus
if qa_path is None:
    st.warning(
        f"**{md(corpus_name)}** has no question/answer pairs yet: generate them on the Corpus page."
    )
    st.page_link("ui/corpus_page.py", label="Go to Corpus", icon=":material/folder_open:")
    # A run already going keeps its bar and Cancel whatever corpus is selected now.
    runs_in_progress("run")
    st.stop()
st.caption(f"Corpus: **{md(corpus_name)}**")


@st.cache_data(show_spinner="Reading the corpus and its questions...", max_entries=16)
def split_preview(corpus: str, qa: str) -> dict:
    return preview_split(corpus, qa)


@st.cache_data(show_spinner="Reading the questions under the task...", max_entries=16)
def task_check(stamp: tuple, **task: str) -> str | None:
    # `stamp`: the files' modification times, so a file made again is read again
    return task_inputs_problem(RunConfig(**task))


def stamp(*paths: str) -> tuple:
    return tuple(Path(p).stat().st_mtime_ns if p and Path(p).is_file() else 0 for p in paths)


preview = split_preview(str(corpus_path), str(qa_path))
inputs_problem = preview.get("problem")
n_train = (preview.get("split") or {}).get("train", 0)

device = resolve_device(initial("run.models.device", "auto"))
offered = strategy_names(include_hidden=state.get("show_hidden_strategies", False))


def trains(name: str) -> bool:
    return bool(get_strategy_class(name).trains)


# On a CPU, training takes long: it is offered with its time, never chosen by default.
default = [n for n in default_strategies() if n in offered and not (device == "cpu" and trains(n))]
hints = {n: training_seconds(RunConfig(), n, n_train) if device == "cpu" else None for n in offered}


def option_label(name: str) -> str:
    label = display_name(name)  # the name users know; the registry name is for the CLI
    if hints.get(name):
        label += f" · trains, about {duration(hints[name])} on this CPU"
    return label


start = initial("run.strategies", default, lambda v: isinstance(v, list) and set(v) <= set(offered))
chosen = st.multiselect(
    "Strategies", offered, default=start, format_func=option_label, key="run.strategies"
)
for name in chosen:
    st.caption(f"**{display_name(name)}**: {get_strategy_class(name).description}")
slow = [n for n in chosen if hints.get(n)]
if slow:
    st.warning(
        "Training on this CPU: "
        + "; ".join(f"{display_name(n)} about {duration(hints[n])}" for n in slow)
        + ". Estimate below for a measured figure."
    )

# The run's own settings, drawn from RunConfig like every strategy's settings below; the rest
# (paths, chosen strategies) come from the page.
page_defaults = RunConfig(
    corpus=str(corpus_path),
    qa=str(qa_path),
    store_path=str(store_path()),
    workdir=str(home() / "work"),
)
# What a right answer is: the facts (qa), a format or a house style. Its choices are the
# RunConfig field's own.
task = config_form(page_defaults, "run", only=["task"])["task"]
if task != "qa":
    st.caption(f"{md(RunConfig.help()['task'])}")


def task_upload(kind: str) -> str | None:
    """An upload of the `kind` task's file (format: a JSON Schema, style: rules in YAML),
    checked and saved in the owner's own folder once per file; its saved path, or None (with
    the refusal said) when none is uploaded or it is refused. The last accepted file stays
    chosen when the upload is cleared or the page changes."""
    what = {"format": "JSON Schema", "style": "Style rules"}[kind]
    types = TASK_FILE_TYPES[kind]
    upload = st.file_uploader(
        f"{what} ({', '.join('.' + t for t in types)}, up to {MAX_TASK_FILE_BYTES // 1000} KB)",
        type=list(types),
        max_upload_size=1,
        key=f"task_upload_{kind}",
    )
    seen = state.get(f"task_file_{kind}")  # (upload id, saved path or None, refusal, name)
    if upload is not None and (seen is None or seen[0] != upload.file_id):
        try:  # the size first, then read with the run's own code in the parser child
            saved = save_task_upload(home(), current_owner(), store(), upload, kind)
            seen = (upload.file_id, str(saved), None, upload.name)
        except ValueError as e:  # refused: wrong type, too large, not valid, over the quota
            seen = (upload.file_id, None, hide_paths(e), upload.name)
        state[f"task_file_{kind}"] = seen
    if seen and seen[2]:
        st.error(f"Refused: {md(seen[2])}. Nothing was saved.")
    elif seen and seen[1]:
        st.caption(f"Using **{md(seen[3])}** (checked).")
    return seen[1] if seen and Path(seen[1] or "").is_file() else None


def own_task_files(task: str) -> tuple[dict[str, str], str | None]:
    """The RunConfig settings giving `task` its files on the owner's own corpus (Q/A file,
    schema, pattern or style), and why it cannot run yet (None when it can)."""
    entry = selected_entry()
    if task == "style":
        style = task_upload("style")
        if style is None:
            return {}, "Upload the style rules (a YAML file) for the style task."
        return {"style": style}, None
    files: dict[str, str] = {}
    if entry.format_qa:  # made on the Corpus page: its pairs come with their schema
        pick = st.selectbox(
            "Question/answer pairs",
            ["format", "pairs"],
            index=0 if initial("run.format_qa", "format") == "format" else 1,
            format_func=lambda v: {
                "format": f"{Path(entry.format_qa).name} (format pairs made on the Corpus page)",
                "pairs": f"{qa_path.name} (answers as text)",
            }[v],
            key="run.format_qa",
        )
        if pick == "format":
            files["qa"] = entry.format_qa
    by = st.radio(
        "The format",
        ["schema", "pattern"],
        index=0 if initial("run.format_by", "schema") == "schema" else 1,
        format_func={"schema": "A JSON Schema", "pattern": "A regular expression"}.get,
        horizontal=True,
        key="run.format_by",
    )
    if by == "pattern":
        pattern = st.text_input(
            "Regular expression every answer must match",
            value=initial("run.pattern", "", lambda v: isinstance(v, str)),
            key="run.pattern",
        )
        if not pattern:
            return files, "Type the regular expression every answer must match."
        try:
            return {**files, "pattern": check_pattern(pattern)}, None
        except TaskFileError as e:
            return files, str(e)
    schema = task_upload("format")
    if schema is None and files.get("qa") and not state.get("task_file_format"):
        schema = entry.format_schema  # the format pairs' own, unless another was uploaded
        st.caption(f"Schema: `{Path(schema).name}`, made with the format pairs.")
    if schema is None:
        return files, "Upload the JSON Schema every answer must validate against."
    return {**files, "schema": schema}, None


# The sample ships its format pairs, schema and style; a corpus of one's own takes them here.
task_files, task_problem = {}, None
if task != "qa":
    if is_sample_qa(qa_path):
        task_files = sample_task_files(task)
    else:
        task_files, task_problem = own_task_files(task)
run_settings = page_defaults.to_dict()
for title, fields in SETTING_GROUPS.items():
    with st.expander(title):
        drawn = config_form(page_defaults, "run", only=fields)
    for dotted in fields:  # each group's values into the one settings dict
        target, key = _dotted(run_settings, dotted)
        source, _ = _dotted(drawn, dotted)
        target[key] = source[key]
run_settings = RunConfig.with_task_defaults({**run_settings, "task": task, **task_files})
with st.expander("Judge and experiment tracking"):
    run_settings.update(judge_and_tracking_settings(run_settings, home()))

strategy_settings = {}
for strategy in chosen:
    with st.expander(f"{display_name(strategy)} settings"):
        cls = get_strategy_class(strategy)
        strategy_settings[strategy] = config_form(cls.config_class(), f"run.{strategy}")
        spaces = describe_spaces(cls.config_class)
        if spaces:  # read from the config's fields: what a tuning budget other than off searches
            st.caption(
                "Searched on validation pairs when Budget and prices › Tuning budget is not off:"
            )
            st.dataframe(spaces, hide_index=True, key=f"run.{strategy}.spaces")
keep_widgets("run.")

config, problem = None, None
try:
    # Locations typed in the browser: only models, adapters and servers this server allows.
    allow = load_allowlist(home())
    mine = my_folders()  # this owner's uploads and runs' files, never the whole home
    # and their corpus's folder, where its format pairs' schema is kept
    corpus_folder = [Path(selected_entry().docs_path).parent] if task_files else []
    check_run_settings(run_settings, home(), allow, [*mine, *corpus_folder])
    for settings in strategy_settings.values():
        check_strategy_settings(settings, mine, allow)
    config = RunConfig.from_dict(
        {**run_settings, "strategies": list(chosen), "strategy_configs": strategy_settings}
    )
except ValueError as e:  # ConfigError is a ValueError; so is a fraction that is not a number
    problem = f"Settings: {hide_paths(e)}"
if not chosen:
    problem = "Choose at least one strategy."
if task_problem:
    problem = task_problem
elif config is not None and task != "qa" and not problem:
    # The gold answers read under the task, as the run would: each must follow the format.
    # Its Q/A file replaces the one previewed above (the format pairs, say).
    task_settings = {k: getattr(config, k) for k in ("qa", "task", "schema", "pattern", "style")}
    inputs_problem = task_check(stamp(config.qa, config.schema, config.style), **task_settings)
if inputs_problem:
    problem = f"The question/answer file cannot be used: {hide_paths(inputs_problem)}"
if config is not None and not problem:
    # Said before the run starts: trained arms on a server that cannot serve adapters.
    problem = unservable(config.models.to_json(), tuple(chosen))
if problem:
    st.error(md(problem))

settings_hash = (
    hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    if config
    else None
)

st.subheader("Estimate")
st.caption(
    "A short probe in the background: each strategy answers one batch of test questions; a "
    "strategy that trains runs one training step, multiplied by the steps the run would take. "
    "The estimate is stored with the run you launch, and History shows how close it was."
)
if st.button("Estimate", disabled=config is None or bool(problem), key="estimate"):
    try:
        job = queue.submit_estimate(config, owner=current_owner())
    except ValueError as e:  # JobRefused: over the owner's or the server's job cap
        st.error(md(e))
    else:
        remember(estimate_job=job, estimate_for=settings_hash)
        ensure_worker(store_path())


def estimate_table(est: Estimate) -> None:
    rows = [
        {
            "Strategy": display_name(e.strategy),
            "Prompt tokens per question": round(e.prompt_tokens_mean),
            "Seconds per question": e.seconds_per_question,
            "Preparation (s)": e.prepare_s,
            "In all": duration(e.total_s),
            "How": hide_paths(e.error or e.prepare_note),
        }
        for e in est.strategies
    ]
    table = pd.DataFrame(rows)
    # "How" is a sentence: a grid cell clips it, so it is written out under the table (the
    # column stays in the data, for the table's column menu and its CSV download).
    st.dataframe(
        table,
        hide_index=True,
        key="estimate_table",
        column_order=[c for c in table.columns if c != "How"],
        column_config={
            "Prompt tokens per question": st.column_config.NumberColumn(
                "Prompt tokens", help="Mean prompt length per question, in the model's tokens."
            ),
            "Seconds per question": st.column_config.NumberColumn(format="%.2f"),
            "Preparation (s)": st.column_config.NumberColumn(format="%.0f"),
        },
    )
    for row in rows:
        if row["How"]:
            st.caption(f"{md(row['Strategy'])}: {md(row['How'])}")
    st.write(
        f"{est.questions} test questions, {est.train} training pairs, "
        f"{est.retention_questions} general questions on {est.device}: about "
        f"**{duration(est.total_s)}** in all."
    )
    if est.reused:
        fresh = [display_name(e.strategy) for e in est.strategies if e.strategy not in est.reused]
        st.caption(
            "Reused, not probed again: "
            + ", ".join(display_name(n) for n in est.reused)
            + " (measured before on this machine with the same models, settings and files)"
            + (f"; probed now: {', '.join(fresh)}." if fresh else ".")
        )
    st.caption(
        "How sure: each strategy is timed on one batch of questions (one training step for "
        "one that trains) and scaled up; a busy machine stretches both. History shows, for "
        "each run launched with an estimate, how close it came."
    )
    tuning_s = sum(e.tuning_s for e in est.strategies)
    if tuning_s:
        st.caption(
            f"Of which tuning (searching each strategy's settings): about {duration(tuning_s)}."
        )
    resplits_s = sum(e.resplits_s for e in est.strategies)
    if resplits_s:
        st.caption(f"Of which re-splits (stability): about {duration(resplits_s)}.")
    if est.cluster:  # the Ray placement plan, before the run starts
        st.caption(hide_paths(est.cluster))
    if est.oracle_s:
        st.caption(
            "Of which the oracle reading (each test question with its gold passage, the "
            f"ceiling of retrieval): about {duration(est.oracle_s)}."
        )


def estimate_panel() -> Estimate | None:
    """The owner's last estimate: progress while the worker probes (polled every POLL_S
    seconds, only then), the figures after."""
    saved = remembered()
    job = queue.get(saved.estimate_job) if saved.estimate_job else None
    if job is None:
        return None
    probing = job.status in ("queued", "running")
    return st.fragment(_estimate_fragment, run_every=POLL_S if probing else None)(job.id)


def _estimate_fragment(job_id: str) -> Estimate | None:
    saved = remembered()
    job = queue.get(job_id)
    if job is None:
        return None
    serve_queued(queue, [job])  # a worker that died or went idle is started again
    if job.status in ("queued", "running"):
        done, total = job.done, job.total
        text = f"Estimating: {stage_words(job.stage)}"
        if job.strategy:
            text = f"Estimating {done + 1} of {total}: {display_name(job.strategy)}"
        st.progress(done / total if total else 0.0, text=text)
        state[f"_estimate_polled_{job_id}"] = True
        return None
    if state.pop(f"_estimate_polled_{job_id}", False):
        st.rerun(scope="app")  # it ended while polled: the page redraws once, unpolled
    if job.status != "done":
        st.error(f"The estimate {job.status}: {md(hide_paths(job.error or ''))}")
        return None
    est = queue.estimate_result(job.id)
    if saved.estimate_for != settings_hash:
        st.caption("Made with other settings than these: estimate again for these.")
    estimate_table(est)
    return est


estimate_panel()

st.subheader("Launch")
going = active_runs(queue)
why_not = problem or ("Your run is still going: wait for it or cancel it." if going else None)
if st.button("Run comparison", type="primary", disabled=bool(why_not), key="run"):
    try:
        job_id = queue.submit(config, owner=current_owner())
    except ValueError as e:  # JobRefused or over the disk quota: say which, run nothing
        st.error(md(e))
        st.stop()
    run_id = queue.get(job_id).run_id
    saved = remembered()
    if saved.estimate_job and saved.estimate_for == settings_hash:
        # Without a finished estimate for these settings the run goes without one.
        with contextlib.suppress(KeyError, ValueError, OSError):
            store().update_run(run_id, estimate=queue.estimate_result(saved.estimate_job).to_dict())
    remember(run_id=run_id)
    ensure_worker(store_path())
    st.rerun()
if why_not and not problem:
    st.caption(why_not)

runs_in_progress("run")
finished = [
    j
    for j in queue.list_jobs(owner=current_owner(), kinds=("run", "resume"))
    if j.status not in ("queued", "running")
][:3]
for job in finished:
    head = f"Run {job.run_id}"
    if job.status == "failed":
        st.error(f"{head} failed: {md(hide_paths(job.error or 'no error recorded'))}")
    elif job.status == "interrupted":
        st.warning(f"{head} was interrupted; finished strategies are kept. Resume it in History.")
    elif job.status == "cancelled":
        st.info(f"{head} was cancelled.")
    else:
        st.success(f"{head} finished. Open the Compare page to read the results.")
if going:
    st.caption("Runs go on in the background: reloading or closing this page does not stop them.")
st.page_link("ui/compare_page.py", label="Compare results", icon=":material/bar_chart:")
