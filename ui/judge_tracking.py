"""The judge, tracking and engine checks on the pages: Run page settings and the adapter-serving
check, Compare page sections."""

from __future__ import annotations

import streamlit as st

from core.config import ModelConfig
from eval.config import TrackingConfig
from eval.judge import JudgeConfig
from eval.metrics import default_metrics
from eval.stats.agreement import agreement_by_strategy
from eval.views.judge import (
    agreement_frame,
    disagreement_frame,
    judge_cost_frame,
    judge_summary,
)
from service.tracking import local_uri
from strategies import unservable_strategies
from ui.common import config_form, hide_paths, md


def judge_and_tracking_settings(run_settings: dict, home) -> dict:
    """Run page widgets; returns the RunConfig keys they set (metrics, judge, tracking)."""

    out: dict = {}
    if st.checkbox(
        "Score with a judge model",
        value=False,
        help="Adds the 'judge' metric: a model grades each answer against the gold answers "
        "and says why. Its cost is counted apart from the strategies'.",
        key="judge_on",
    ):
        out["metrics"] = [*(run_settings.get("metrics") or default_metrics()), "judge"]
        out["judge"] = config_form(JudgeConfig(), "judge")
    if st.toggle(
        "Log the run to MLflow",
        value=False,
        help="After the run is stored: parameters, one nested run per strategy with its "
        "metrics and costs, the HTML report and the answers CSV. A failure to log never "
        "fails the run.",
        key="track_on",
    ):
        uri = st.text_input(
            "Tracking URI",
            value="",
            placeholder="empty: the app's own mlruns/ folder",  # no server path on the page
            help=TrackingConfig.help()["uri"] + " Empty here: the app's own mlruns/ folder.",
            key="track_uri",
        )
        out["tracking"] = {**run_settings.get("tracking", {}), "tracker": "mlflow"}
        out["tracking"]["uri"] = uri or local_uri(home / "mlruns")
    return out


@st.cache_data(ttl=30, show_spinner="Asking the server whether it serves adapters...")
def unservable(models_json: str, strategies: tuple[str, ...]) -> str | None:
    """Why the chosen trained strategies cannot run on the configured engine, or None; cached
    briefly, since asking a server on every rerun of the page would be slow."""
    import json

    return unservable_strategies(ModelConfig.from_dict(json.loads(models_json)), list(strategies))


def judge_section(view) -> None:
    """Compare page: the judge against F1 (agreement, kappa, disagreements) and its cost."""

    agreements = agreement_by_strategy(view.answers)
    if not agreements:
        return
    st.subheader("Judge and F1")
    st.caption(
        "Where the judge model and token F1 (right at ≥ 0.5) call answers differently. "
        "Cohen's kappa is agreement beyond chance (1 = always agree, 0 = chance)."
    )
    st.dataframe(agreement_frame(agreements), hide_index=True, key="judge_agreement")
    disagreements = agreements["all"].disagreements
    with st.expander(f"{len(disagreements)} answers the judge and F1 grade differently"):
        st.dataframe(disagreement_frame(agreements["all"]), hide_index=True, key="judge_dis")
    st.caption(judge_summary(view.run))
    st.dataframe(judge_cost_frame(view.run), hide_index=True, key="judge_cost")


def tracking_note(run) -> None:
    """Compare page: where the run was logged, or why it was not."""
    got = run.meta.tracking
    if not got:
        return
    uri = str(got.get("uri") or "")
    where = uri if uri.startswith(("http://", "https://")) else "the app's mlruns/ folder"
    if got.get("ok"):
        st.caption(
            md(
                f"Logged to {got['tracker']}: run {got['parent_id']} at {where} "
                f"(experiment {got['experiment']!r})."
            )
        )
    else:
        why = hide_paths("; ".join(got.get("warnings", [])))
        st.warning(md(f"Not logged to {got['tracker']}: {why}"))
