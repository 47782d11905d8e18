"""The Compare page's Tuning tab: each arm's chosen vs default settings, and its trials."""

from __future__ import annotations

import streamlit as st

from eval.store.runs import Run
from eval.views.tuning import (
    budget_of,
    trials_chart,
    trials_frame,
    tuned_config_yaml,
    tuning_notes,
    tuning_table,
)
from ui.common import md, prose


def show_tuning(run: Run) -> None:
    """Draw the tab: a note when nothing was tuned, else the table, notes, chart and export."""
    table = tuning_table(run)
    if table.empty:
        st.info(
            f"Tuning budget **{md(budget_of(run))}**: every strategy ran with its default "
            "settings. Set Budget and prices › Tuning budget on the Run page to search them first."
        )
        return
    st.caption(
        "Scored on training pairs, never the test split: every one of them for a strategy "
        "that learns nothing from them (few-shot answers each without its near-duplicates "
        "among the shots), a held-out share drawn by group for one that trains. Settings "
        "clearly behind the best so far are stopped after a few batches; a tuned setting "
        "replaces the default only as the run's rule says (evidence: a paired gain whose 95% "
        "lower bound is above 0, also on pairs that did not choose it). Tuning time is part "
        "of each strategy's preparation cost."
    )
    st.dataframe(table, hide_index=True, key="tuning_table")
    for label, why in zip(table["strategy"], table["decision"], strict=True):
        st.markdown(f"- **{md(label)}**: {md(why)}")
    for note in tuning_notes(run):
        st.warning(prose(note))
    st.altair_chart(trials_chart(trials_frame(run)), width="stretch")
    st.download_button(
        "Tuned settings (YAML for --config)",
        tuned_config_yaml(run),
        file_name=f"tuned-{run.id}.yaml",
        mime="application/x-yaml",
        key="tuned_yaml",
    )
