"""Tuning as shown: per arm chosen vs default settings and scores, its trials, verdict notes,
and the tuned settings as a YAML config that `python -m eval run --config` reruns."""

from __future__ import annotations

from typing import Any

import pandas as pd

from eval.config import RunConfig
from eval.metrics import metric_label
from eval.records import TuningRecord
from eval.stats.intervals import Interval
from eval.store.runs import Run


def tuning_records(run: Run) -> dict[str, TuningRecord]:
    """Each finished main arm's tuning record, by strategy label (arms without one left out)."""
    out = {}
    for r in run.results:
        if r.status == "done" and not r.extras.is_variant and r.extras.tuning is not None:
            out[r.strategy] = r.extras.tuning
    return out


def budget_of(run: Run) -> str:
    """The run's tuning budget ("off" for runs stored before tuning existed)."""
    if "tuning" not in run.config:  # stored before tuning existed: its arms were untuned
        return "off"
    return RunConfig.from_stored(run.config).tuning.budget


def _interval(score: Interval | None) -> str:
    if score is None or score.mean is None:
        return "—"
    return f"{score.mean:.3f} [{score.low:.3f}, {score.high:.3f}]"


def _answered(score: Interval | None) -> int | None:
    return None if score is None or score.mean is None else score.n


def _setting(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def tuning_table(run: Run) -> pd.DataFrame:
    """One row per tuned arm: status, trials (pruned, failed), seconds, which validation pairs and
    how many, how many of them the default answered, the validation score (the task's tuning metric)
    of the default and of the best setting (95% intervals), the best's paired gain on the pairs that
    chose it and, cross-fitted, on pairs that did not, the decision (replaced or kept, and why), the
    settings that changed and the trial whose prepared artifacts the arm answered with."""
    rows = []
    for label, rec in tuning_records(run).items():
        changed = "; ".join(
            f"{k}: {_setting(rec.default.get(k))} → {_setting(v)}" for k, v in rec.changed.items()
        )
        rows.append(
            {
                "strategy": label,
                "status": rec.status,
                "trials": rec.n_trials,
                "pruned": rec.n_pruned,
                "failed": rec.n_failed,
                "tuning s": round(rec.seconds, 1),
                "validation pairs": rec.val_pairs,
                "validated on": rec.validation or "—",
                # A default nothing outran answered only as far as its rivals went: its score
                # rests on fewer pairs than the arm validated on.
                "default answered": _answered(rec.default_score),
                f"default {metric_label(rec.metric)}": _interval(rec.default_score),
                f"best {metric_label(rec.metric)}": _interval(rec.tuned_score),
                "gain (choosing pairs)": _interval(rec.gain),
                "gain (other pairs)": _interval(rec.crossfit_gain),
                "decision": decision(rec),
                "changed settings": changed or "none",
                # A trained arm answers with its chosen trial's adapter, not a second training.
                "prepared by": "—" if rec.reused_trial is None else f"trial {rec.reused_trial}",
            }
        )
    return pd.DataFrame(rows)


def decision(rec: TuningRecord) -> str:
    """Whether the default was replaced or kept, and why, in words."""
    if rec.note:
        return rec.note
    if rec.status != "tuned":
        return rec.status
    return "replaced" if rec.changed else "default kept"


def trials_frame(run: Run) -> pd.DataFrame:
    """Every trial of every arm: strategy, trial number, state, validation score, validation
    pairs answered (raced-out trials answer a few), seconds, and a failed trial's error."""
    rows = [
        {
            "strategy": label,
            "trial": t.number,
            "state": "default" if t.default and t.state == "complete" else t.state,
            "score": t.value,
            "seconds": t.seconds,
            "steps": t.steps,
            "answered": t.answered,
            "settings": "; ".join(f"{k}={_setting(v)}" for k, v in t.values.items()),
            "error": t.error,
        }
        for label, rec in tuning_records(run).items()
        for t in rec.trials
    ]
    cols = ["strategy", "trial", "state", "score", "answered", "seconds", "steps", "settings"]
    cols += ["error"]
    return pd.DataFrame(rows, columns=cols)


def trials_chart(frame: pd.DataFrame):
    """Altair: each arm's trials in order (colour: arm, shape: default / complete / pruned /
    fail); trials that were not scored (pruned, failed) sit at 0."""
    import altair as alt

    data = frame.assign(score=frame["score"].fillna(0.0))
    return (
        alt.Chart(data, title="Tuning trials: validation score")
        .mark_point(filled=True, size=80)
        .encode(
            x=alt.X("trial:Q", title="Trial"),
            y=alt.Y("score:Q", title="Validation score (not scored: 0)"),
            color=alt.Color("strategy:N", title="Strategy"),
            shape=alt.Shape("state:N", title="Trial"),
            tooltip=["strategy", "trial", "state", "score", "answered", "seconds", "settings"],
        )
        .properties(height=260)
    )


def tuning_notes(run: Run) -> list[str]:
    """What the verdict says about tuning: arms not tuned, and gains within noise."""
    if budget_of(run) == "off":
        return []
    records = tuning_records(run)
    notes = []
    for r in run.results:
        if r.status != "done" or r.extras.is_variant:
            continue
        rec = records.get(r.strategy)
        if rec is None or rec.status != "tuned":
            why = f" ({rec.note})" if rec is not None and rec.note else ""
            notes.append(f"{r.strategy} was not tuned{why}: it ran with its default settings.")
        elif rec.within_noise and rec.changed:
            gain = rec.crossfit_gain or rec.gain
            notes.append(
                f"Tuning {r.strategy} gained {metric_label(rec.metric)} {_interval(gain)} on the "
                "validation pairs: within noise, so its tuned settings may be no better."
            )
    return notes


def tuned_config_yaml(run: Run) -> str:
    """The run's config with every main arm's measured (tuned) settings written in and tuning
    off: `python -m eval run --config` reruns the tuned arms without searching again."""
    data = RunConfig.from_dict(run.config).to_dict()
    for r in run.results:
        if r.status == "done" and not r.extras.is_variant:
            data["strategy_configs"][r.strategy] = r.config
    data["tuning"]["budget"] = "off"
    body = RunConfig.from_dict(data).to_yaml()
    return (
        f"# Tuned settings of AdaptLab run {run.id}; rerun with python -m eval run --config\n{body}"
    )
