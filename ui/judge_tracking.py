"""The judge and experiment tracking on the pages: Run page settings, Compare page section."""

from __future__ import annotations

import streamlit as st

from eval.judge import ENGINES, JudgeConfig
from eval.judge_views import (
    agreement_frame,
    disagreement_frame,
    judge_cost_frame,
    judge_summary,
)
from eval.tracking import TrackingConfig, local_uri


def judge_and_tracking_settings(home) -> tuple[bool, dict, dict]:
    """Run page widgets: (score the judge?, judge section, tracking section) for RunConfig."""
    helps, track_helps = JudgeConfig.help(), TrackingConfig.help()
    defaults = JudgeConfig()
    use_judge = st.checkbox(
        "Score with a judge model",
        value=False,
        help="Adds the 'judge' metric: a model grades each answer against the gold answers "
        "and says why. Its cost is counted apart from the strategies'.",
        key="judge_on",
    )
    judge: dict = {}
    if use_judge:
        c1, c2 = st.columns(2)
        judge["model"] = c1.text_input(
            "Judge model (empty = the run's generator)", help=helps["model"], key="judge_model"
        )
        judge["engine"] = c2.selectbox(
            "Judge engine",
            list(ENGINES),
            format_func=lambda e: e or "like the run",
            help=helps["engine"],
            key="judge_engine",
        )
        if judge["engine"] == "openai":
            c3, c4 = st.columns(2)
            judge["base_url"] = c3.text_input(
                "Judge base URL", help=helps["base_url"], key="judge_base_url"
            )
            judge["api_key_env"] = c4.text_input(
                "API key variable name", help=helps["api_key_env"], key="judge_key_env"
            )
        judge["max_tokens"] = int(
            st.number_input(
                "Judge max tokens",
                min_value=1,
                max_value=1024,
                value=defaults.max_tokens,
                help=helps["max_tokens"],
                key="judge_max_tokens",
            )
        )
        judge["prompt"] = st.text_area(
            "Judge prompt", value=defaults.prompt, help=helps["prompt"], key="judge_prompt"
        )
    tracking: dict = {}
    if st.toggle(
        "Log the run to MLflow",
        value=False,
        help="After the run is stored: parameters, one nested run per strategy with its "
        "metrics and costs, the HTML report and the answers CSV. A failure to log never "
        "fails the run.",
        key="track_on",
    ):
        tracking["tracker"] = "mlflow"
        tracking["uri"] = st.text_input(
            "Tracking URI",
            value="",
            placeholder=local_uri(home / "mlruns"),
            help=track_helps["uri"] + " Empty here: the app's own mlruns/ folder.",
            key="track_uri",
        )
        if not tracking["uri"]:
            tracking["uri"] = local_uri(home / "mlruns")
    return use_judge, judge, tracking


def judge_section(view) -> None:
    """Compare page: the judge against F1 (agreement, kappa, disagreements) and its cost."""
    from eval.judge import agreement_by_strategy

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
    got = run.meta.get("tracking")
    if not got:
        return
    if got.get("ok"):
        st.caption(
            f"Logged to {got['tracker']}: run {got['parent_id']} at {got['uri']} "
            f"(experiment {got['experiment']!r})."
        )
    else:
        st.warning(f"Not logged to {got['tracker']}: {'; '.join(got.get('warnings', []))}")
