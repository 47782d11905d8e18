"""The verdict's run-level records through the harness (tiny model): gold passages, the oracle
reading (stored once, rescored without generating, switchable), and the diagnostics."""

from eval.events import ProgressEvent
from eval.run.harness import run_comparison
from eval.run.scoring import rescore
from eval.store.runs import RunStore
from eval.views import RunView
from eval.views.verdict.diagnostics import diagnose
from tests.test_harness import make_config


def test_oracle_and_gold_passages_are_stored_and_rescored(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "rag"],
        metrics=["exact_match"],
        retention_questions=0,
    )
    events = []
    run_id = run_comparison(cfg, progress=events.append)
    store = RunStore(cfg.store_path)
    run = store.get_run(run_id)
    test_ids = run.meta.split.test_ids
    assert set(run.meta.gold_passages) == set(test_ids)
    oracle = run.meta.oracle
    assert oracle["n"] == 3 and set(oracle["answers"]) == set(test_ids)
    assert oracle["summary"]["exact_match"]["n"] == 3
    assert oracle["cost"]["wall_s"] > 0 and "contended" in oracle["cost"]
    assert ProgressEvent("oracle") in events
    assert ProgressEvent("oracle", done=3, total=3) in events  # counted, for the progress bar
    # Strategies' costs do not include the oracle: it is a run-level record.
    assert all("oracle" not in r.cost.to_dict() for r in run.results)

    rescore(store, run_id, ["f1"])
    again = store.get_run(run_id).meta.oracle
    assert again["answers"] == oracle["answers"]  # nothing generated again
    assert set(again["summary"]) == {"exact_match", "f1"}

    # CPU time beside wall time, throughput and the contention flag in every strategy's cost.
    for r in run.results:
        assert r.cost.cpu_mean_s > 0 and r.cost.answer_cpu_s > 0
        assert r.cost.output_tokens_per_s > 0 and isinstance(r.cost.contended, bool)
        assert r.prepare.cpu["wall_s"] >= 0
    answers = store.get_answers(run_id)
    assert all(a.answer.cost.cpu_s > 0 for a in answers)

    d = diagnose(RunView.load(store, run_id))
    assert [c.strategy for c in d.cells] == ["rag"] and d.cells[0].n == 3
    assert d.oracle.n == 3 and d.power[0].n == 3


def test_oracle_switch(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt"],
        metrics=["exact_match"],
        retention_questions=0,
        verdict={"oracle": False},
    )
    run = RunStore(cfg.store_path).get_run(run_comparison(cfg))
    assert run.meta.oracle is None and run.meta.gold_passages


def test_no_oracle_reading_when_no_strategy_retrieves(mini_corpus, tiny_models, tmp_path):
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt"],  # switched on, but nothing retrieves: nothing to bound
        metrics=["exact_match"],
        retention_questions=0,
    )
    events = []
    run = RunStore(cfg.store_path).get_run(run_comparison(cfg, progress=events.append))
    assert run.meta.oracle is None and run.meta.gold_passages
    assert not [e for e in events if e.stage == "oracle"]


def test_cli_prints_and_writes_the_diagnostics(mini_corpus, tiny_models, tmp_path, capsys):
    import json

    from cli.main import main

    corpus, qa = mini_corpus
    out = tmp_path / "summary.json"
    args = ["run", "--corpus", str(corpus), "--qa", str(qa), "--generator", "tiny"]
    args += ["--strategies", "system_prompt,rag", "--store", str(tmp_path / "runs.sqlite")]
    args += ["--json", str(out), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Verdict diagnostics" in text and "Oracle reading (gold passage" in text
    assert "Why answers were wrong" in text and "Detectable gap (MDD)" in text
    assert "CPU s/q" in text and "Contended" in text
    summary = json.loads(out.read_text())
    verdict = summary["verdict"]
    assert verdict["attribution"][0]["strategy"] == "rag"
    assert verdict["power"][0]["mdd"] is not None and verdict["oracle"]["n"] >= 1
