"""Command line: `adaptlab run|show|list|export|compare|spaces|tuned|rescore|track|worker|jobs|app`.

A thin layer over the library; `python -m eval` is the same command. Paths are relative to the
current folder; the defaults (`sample_data/...`) fall back to the sample bundled with the package.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from cli.args import parser
from core.bundled import PACKAGE_ROOT, bundled_fallback
from core.config import ConfigError, ModelConfig
from core.qagen import QAGenConfig, generate_qa, save_qa_jsonl
from core.tuning_space import describe_spaces
from eval.config import RunConfig, TrackingConfig
from eval.events import ProgressEvent
from eval.metrics import default_metrics
from eval.run.inputs import check_task_inputs, read_corpus
from eval.run.scoring import rescore
from eval.stats.calibration import Settings, Synthetic, calibrate_scores, calibrate_synthetic
from eval.stats.decision import is_binary
from eval.store.runs import RunNotFound, RunStore
from eval.views.html_report import html_report
from eval.views.judge import agreement_summary, judge_summary
from eval.views.quality import retrieval_recall
from eval.views.run_compare import compare_data, render_compare
from eval.views.run_view import RunView, check_metric, run_lead_metric
from eval.views.tables import render_run, run_summary
from eval.views.task_verdict import fine_tuning_bought
from eval.views.tuning import tuned_config_yaml, tuning_records
from eval.views.verdict.confidence import render_decision
from eval.views.verdict.decision import decide
from eval.views.verdict.diagnostics import diagnose, render_diagnostics
from eval.views.verdict.export import decision_data
from service.accounts import AccountBook
from service.jobs import JobQueue, main_worker
from service.jobs.job import Job
from service.tracking import log_run, run_and_track
from strategies import get_strategy_class, strategy_names


def render_with_diagnostics(store: RunStore, run_id: str) -> str:
    """The run's tables, then what the verdict knows (attribution, oracle ceiling, power)."""

    view = RunView.load(store, run_id)
    text = render_run(view.run)
    if not view.results:
        return text
    decision = "\n".join([render_decision(view), *fine_tuning_bought(view)])
    return f"{text}\n\n{decision}\n\n{render_diagnostics(diagnose(view))}"


def summary_with_diagnostics(store: RunStore, run_id: str) -> dict:
    """`run_summary` plus the diagnostics under "verdict" (what `--json` writes)."""

    view = RunView.load(store, run_id)
    tuning = {label: rec.to_dict() for label, rec in tuning_records(view.run).items()}
    summary = {**run_summary(view.run), "verdict": diagnose(view).to_dict(), "tuning": tuning}
    # Retrieval on its own (recall@k, MRR, the retriever) per strategy that retrieved.
    recall = retrieval_recall(view).astype(object)
    summary["retrieval"] = recall.where(recall.notna(), None).to_dict(orient="records")
    return summary | decision_data(view)


def build_config(args: argparse.Namespace) -> RunConfig:
    """A RunConfig from --config (if any) with the command-line flags applied on top."""

    data = RunConfig.load(args.config).to_dict() if args.config else RunConfig().to_dict()
    for key in ("corpus", "qa", "name"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    if args.strategies:
        data["strategies"] = (
            strategy_names()
            if args.strategies == "all"
            else [s.strip() for s in args.strategies.split(",") if s.strip()]
        )
    for key in ("generator", "embedder", "device"):
        if getattr(args, key):
            data["models"][key] = getattr(args, key)
    if args.n_test is not None:
        data["n_test"] = args.n_test
    if args.batch_size is not None:
        data["batch_size"] = args.batch_size
    if args.seed is not None:
        data["split"]["seed"] = args.seed
    if args.generate_qa:
        if args.qa:
            raise ConfigError("give either --qa or --generate-qa, not both")
        data["qa"] = ""
        data["qa_generation"]["method"] = args.generate_qa
    if args.store:
        data["store_path"] = args.store
    if args.tuning:
        data["tuning"]["budget"] = args.tuning
    if args.metrics:
        data["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if args.judge is not None:
        data["metrics"] = list(dict.fromkeys([*(data["metrics"] or default_metrics()), "judge"]))
        if args.judge:
            data["judge"]["model"] = args.judge
    data["tracking"] = _tracking_settings(args, data["tracking"])
    for key in ("task", "schema", "pattern", "style"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    data = RunConfig.with_task_defaults(data)
    for key in ("corpus", "qa", "schema", "style"):
        if data[key]:
            data[key] = str(bundled_fallback(data[key]))
    if args.executor:
        data["executor"]["kind"] = args.executor
    if args.ray_address:
        data["executor"]["address"] = args.ray_address
        data["executor"]["kind"] = args.executor or "ray"
    if getattr(args, "storage", None):
        data["executor"]["storage"] = args.storage
    for item in args.set:
        target, sep, value = item.partition("=")
        strategy, dot, key = target.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set wants STRATEGY.KEY=VALUE, got {item!r}")
        # A run section (models, chunking, split, ...) takes the key itself; else a strategy.
        section = data.get(strategy) if strategy != "strategy_configs" else None
        try:  # the value read against the field's declared type ("off" stays a word)
            if isinstance(section, dict):
                dest, parsed = section, RunConfig.parse_setting(target, value)
            else:
                config_class = get_strategy_class(strategy).config_class
                dest = data["strategy_configs"].setdefault(strategy, {})
                parsed = config_class.parse_setting(key, value)
        except (ConfigError, KeyError) as e:
            message = e.args[0] if isinstance(e, KeyError) else e  # KeyError quotes its text
            raise ConfigError(f"--set {item}: {message}") from None
        *inner, last = key.split(".")  # lora.training.epochs: a nested section
        for part in inner:
            dest = dest.setdefault(part, {})
            if not isinstance(dest, dict):
                raise ConfigError(f"--set {target}: {part} is not a section")
        dest[last] = parsed
    return RunConfig.from_dict(data)


def unread_settings(config: RunConfig, sets: list[str]) -> list[str]:
    """A warning per `--set` that no strategy of the run reads: it names a strategy not in the
    run (`rag.retriever` with only lora+rag, whose retrieval is `lora+rag.rag.retriever`). A
    config file may hold every strategy's settings; a flag given for this run should act."""
    sections = set(config.to_dict()) - {"strategy_configs"}
    warnings = []
    for item in sets:
        target = item.partition("=")[0]
        name = target.partition(".")[0]
        if name in sections or name in config.strategies:
            continue
        hosts = [
            s
            for s in config.strategies
            if name in {f.name for f in dataclasses.fields(get_strategy_class(s).config_class)}
        ]
        hint = "".join(f"; {s} takes it as {s}.{target}" for s in hosts)
        warnings.append(
            f"--set {item}: {name} is not among this run's strategies "
            f"({', '.join(config.strategies)}), so nothing reads it{hint}"
        )
    return warnings


def _tracking_settings(args: argparse.Namespace, current: dict) -> dict:
    """The tracking section with --track, --track-uri and --experiment applied."""
    out = dict(current)
    if args.track:
        out["tracker"] = args.track
    if args.track_uri:
        out["uri"] = args.track_uri
    if args.experiment:
        out["experiment"] = args.experiment
    return out


def _judge_lines(store: RunStore, run) -> str:
    """What the judge cost and how often it agrees with F1 ('' when the run was not judged)."""

    cost = judge_summary(run)
    if not cost:
        return ""
    agree = agreement_summary(store.get_answers(run.id))
    return "\n" + cost + (f"\n{agree}" if agree else "")


def _track(store: RunStore, run_id: str, args: argparse.Namespace) -> bool | None:
    """Log a stored run when --track asks (a failure is printed, never fatal)."""

    cfg = TrackingConfig.from_dict(_tracking_settings(args, {}))
    if not cfg.tracker:
        return None
    got = log_run(
        store,
        run_id,
        tracker=cfg.tracker,
        uri=cfg.uri or None,
        home=store.path.parent,
        experiment=cfg.experiment,
    )
    if got.ok:
        store.update_run(run_id, tracking=got.to_dict())
    print(("" if got.ok else "warning: ") + got.message(), file=sys.stderr)
    return got.ok


class _Progress:
    """Turns harness events into tqdm bars on stderr."""

    def __init__(self, quiet: bool):
        from tqdm import tqdm

        self.tqdm = tqdm
        self.quiet = quiet
        self.bar = None
        self.key = None
        self.postfix: dict[str, str] = {}  # the bar's figures: training loss, validation loss

    def __call__(self, ev: ProgressEvent) -> None:
        stage, name = ev.stage, ev.strategy or ""
        if stage == "tracked":  # said even with --quiet: a failure to log is a warning to read
            self._close()
            print(("" if ev.ok else "warning: ") + (ev.message or ""), file=sys.stderr)
            return
        if self.quiet:
            return
        if stage == "validate" and self.key == (name, "train"):
            # Training goes on after its validation loss: a new bar here would restart the
            # clock at the current step and show an absurd rate.
            loss = ev.figures.get("eval_loss")
            if loss is not None:
                self.postfix["val_loss"] = f"{float(loss):.3f}"
                self.bar.set_postfix(self.postfix, refresh=False)
            return
        if stage in ("answer", "train", "judge"):
            total = ev.total or ev.steps
            done = ev.done if ev.done is not None else (ev.step or 0)
            key = (name, stage)
            if self.key != key:
                self._close()
                doing = {"answer": "answering", "train": "training", "judge": "judging"}[stage]
                label = f"{name}: {doing}"
                self.bar = self.tqdm(total=total, desc=label, file=sys.stderr, leave=True)
                self.key, self.postfix = key, {}
            if ev.loss is not None:
                self.postfix["loss"] = f"{ev.loss:.3f}"
                self.bar.set_postfix(self.postfix, refresh=False)
            if done != self.bar.n:
                self.bar.update(done - self.bar.n)
        else:
            self._close()
            if stage == "strategy_failed":
                print(f"{name}: failed: {ev.error}", file=sys.stderr)
            elif stage in ("load_models", "ingest", "prepare", "score"):
                what = {"load_models": "loading models", "ingest": "reading the corpus"}
                print(f"{name + ': ' if name else ''}{what.get(stage, stage)}...", file=sys.stderr)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.key = None, None


def main(argv: list[str] | None = None, prog: str = "adaptlab") -> int:
    """Parse `argv` (default: the process's arguments), run the command, return its exit code."""
    args = parser(prog).parse_args(argv)
    if getattr(args, "store", None) and Path(args.store).is_dir():
        # `--store .adaptlab` names the folder the app keeps; the runs are in its SQLite file
        args.store = str(Path(args.store) / Path(RunConfig().store_path).name)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "app":
            return _cmd_app(args)
        if args.command == "generate-qa":
            return _cmd_generate_qa(args)
        if args.command == "worker":
            return main_worker(args.store, args.idle_exit, args.once)
        if args.command == "spaces":
            try:
                print(render_spaces(args.strategies))
            except KeyError as e:  # an unknown strategy name
                raise ValueError(str(e)) from None
            return 0
        if args.command == "jobs":
            queue = JobQueue(args.store)
            if args.action == "cancel":  # the operator's full access: any owner's job
                if not args.job_id:
                    raise ValueError("name the job to cancel: python -m eval jobs cancel JOB_ID")
                try:
                    queue.cancel(args.job_id)
                except KeyError as e:  # JobNotFound
                    print(f"error: {e}", file=sys.stderr)
                    return 2
                print(f"job {args.job_id}: {queue.get(args.job_id).status}, cancel requested")
                return 0
            labels = AccountBook(queue.path).labels()
            print(render_jobs(queue.list_jobs(args.owner, limit=10_000), labels))
            return 0
        store = RunStore(args.store)
        if args.command == "show":
            run = store.get_run(args.run_id)
            print(render_with_diagnostics(store, args.run_id) + _judge_lines(store, run))
        elif args.command == "list":
            for r in store.list_runs():
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
                print(f"{r.id}  {when}  {r.status:<9}  {','.join(r.strategies)}  {r.name}")
        elif args.command == "tuned":
            text = tuned_config_yaml(store.get_run(args.run_id))
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
        elif args.command == "export":
            text = (store.export_json if args.format == "json" else store.export_csv)(args.run_id)
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
        elif args.command == "calibrate":
            print(_calibrate(store, args))
        elif args.command == "compare":
            print(compare_text(store, args) if args.run_b is None else _compare_runs(store, args))
        elif args.command == "rescore":
            judge = None
            if args.judge_model:
                stored = RunConfig.from_stored(store.get_run(args.run_id).config).judge
                judge = stored.replace(model=args.judge_model)
            metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
            rescore(store, args.run_id, metrics, judge_config=judge)
            run = store.get_run(args.run_id)
            print(render_with_diagnostics(store, args.run_id) + _judge_lines(store, run))
            _track(store, args.run_id, args)
        elif args.command == "track":
            store.get_run(args.run_id)  # an unknown run is an error, not a tracking warning
            return 0 if _track(store, args.run_id, args) else 1
    except (ConfigError, RunNotFound, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:  # --store names a file that is not a runs database
        where = getattr(args, "store", None) or "the store"
        print(f"error: {where}: not a runs database ({e})", file=sys.stderr)
        return 2
    return 0


def _calibrate(store: RunStore, args: argparse.Namespace) -> str:
    """`adaptlab calibrate RUN_ID`: the decision procedure on the run's own scores made null,
    and on synthetic clustered data like it (eval.stats.calibration)."""
    if args.runs < 10:
        raise ValueError("--runs must be at least 10")
    view = RunView.load(store, args.run_id)
    check_metric(view, args.metric)
    scores = {r.strategy: view.scores(r.strategy, args.metric) for r in view.main}
    scores = {k: v for k, v in scores.items() if v}
    if len(scores) < 2:
        raise ValueError(f"run {args.run_id} has fewer than two strategies scored on {args.metric}")
    settings = Settings(runs=args.runs, seed=args.seed)
    own = calibrate_scores(scores, view.groups(), settings, f"run {view.run.id}, {args.metric}")
    binary = is_binary([v for s in scores.values() for v in s.values()])
    # as many groups and strategies as the run, the same kind of score, groups of 1-3 or more
    size = max(3, round(2 * own.questions / max(1, own.groups)) - 1)
    like = Synthetic(groups=max(2, own.groups), max_size=size, strategies=len(scores))
    synth = calibrate_synthetic(dataclasses.replace(like, binary=binary), settings)
    if args.json:
        data = {"own": own.to_dict(), "synthetic": synth.to_dict()}
        Path(args.json).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return "\n".join(own.lines() + synth.lines())


def _compare_runs(store: RunStore, args: argparse.Namespace) -> str:
    """`adaptlab compare A B`: the two runs' change per strategy, and each run's decision
    figures; writes them as JSON to `args.json` when given."""

    if args.html:
        raise ConfigError("--html reports one run: give a single RUN_ID")
    a, b = RunView.load(store, args.run_id), RunView.load(store, args.run_b)
    metric = args.metric or run_lead_metric(a)
    text = render_compare(a, b, metric)
    if args.json:
        data = compare_data(a, b, metric)
        Path(args.json).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return text


def _cmd_run(args: argparse.Namespace) -> int:

    config = build_config(args)
    # A bad schema, style file or gold answer is refused here, before a run is stored.
    for warning in [*unread_settings(config, args.set), *check_task_inputs(config)]:
        print(f"warning: {warning}", file=sys.stderr)
    store = RunStore(config.store_path)
    t0 = time.perf_counter()
    progress = _Progress(args.quiet)
    try:
        run_id = run_and_track(config, store=store, progress=progress, owner=args.owner)
    finally:
        progress._close()
    run = store.get_run(run_id)
    print(render_with_diagnostics(store, run_id) + _judge_lines(store, run))
    print(f"\nWall time: {time.perf_counter() - t0:.1f} s   (adaptlab show {run_id})")
    if args.json:
        summary = summary_with_diagnostics(store, run_id)
        Path(args.json).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0 if run.status == "done" else 1


def compare_text(store: RunStore, args: argparse.Namespace) -> str:
    """The Compare page's decision for `args.run_id` as text; writes the HTML report to
    `args.html` when given."""
    if args.json:
        raise ConfigError("--json compares two runs: give RUN_A RUN_B (or `show` for one run)")
    view = RunView.load(store, args.run_id)
    if not view.results:
        return f"run {args.run_id} has no results to compare"
    metric = args.metric or run_lead_metric(view)  # decide refuses one the run lacks
    decision = decide(view, args.volume, metric, args.threshold, args.months)
    if args.html:
        report = html_report(
            store,
            args.run_id,
            metric=metric,
            monthly_volume=args.volume,
            threshold=args.threshold,
            months=args.months,
        )
        Path(args.html).write_text(report, encoding="utf-8")
    return "\n".join(decision.sentences())


def _cmd_app(args: argparse.Namespace) -> int:
    """Serve app.py with Streamlit from the current folder (where the app keeps .adaptlab/),
    with the settings of the checkout's .streamlit/config.toml (privacy, upload size)."""
    import subprocess
    import tomllib

    script = PACKAGE_ROOT / "app.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: reinstall adaptlab")
    flags: list[str] = []
    settings = PACKAGE_ROOT / ".streamlit" / "config.toml"
    if settings.is_file() and not (Path.cwd() / ".streamlit" / "config.toml").is_file():
        for section, values in tomllib.loads(settings.read_text(encoding="utf-8")).items():
            for key, value in values.items():
                text = str(value).lower() if isinstance(value, bool) else str(value)
                flags.append(f"--{section}.{key}={text}")
    flags += [f"--server.address={args.address}", f"--server.port={args.port}"]
    env = dict(os.environ)
    if args.shared:  # service.accounts.server_settings reads it over server.yaml's mode
        env["ADAPTLAB_MODE"] = "shared"
    return subprocess.call([sys.executable, "-m", "streamlit", "run", str(script), *flags], env=env)


def _cmd_generate_qa(args: argparse.Namespace) -> int:

    settings = {"method": args.method}
    for key in ("n", "per_chunk", "seed"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    config = QAGenConfig.from_dict(settings)
    models = ModelConfig(generator=args.generator) if args.generator else ModelConfig()
    # Chunked in the generator's tokens, as the app, the worker and a run chunk it.
    corpus = read_corpus(bundled_fallback(args.corpus), RunConfig(models=models))
    for e in corpus.errors:
        print(f"skipped {e.name}: {e.reason}", file=sys.stderr)
    if not corpus.chunks:
        raise ValueError(f"the corpus at {args.corpus} has no usable text")
    t0 = time.perf_counter()
    result = generate_qa(corpus, config, models)
    save_qa_jsonl(result.pairs, args.output)
    rejected = ", ".join(f"{k} {v}" for k, v in result.stats["rejected"].items()) or "none"
    print(
        f"{result.stats['kept']} pairs kept of {result.stats['considered']} considered "
        f"in {time.perf_counter() - t0:.2f} s -> {args.output}\nrejected: {rejected}"
    )
    return 0 if result.pairs else 1


def render_jobs(jobs: list[Job], labels: dict[str, str] | None = None) -> str:
    """One line per job (for `adaptlab jobs`); an account's owner id is followed by the label
    it signed in with (`labels`: service.accounts.AccountBook)."""
    labels = labels or {}
    lines = []
    for j in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created_at))
        where = f"{j.strategy or 'run'}: {j.stage}"
        if j.total:
            where += f" {j.done}/{j.total}"
        lines.append(
            f"{j.id}  {when}  {j.status:<11}  {j.run_id or j.kind}  "
            f"{j.owner or '-'}"
            + (f" ({labels[j.owner]})" if j.owner in labels else "")
            + f"  {where}"
            + (f"  {j.error}" if j.error else "")
        )
    return "\n".join(lines) or "no jobs"


def render_spaces(names: list[str]) -> str:
    """Each strategy's tunable settings, read from its config fields: field, default, space.

    Raises UnknownStrategyError (a KeyError) for a name that is not registered."""

    out = []
    for name in names or strategy_names():
        rows = describe_spaces(get_strategy_class(name).config_class)
        out.append(f"{name}:" if rows else f"{name}: nothing to tune")
        out += [f"  {r['field']:<24} default {r['default']:<44} {r['space']}" for r in rows]
    return "\n".join(out)
