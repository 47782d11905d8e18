"""Numbers and names for people: strategies by the names users know, money as money, cost
ratios in words, and `ColumnSpec`, how one shown column is labelled and formatted."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from strategies import get_strategy_class


def display_name(label: str) -> str:
    """What users call a result: the strategy class's `display_name` ("LoRA + RAG (RAFT)"), with
    the training share for learning-curve points ("LoRA fine-tune, 50% of the data")."""
    label, _, split = label.partition("#split")  # a re-run on a re-drawn split (stability)
    name, _, frac = label.partition("@")
    try:
        shown = get_strategy_class(name).display_name or name
    except KeyError:  # a run made with a strategy no longer registered
        shown = name
    shown = f"{shown}, re-split {split}" if split else shown
    return f"{shown}, {frac} of the data" if frac else shown


def money(value: float | None, currency: str = "USD") -> str:
    """'$12.34', '$0.46', '$0.0046' (two significant digits below a cent), '$0'; '—' for none.
    Other currencies follow the amount ('0.46 EUR')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        text = "0"
    elif abs(value) < 0.0001:  # a fraction of a hundredth of a cent says nothing more
        return "< $0.0001" if currency == "USD" else f"< 0.0001 {currency}"
    elif abs(value) >= 0.01:
        text = f"{value:,.2f}"
    else:
        text = f"{value:.{1 - math.floor(math.log10(abs(value)))}f}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def times(a: float, b: float) -> str:
    """How a cost `a` compares with `b` in words: 'a third of', 'half', '3.0 times', '12% of'."""
    if b <= 0 or a < 0:
        return "no comparable"
    r = a / b
    for value, words in ((1 / 4, "a quarter of"), (1 / 3, "a third of"), (1 / 2, "half")):
        if abs(r - value) < 0.015:
            return words
    if r < 1:
        return f"{r:.0%} of"
    return f"{r:.1f} times" if r < 10 else f"{r:.0f} times"


@dataclass(frozen=True)
class ColumnSpec:
    """One shown column: the frame's key, its label, the kind of value ("text", "number",
    "money") with a printf format for numbers, a help text, and whether it is a detail (`more`):
    the app leaves details out of the first view, behind the table's column menu, so the table
    fits a laptop screen; the HTML report and the CLI print every column."""

    key: str
    label: str
    kind: str = "number"
    fmt: str = "%.3f"
    help: str = ""
    more: bool = False

    def text(self, value: Any, currency: str = "USD") -> str:
        """The cell as text (the HTML report); '—' where there is no value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        if self.kind == "money":
            return money(float(value), currency)
        if self.kind == "number":
            return f"{int(value):,}" if self.fmt == "%d" else self.fmt % value
        return str(value)


def noun(n: Any, word: str, plural: str | None = None) -> str:
    """`word` as it goes with the count `n`: 'document' for 1, 'documents' otherwise (also for
    a count that is not a number, such as '?')."""
    one = not isinstance(n, bool) and isinstance(n, (int, float)) and n == 1
    return word if one else plural or f"{word}s"


def count(n: Any, word: str, plural: str | None = None) -> str:
    """'1 document', '3 documents', '1,200 chunks', '? documents'."""
    shown = f"{n:,}" if isinstance(n, (int, float)) and not isinstance(n, bool) else str(n)
    return f"{shown} {noun(n, word, plural)}"
