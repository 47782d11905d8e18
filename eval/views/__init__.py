"""Everything a page or an export reads from a stored run, as data: frames and small records.

Nothing here generates or rescores. Start with `RunView.load(store, run_id)` and pass the view
around, so the answers are read from SQLite once. Modules: `run_view` (the loaded run, shared
helpers), `significance`, `quality`, `knowledge`, `cost`, `training`, `narrative` (verdict and
recommendation), `charts` (Altair), `tables` (CLI text), `html_report` (the offline export),
`judge` (the judge against F1).
"""

from eval.metrics import DEFAULT_METRIC, metric_label
from eval.records import COST_AXES, COST_COLUMNS
from eval.stats.paired import PairedTest, paired_test
from eval.views.cost import (
    BreakEven,
    break_even,
    crossing,
    latency_frame,
    pareto_mask,
    quality_vs_cost,
)
from eval.views.format import money
from eval.views.knowledge import KnowledgeSlices, knowledge_slices, retention_vs_gain
from eval.views.quality import (
    SideBySide,
    all_wrong,
    disagreements,
    learning_curve,
    question_explorer,
    retrieval_recall,
    side_by_side,
)
from eval.views.run_view import (
    RunView,
    format_interval,
    has_role,
    higher_is_better,
    lead_metric,
    metric_names,
    run_lead_metric,
)
from eval.views.significance import compare_runs, compare_strategies
from eval.views.training import loss_curves, throughput, throughput_rows
from eval.views.verdict.narrative import Recommendation, recommend, verdict

__all__ = [
    "COST_AXES",
    "COST_COLUMNS",
    "DEFAULT_METRIC",
    "BreakEven",
    "KnowledgeSlices",
    "PairedTest",
    "Recommendation",
    "RunView",
    "SideBySide",
    "all_wrong",
    "break_even",
    "compare_runs",
    "compare_strategies",
    "crossing",
    "disagreements",
    "format_interval",
    "has_role",
    "higher_is_better",
    "knowledge_slices",
    "latency_frame",
    "learning_curve",
    "loss_curves",
    "metric_label",
    "lead_metric",
    "metric_names",
    "run_lead_metric",
    "money",
    "paired_test",
    "pareto_mask",
    "quality_vs_cost",
    "question_explorer",
    "recommend",
    "retention_vs_gain",
    "retrieval_recall",
    "side_by_side",
    "throughput",
    "throughput_rows",
    "verdict",
]
