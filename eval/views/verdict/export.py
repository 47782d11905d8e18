"""The decision's figures (chance of being best, corrected comparisons, cost per right answer,
stability across re-splits) as plain data for `--json` and as per-strategy numbers for MLflow,
with the volume and horizon the Compare page opens on."""

from __future__ import annotations

import math
from typing import Any

from eval.views.run_view import RunView
from eval.views.task_verdict import fine_tuning_bought
from eval.views.verdict.confidence import decision_figures
from eval.views.verdict.stability import stability_figures

DEFAULT_VOLUME, DEFAULT_MONTHS = 10_000, 12  # the Compare page's starting values


def decision_data(
    view: RunView, monthly_volume: int = DEFAULT_VOLUME, months: int = DEFAULT_MONTHS
) -> dict[str, Any]:
    """{"decision": decision_figures with "fine_tuning_bought" (format or style: what training
    bought on behaviour, in words), "stability": stability_figures or None}."""
    figures = decision_figures(view, monthly_volume, months)
    figures["fine_tuning_bought"] = fine_tuning_bought(view)
    return {"decision": figures, "stability": stability_figures(view)}


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def decision_metrics(
    view: RunView, monthly_volume: int = DEFAULT_VOLUME, months: int = DEFAULT_MONTHS
) -> dict[str, dict[str, float]]:
    """Strategy -> MLflow metrics: `prob_best.<m>`, `p_value.<m>` / `p_holm.<m>` / `d_z.<m>`
    (against the best), `cost_per_right`, `seconds_per_right` (finite only: a strategy with
    nothing right logs `right_answers` 0 and no cost per right answer), `stability.wins.<m>`,
    `stability.sd.<m>`."""
    data = decision_data(view, monthly_volume, months)
    out: dict[str, dict[str, float]] = {r.strategy: {} for r in view.main}

    def put(strategy: str, key: str, value: Any) -> None:
        if strategy in out and _num(value):
            out[strategy][key] = float(value)

    figures = data["decision"]
    for m, chances in figures["prob_best"].items():
        for s, p in chances.items():
            put(s, f"prob_best.{m}", p)
    for m, rows in figures["comparisons"].items():
        for row in rows:
            for key in ("p_value", "p_holm", "d_z"):
                put(row["strategy"], f"{key}.{m}", row[key])
    for s, row in figures["cost_per_right"]["strategies"].items():
        put(s, "cost_per_right", row["money"])
        put(s, "seconds_per_right", row["seconds"])
        put(s, "right_answers", row["right"])
    for m, st in ((data["stability"] or {}).get("metrics") or {}).items():
        for s, wins in st["wins"].items():
            put(s, f"stability.wins.{m}", wins)
            put(s, f"stability.sd.{m}", st["spread"][s]["sd"])
    return out
