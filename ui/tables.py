"""Strategy tables on a page: the view's column specs (label, unit, format, help) become
`st.column_config`, money cells become text in the run's currency, the strategy column is pinned,
detail columns wait behind the table's column menu."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from eval.views.display import StrategyTable
from eval.views.format import display_name


def show_table(
    table: StrategyTable, key: str, show: tuple[str, ...] = (), hide: tuple[str, ...] = ()
) -> None:
    """Draw `table` with labelled, formatted columns; the first (the strategy) stays pinned.
    Detail columns wait in the column menu, as do those whose keys are in `hide`, except those
    whose keys are in `show`."""
    frame = pd.DataFrame(index=table.frame.index)
    config = {}
    for i, c in enumerate(table.columns):
        values = table.frame[c.key]
        missing = (
            pd.to_numeric(values, errors="coerce").isna().any() if c.kind == "number" else False
        )
        if c.kind == "money" or missing:  # text cells: '—' rather than an empty 'None'
            frame[c.key] = [c.text(v, table.currency) for v in values]
            config[c.key] = st.column_config.TextColumn(c.label, help=c.help or None)
        elif c.kind == "number":
            frame[c.key] = pd.to_numeric(values, errors="coerce")
            config[c.key] = st.column_config.NumberColumn(
                c.label, format=c.fmt, help=c.help or None
            )
        else:
            frame[c.key] = values
            config[c.key] = st.column_config.TextColumn(c.label, help=c.help or None, pinned=i == 0)
    # Details stay out of the first view so the table fits the page; the toolbar's column menu
    # (Streamlit lists every configured column there) brings them in.
    shown = [c.key for c in table.columns if c.key in show or not (c.more or c.key in hide)]
    st.dataframe(frame, hide_index=True, column_config=config, column_order=shown, key=key)
    more = [c.label for c in table.columns if c.key not in shown]
    if more:
        st.caption(
            "More columns under the table's “Show/hide columns” button: " + ", ".join(more) + "."
        )
    for note in table.notes:
        st.caption(note)


def show_frame(df: pd.DataFrame, columns: dict[str, tuple[str, str]], key: str) -> None:
    """Draw the `columns` of a view's frame (key -> (label, printf format or "" for text)),
    strategies by their display names, missing numbers as '—' instead of 'None'."""

    shown = pd.DataFrame(index=df.index)
    for col, (label, fmt) in columns.items():
        if col not in df:
            continue
        values = df[col]
        if col == "strategy":
            shown[label] = [display_name(v) for v in values]
        elif fmt:
            shown[label] = ["—" if pd.isna(v) else fmt % v for v in values]
        else:
            shown[label] = ["—" if v is None else str(v) for v in values]
    config = {}
    if "strategy" in columns:
        config[columns["strategy"][0]] = st.column_config.TextColumn(pinned=True)
    st.dataframe(shown, hide_index=True, key=key, column_config=config)
