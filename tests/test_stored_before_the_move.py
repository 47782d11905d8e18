"""A run stored by the code before the service floor and the stats/store packages (commit 042e2cc,
fake strategies, one re-split, tests/data/run_before_the_move.sqlite) opens in every view, the
CLI's and the app's, with today's code: the move changed where code lives, not what is stored."""

import json
import shutil
from pathlib import Path

import pytest

from cli.main import main, summary_with_diagnostics
from eval import views
from eval.metrics import DEFAULT_METRIC
from eval.store.runs import RunStore
from eval.views.display import cost_table, quality_table
from eval.views.html_report import cli_command, html_report, run_config_yaml
from eval.views.tables import render_run, run_summary
from eval.views.tuning import budget_of, tuning_records
from eval.views.verdict.confidence import render_decision
from eval.views.verdict.decision import decide
from eval.views.verdict.diagnostics import diagnose
from eval.views.verdict.export import decision_data
from eval.views.verdict.stability import stability
from service.estimate.check import stored_estimate

FIXTURE = Path(__file__).parent / "data" / "run_before_the_move.sqlite"


@pytest.fixture
def old_store(tmp_path):
    path = tmp_path / "runs.sqlite"
    shutil.copy(FIXTURE, path)  # opening may upgrade the schema in place: never the fixture
    store = RunStore(path)
    (run_row,) = store.list_runs()
    return store, run_row.id


def test_the_old_run_reads_into_todays_typed_records(old_store):
    store, run_id = old_store
    run = store.get_run(run_id)
    assert run.status == "done" and [r.strategy for r in run.results] == ["fake", "fake2"]
    assert run.meta.split.test == 12 and len(run.meta.split.test_ids) == 12
    assert run.meta.corpus.documents == 2 and run.meta.stability is not None
    (listed,) = store.list_runs()
    assert listed.strategies == listed.finished == ["fake", "fake2"] and listed.status == "done"
    view = views.RunView.load(store, run_id)
    assert view.settings.strategies == ["fake", "fake2"] and view.settings.n_test == 12
    assert view.currency() == "USD"


def test_the_old_run_opens_in_every_view(old_store):
    store, run_id = old_store
    view = views.RunView.load(store, run_id)
    run = view.run
    sbs = views.side_by_side(view)
    assert not quality_table(view, sbs).frame.empty
    assert not cost_table(view, 10_000, 12).frame.empty
    assert decide(view, monthly_volume=10_000).sentences()
    assert diagnose(view).cells or diagnose(view).headline
    assert "fake" in render_decision(view)
    assert stability(view, DEFAULT_METRIC) is not None
    assert json.dumps(decision_data(view))  # the --json and MLflow figures serialise
    assert tuning_records(run) == {} and budget_of(run) == "off"
    assert stored_estimate(run) is None
    assert "fake" in render_run(run)
    assert run_summary(run)["strategies"]
    report = html_report(store, run_id)
    assert "<html" in report and "fake" in report
    assert "strategies:" in run_config_yaml(run) and "run.yaml" in cli_command(run, "run.yaml")


def test_the_cli_shows_exports_and_compares_the_old_run(old_store, tmp_path, capsys):
    store, run_id = old_store
    assert main(["show", run_id, "--store", str(store.path)]) == 0
    assert "fake" in capsys.readouterr().out
    out = tmp_path / "run.json"
    assert main(["export", run_id, "--store", str(store.path), "-o", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert exported["meta"]["split"]["test"] == 12 and "other" not in exported["meta"]
    html = tmp_path / "report.html"
    assert main(["compare", run_id, "--store", str(store.path), "--html", str(html)]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert summary_with_diagnostics(store, run_id)["strategies"]
