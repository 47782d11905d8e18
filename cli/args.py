"""The command line's flags: every subcommand of `adaptlab` (or `python -m eval`) and what it
accepts."""

from __future__ import annotations

import argparse

from core.config import ModelConfig
from core.qagen import METHODS
from eval.config import RunConfig
from service.cluster.settings import ExecutorConfig


def parser(prog: str = "adaptlab") -> argparse.ArgumentParser:
    """Every subcommand and its flags (`prog`: the name usage lines show)."""
    p = argparse.ArgumentParser(prog=prog, description="AdaptLab comparisons")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (
        _run,
        _stored_run,
        _compare,
        _calibrate,
        _generate_qa,
        _tuning,
        _queue,
        _rescore,
        _track,
        _app,
    ):
        add(sub)
    return p


def _run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="compare strategies on a corpus and a Q/A file")
    run.add_argument("--config", help="YAML/JSON RunConfig; flags below override it")
    run.add_argument(
        "--corpus", help="folder of documents (txt, md, pdf, docx, html; default: the sample)"
    )
    run.add_argument("--qa", help="question/answer file (.jsonl, .json or .csv)")
    run.add_argument(
        "--task",
        choices=RunConfig.choices_of("task"),
        help="qa (the default: facts), format (answers follow --schema or --pattern) or style "
        "(answers keep the rules of --style)",
    )
    run.add_argument("--schema", metavar="FILE.json", help="format task: a JSON Schema file")
    run.add_argument("--pattern", help="format task without a schema: a regular expression")
    run.add_argument("--style", metavar="FILE.yaml", help="style task: a YAML file of rules")
    run.add_argument(
        "--generate-qa",
        nargs="?",
        const=METHODS[0],
        choices=METHODS,
        help="no Q/A file: generate pairs from the corpus (cloze, the default, or model) and "
        "save them under workdir/generated_qa",
    )
    run.add_argument(
        "--strategies", help="comma-separated names, or 'all' (default: the default strategies)"
    )
    run.add_argument("--generator", help="bundled alias, Hugging Face id or local folder")
    run.add_argument("--embedder", help="bundled alias, sentence-transformers id or folder")
    run.add_argument("--device", choices=ModelConfig.choices_of("device"))
    run.add_argument("--n-test", type=int, help="use only the first N test questions")
    run.add_argument("--seed", type=int, help="seed of the split and the strategies")
    run.add_argument("--batch-size", type=int, help="questions generated together")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STRATEGY.KEY=VALUE",
        help="a strategy or run-section setting, e.g. --set lora.training.epochs=1 "
        "--set rag.top_k=5 --set models.engine=openai",
    )
    run.add_argument(
        "--tuning",
        choices=RunConfig().tuning.choices_of("budget"),
        help="search each strategy's tunable settings on validation pairs first "
        "(`adaptlab spaces` lists them)",
    )
    _run_outputs(run)


def _run_outputs(run: argparse.ArgumentParser) -> None:
    """`run`'s flags past the comparison itself: metrics, judge, tracking, where results go."""
    run.add_argument("--name", help="a label for the run")
    run.add_argument(
        "--metrics", help="comma-separated metric names (default: every default metric)"
    )
    run.add_argument(
        "--judge",
        nargs="?",
        const="",
        metavar="MODEL",
        help="also score the 'judge' metric: a model grades each answer against the gold "
        "answers (MODEL: a generator name; none = the run's generator)",
    )
    tracking_flags(run)
    run.add_argument(
        "--executor",
        choices=ExecutorConfig.choices_of("kind"),
        help="where arms run: local (this process) or ray (needs requirements-cluster.txt)",
    )
    run.add_argument(
        "--ray-address",
        help="Ray cluster address (host:6379 or ray://host:10001); implies --executor ray",
    )
    run.add_argument(
        "--storage",
        metavar="URI",
        help="storage every Ray node reaches, for adapters, indexes and trial outputs: a "
        "shared folder, s3://bucket/prefix or gs://bucket/prefix (a multi-node cluster needs it)",
    )
    run.add_argument("--json", metavar="FILE", help="write the run's summary as JSON")
    run.add_argument("--store", help="SQLite file of runs")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--owner",
        default="",
        help="file the run under this app owner (the token in the app's ?owner= link); "
        "default: the operator's, which a private workspace does not show in the app",
    )


def _stored_run(sub: argparse._SubParsersAction) -> None:
    for name, help_ in (("show", "print a stored run"), ("export", "export a stored run")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("run_id")
        sp.add_argument("--store", default=RunConfig().store_path)
        if name == "export":
            sp.add_argument("--format", choices=["json", "csv"], default="json")
            sp.add_argument("-o", "--output", help="file to write (default: stdout)")


def _calibrate(sub: argparse._SubParsersAction) -> None:
    ca = sub.add_parser(
        "calibrate",
        help="run the decision procedure on null data built from a stored run's scores and on "
        "synthetic clustered data: the share of false winners and the intervals' coverage",
    )
    ca.add_argument("run_id")
    ca.add_argument("--store", default=RunConfig().store_path)
    ca.add_argument("--metric", default="f1", help="metric whose scores are used (default: f1)")
    ca.add_argument("--runs", type=int, default=400, help="null data sets per check")
    ca.add_argument("--seed", type=int, default=0)
    ca.add_argument("--json", help="also write the figures as JSON to this file")


def _compare(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser(
        "compare",
        help="one stored run: the Compare page's decision (and its HTML report); two runs: "
        "the paired change per strategy, corrected, with costs",
    )
    cp.add_argument("run_id")
    cp.add_argument("run_b", nargs="?", help="a second run: compare the two, strategy by strategy")
    cp.add_argument("--store", default=RunConfig().store_path)
    cp.add_argument("--volume", type=int, default=10_000, help="questions a month")
    cp.add_argument("--threshold", type=float, default=0.1, help="the quality bar")
    cp.add_argument("--months", type=int, default=12, help="months the preparation is spread over")
    cp.add_argument("--html", metavar="FILE", help="also write the HTML report there (one run)")
    cp.add_argument(
        "--metric",
        help="metric the decision (and two runs' comparison) is made on (default: what the "
        "run's task is judged by first, as on the Compare page: F1, valid format, style pass)",
    )
    cp.add_argument("--json", help="two runs: also write the comparison as JSON to this file")


def _generate_qa(sub: argparse._SubParsersAction) -> None:
    gq = sub.add_parser("generate-qa", help="generate question/answer pairs from a corpus")
    gq.add_argument("--corpus", required=True, help="folder of documents")
    gq.add_argument("-o", "--output", required=True, help="JSONL file to write")
    gq.add_argument("--method", choices=METHODS, default=METHODS[0])
    gq.add_argument("--n", type=int, help="most pairs in total")
    gq.add_argument("--per-chunk", type=int, help="most pairs from one chunk")
    gq.add_argument("--seed", type=int, help="seed of the choices")
    gq.add_argument("--generator", help="generator for --method model (default: the bundled one)")


def _tuning(sub: argparse._SubParsersAction) -> None:
    """`spaces` (what each strategy can tune) and `tuned` (a run's tuned settings as YAML)."""
    sc = sub.add_parser("spaces", help="list each strategy's tunable settings and search spaces")
    sc.add_argument("strategies", nargs="*", help="strategy names (default: every one offered)")
    tu = sub.add_parser("tuned", help="a stored run's tuned settings as YAML for --config")
    tu.add_argument("run_id")
    tu.add_argument("--store", default=RunConfig().store_path)
    tu.add_argument("-o", "--output", help="file to write (default: stdout)")


def _queue(sub: argparse._SubParsersAction) -> None:
    """`list` (stored runs), `worker` and `jobs` (the background queue)."""
    ls = sub.add_parser("list", help="list stored runs")
    ls.add_argument("--store", default=RunConfig().store_path)

    wk = sub.add_parser("worker", help="run queued jobs of a store one at a time (background)")
    wk.add_argument("--store", default=RunConfig().store_path)
    wk.add_argument(
        "--idle-exit", type=float, default=600.0, help="exit after this many idle seconds"
    )
    wk.add_argument("--once", action="store_true", help="exit as soon as the queue is empty")
    jb = sub.add_parser("jobs", help="list queued, running and finished jobs")
    jb.add_argument("--store", default=RunConfig().store_path)
    jb.add_argument("--owner", help="only this owner's jobs")
    jb.add_argument("action", nargs="?", choices=("list", "cancel"), default="list")
    jb.add_argument("job_id", nargs="?", help="the job to cancel (any owner's: operator only)")


def _rescore(sub: argparse._SubParsersAction) -> None:
    rs = sub.add_parser("rescore", help="score stored answers with metrics, without generating")
    rs.add_argument("run_id")
    rs.add_argument("--metrics", required=True, help="comma-separated metric names")
    rs.add_argument("--store", default=RunConfig().store_path)
    rs.add_argument(
        "--judge-model", help="grade with this model instead of the run's stored judge settings"
    )
    tracking_flags(rs)


def _track(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("track", help="log a stored run to an experiment tracker (MLflow)")
    tr.add_argument("run_id")
    tr.add_argument("--store", default=RunConfig().store_path)
    tracking_flags(tr, default="mlflow")


def _app(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("app", help="open the web app (Streamlit), private to this machine")
    # Loopback by default, as `make run`: see README "Security" before changing it.
    ap.add_argument("--address", default="127.0.0.1", help="address the server listens on")
    ap.add_argument("--port", type=int, default=8501)
    ap.add_argument(
        "--shared",
        action="store_true",
        help="shared mode: sign-in required, one workspace per account, no owner links "
        "(README: Shared server); the default is personal mode, or <home>/server.yaml's mode",
    )


def tracking_flags(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument(
        "--track",
        choices=["mlflow"],
        default=default,
        help="log the stored run to MLflow (pip install -r requirements-tracking.txt)",
    )
    p.add_argument(
        "--track-uri",
        help="tracking URI (default: MLFLOW_TRACKING_URI, else mlruns/ beside the store)",
    )
    p.add_argument("--experiment", help="MLflow experiment name (default: adaptlab)")
