"""Experiment tracking: a stored run logged to MLflow, read from the store only.

One parent MLflow run per AdaptLab run (the config flattened into parameters, the HTML report and
the answers CSV as artifacts) and one nested run per strategy (its settings, metric means with
their 95% intervals, costs, and the judge's own cost). Logging happens after the run is stored and
never fails it: every problem comes back as a warning in `TrackingResult`.

MLflow is optional (requirements-tracking.txt). With no tracking URI given (argument or
MLFLOW_TRACKING_URI), runs go to a local `mlruns/` folder: an SQLite database plus an
`artifacts/` folder, which works offline. (MLflow 3 refuses its older plain-folder store.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from eval.config import DEFAULT_EXPERIMENT, TRACKERS, RunConfig
from eval.events import ProgressEvent, ProgressFn
from eval.run.harness import (
    run_comparison,  # the harness loads torch-heavy modules on first use
)
from eval.store.runs import RunStore, StrategyResult
from eval.views import RunView
from eval.views.html_report import html_report
from eval.views.verdict.export import decision_data, decision_metrics

PARAM_CHARS = 6000  # MLflow's limit on one parameter value
BATCH = 100  # MLflow takes at most 100 parameters in one log_batch call
INSTALL_HINT = "pip install -r requirements-tracking.txt"


@dataclass
class TrackingResult:
    """What logging did: where to, the MLflow ids, or the warning that says why it did not."""

    ok: bool
    tracker: str
    uri: str = ""
    experiment: str = ""
    parent_id: str = ""
    strategy_ids: dict[str, str] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As stored in the run's metadata (the URI without credentials)."""
        return {**dataclasses.asdict(self), "uri": redact(self.uri)}

    def message(self) -> str:
        """One line for the CLI or the Run page."""
        if not self.ok:
            return f"{self.tracker}: not logged: {'; '.join(self.warnings)}"
        extra = f" (warnings: {'; '.join(self.warnings)})" if self.warnings else ""
        return (
            f"{self.tracker}: logged run {self.parent_id} with {len(self.strategy_ids)} "
            f"strategies to {redact(self.uri)}, experiment {self.experiment!r}{extra}"
        )


def redact(uri: str) -> str:
    """`uri` without a user name or password, for storing and showing."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def local_uri(folder: str | Path) -> str:
    """The tracking URI of a local MLflow folder (`folder/mlflow.db`, artifacts beside it)."""
    return "sqlite:///" + str((Path(folder) / "mlflow.db").resolve())


def resolve_uri(uri: str | None = None, home: str | Path | None = None) -> str:
    """`uri`, else MLFLOW_TRACKING_URI, else a `mlruns/` folder in `home` (default: cwd)."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return local_uri(Path(home or ".") / "mlruns")


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys ('models.generator'); lists and scalars as text."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = _text(v)
    elif prefix:
        out[prefix] = _text(data)
    return out


def _text(v: Any) -> str:
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float)) for x in v):
        text = ",".join(str(x) for x in v)
    elif isinstance(v, (dict, list, tuple)):
        text = json.dumps(v, sort_keys=True)
    else:
        text = str(v)
    return text[:PARAM_CHARS]


def strategy_metrics(result: StrategyResult) -> dict[str, float]:
    """A stored strategy result as MLflow metrics: each metric's mean, `_low`, `_high` and `_n`,
    every numeric cost (`cost.<key>`), retention and the judge's cost (`judge_cost.<key>`)."""
    out: dict[str, float] = {}
    for name, iv in result.metrics.items():
        for suffix, value in (("", iv.mean), ("_low", iv.low), ("_high", iv.high), ("_n", iv.n)):
            if _number(value):
                out[name + suffix] = float(value)
    for key, value in result.cost.to_dict().items():
        if _number(value):
            out[f"cost.{key}"] = float(value)
    retention = result.extras.retention
    if retention is not None and _number(retention.mean):
        out["retention"] = float(retention.mean)
    if retention is not None and _number(retention.delta):
        out["retention_delta"] = float(retention.delta)
    judge = result.extras.judge.to_dict() if result.extras.judge is not None else {}
    for key, value in judge.items():
        if _number(value):
            out[f"judge_cost.{key}"] = float(value)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v  # NaN != NaN


def log_run(
    store: Any,
    run_id: str,
    *,
    tracker: str = "mlflow",
    uri: str | None = None,
    home: str | Path | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> TrackingResult:
    """Log stored run `run_id` to `tracker`; never raises (problems become warnings)."""
    resolved = ""
    try:
        if tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {tracker!r}; known: {', '.join(TRACKERS)}")
        resolved = resolve_uri(uri, home)
        return _log_mlflow(store, run_id, resolved, experiment)
    except ImportError:
        warning = f"MLflow is not installed ({INSTALL_HINT})"
    except Exception as e:  # tracking is a side channel: the run itself is already stored
        warning = f"{type(e).__name__}: {e}"
    return TrackingResult(False, tracker, resolved, experiment, warnings=[warning])


def _experiment_id(client: Any, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # a local folder: artifacts beside the database
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    # Classic runs with metrics, not GenAI traces: MLflow's UI opens on the runs table.
    tags = {"mlflow.experimentKind": "custom_model_development"}
    return client.create_experiment(name, artifact_location=location, tags=tags)


def _log_mlflow(store: Any, run_id: str, uri: str, experiment: str) -> TrackingResult:
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    run = store.get_run(run_id)
    client = MlflowClient(tracking_uri=uri)
    exp_id = _experiment_id(client, uri, experiment)
    result = TrackingResult(True, "mlflow", uri, experiment)
    start = int(run.created_at * 1000)
    end = int((run.finished_at or time.time()) * 1000)
    status = "FINISHED" if run.status == "done" else "FAILED"
    meta = run.meta
    parent = client.create_run(
        exp_id, start_time=start, run_name=run.name or run.id, tags={"adaptlab.run_id": run.id}
    )
    result.parent_id = parent.info.run_id
    try:
        run_tags = {
            "adaptlab.status": run.status,
            "adaptlab.fingerprint": run.fingerprint or "",
            "adaptlab.device": meta.device,
            "adaptlab.git": meta.git,
        }
        for pkg, version in meta.versions.items():
            run_tags[f"version.{pkg}"] = version
        if run.error:
            run_tags["adaptlab.error"] = run.error[:PARAM_CHARS]
        _log_batches(client, result.parent_id, flatten(run.config), {}, run_tags, end)
        decision = _decision_metrics(store, run_id)
        for r in run.results:
            child = client.create_run(
                exp_id,
                start_time=start,
                run_name=r.strategy,
                tags={"mlflow.parentRunId": result.parent_id, "adaptlab.run_id": run.id},
            )
            result.strategy_ids[r.strategy] = child.info.run_id
            _log_strategy(client, child.info.run_id, r, end, decision.get(r.strategy))
        _log_artifacts(client, store, run_id, result)
    finally:
        client.set_terminated(result.parent_id, status, end)
    return result


def _decision_metrics(store: Any, run_id: str) -> dict[str, dict[str, float]]:
    """Per strategy the decision's figures (eval.views.verdict.export); none for a run
    without finished strategies."""
    view = RunView.load(store, run_id)
    return decision_metrics(view) if view.main else {}


def _log_strategy(
    client: Any, mlflow_id: str, r: Any, end: int, decision: dict[str, float] | None = None
) -> None:
    """One strategy's child run: its settings and extras as params, its metrics (with the
    decision's figures), its status."""
    tags = {"adaptlab.strategy": r.strategy, "adaptlab.status": r.status}
    if r.error:
        tags["adaptlab.error"] = r.error[:PARAM_CHARS]
    params = flatten(r.config)
    params.update(
        {
            f"extras.{k}": _text(v)
            for k, v in r.extras.to_dict().items()
            if isinstance(v, (str, int, float))
        }
    )
    metrics = strategy_metrics(r) | (decision or {})
    _log_batches(client, mlflow_id, params, metrics, tags, end)
    client.set_terminated(mlflow_id, "FINISHED" if r.status == "done" else "FAILED", end)


def _log_batches(
    client: Any,
    mlflow_id: str,
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict,
    end: int,
) -> None:
    """Params, metrics and tags in batches no larger than MLflow accepts in one call."""
    from mlflow.entities import Metric, Param, RunTag

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), BATCH):
        client.log_batch(mlflow_id, params=items[i : i + BATCH])
    ms = [Metric(k, v, end, 0) for k, v in metrics.items()]
    for i in range(0, len(ms), 1000):
        client.log_batch(mlflow_id, metrics=ms[i : i + 1000])
    client.log_batch(mlflow_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def _log_artifacts(client: Any, store: Any, run_id: str, result: TrackingResult) -> None:
    """The HTML report and the answers CSV; a missing one is a warning, not a failure."""
    makers = {
        "report.html": lambda: html_report(store, run_id),
        "answers.csv": lambda: store.export_csv(run_id),
        "decision.json": lambda: _decision_json(store, run_id),
    }
    with tempfile.TemporaryDirectory(prefix="adaptlab-track-") as tmp:
        for name, make in makers.items():
            try:
                path = Path(tmp) / name
                path.write_bytes(make().encode("utf-8"))  # as exported: CSV keeps its CRLF
                client.log_artifact(result.parent_id, str(path))
                result.artifacts.append(name)
            except Exception as e:  # the metrics are logged already; say what is missing
                result.warnings.append(f"{name} not logged: {type(e).__name__}: {e}")


def _decision_json(store: Any, run_id: str) -> str:
    """The chance of being best, the corrected comparisons, the cost per right answer and the
    stability across re-splits, as `--json` writes them."""
    import json

    return json.dumps(decision_data(RunView.load(store, run_id)), indent=2)


def run_and_track(config: RunConfig, **kwargs: Any) -> str:
    """`eval.run.harness.run_comparison(config, **kwargs)`, then the finished (or cancelled)
    run logged to the configured tracker: what the CLI and the app's worker run. Returns the
    run id."""

    store = kwargs.get("store") or RunStore(config.store_path)
    emit = kwargs.get("progress") or (lambda event: None)
    run_id = run_comparison(config, **{**kwargs, "store": store})
    track_run(config, store, run_id, emit)
    return run_id


def track_run(config: RunConfig, store: Any, run_id: str, emit: ProgressFn) -> None:
    """Log the stored run to `config.tracking`'s tracker (nothing when none is set); a failure
    is a warning stored with the run, never an error."""
    if not config.tracking.tracker:
        return
    emit(ProgressEvent("track", tracker=config.tracking.tracker))
    got = log_run(
        store,
        run_id,
        tracker=config.tracking.tracker,
        uri=config.tracking.uri or None,
        home=store.path.parent,
        experiment=config.tracking.experiment,
    )
    store.update_run(run_id, tracking=got.to_dict())
    emit(ProgressEvent("tracked", ok=got.ok, message=got.message()))
