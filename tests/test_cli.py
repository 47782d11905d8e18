"""The command line, through `cli.main.main` (what `python -m eval` calls)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_run_show_list_export(mini_corpus, tmp_path, capsys):
    corpus, qa = mini_corpus
    store = tmp_path / "runs.sqlite"
    summary = tmp_path / "summary.json"
    rc = main(
        [
            "run",
            "--corpus",
            str(corpus),
            "--qa",
            str(qa),
            "--strategies",
            "fake",
            "--generator",
            "tiny",
            "--store",
            str(store),
            "--json",
            str(summary),
            "--quiet",
            "--set",
            "fake.answer_words=2",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "fake" in out and "F1" in out and "p50 s/q" in out and "Wall time" in out
    data = json.loads(summary.read_text())
    run_id = data["run_id"]
    assert data["strategies"]["fake"]["status"] == "done"
    assert data["strategies"]["fake"]["metrics"]["f1"]["n"] == 2

    assert main(["show", run_id, "--store", str(store)]) == 0
    assert run_id in capsys.readouterr().out
    assert main(["list", "--store", str(store)]) == 0
    assert run_id in capsys.readouterr().out
    csv_path = tmp_path / "run.csv"
    assert (
        main(["export", run_id, "--store", str(store), "--format", "csv", "-o", str(csv_path)]) == 0
    )
    assert csv_path.read_text().startswith("strategy,qid,question,answer")


def test_config_file_and_flags(mini_corpus, tmp_path, capsys):
    corpus, qa = mini_corpus
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"corpus: {corpus}\nqa: {qa}\nstrategies: [fake]\nstore_path: {tmp_path / 'r.sqlite'}\n"
        "models: {generator: tiny}\nsplit: {test_fraction: 0.5}\n"
    )
    assert main(["run", "--config", str(cfg), "--quiet", "--n-test", "3"]) == 0
    assert "test 3" in capsys.readouterr().out


def test_errors_are_messages(tmp_path, capsys):
    assert main(["show", "nope", "--store", str(tmp_path / "x.sqlite")]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    assert main(["run", "--strategies", "magic", "--store", str(tmp_path / "x.sqlite")]) == 2
    assert "unknown strategy 'magic'" in capsys.readouterr().err
    assert main(["run", "--set", "rag.top_k=0", "--store", str(tmp_path / "x.sqlite")]) == 2
    assert "top_k" in capsys.readouterr().err


def test_python_dash_m_eval_help():
    out = subprocess.run(
        [sys.executable, "-m", "eval", "run", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0 and "--strategies" in out.stdout


def test_training_keeps_one_bar_across_its_validation_losses(capsys):
    from cli.main import _Progress
    from eval.events import ProgressEvent

    progress = _Progress(quiet=False)
    for step in range(1, 7):
        progress(ProgressEvent(stage="train", strategy="lora", step=step, steps=6, loss=2.0 / step))
        if step % 3 == 0:  # a validation loss between steps, as the LoRA loop reports it
            progress(
                ProgressEvent.from_dict(
                    {"stage": "validate", "step": step, "steps": 6, "eval_loss": 1.25},
                    strategy="lora",
                )
            )
    progress(ProgressEvent(stage="score", strategy="lora"))
    err = capsys.readouterr().err
    # One bar for the whole training (a bar made anew after each validation restarted its clock
    # at the current step), carrying the last validation loss beside the training loss.
    assert err.count("0/6") == 1 and "6/6" in err and "val_loss=1.250" in err
    assert "lora: score..." in err


def test_a_set_for_a_strategy_not_in_the_run_is_named():
    from cli.args import parser as _parser
    from cli.main import build_config, unread_settings

    sets = ["rag.retriever=dense", "lora+rag.rag.top_k=2", "tuning.budget=off"]
    argv = ["run", "--strategies", "lora+rag,system_prompt"]
    config = build_config(_parser().parse_args([*argv, *(a for s in sets for a in ("--set", s))]))
    # rag is not in the run: lora+rag reads its own retrieval settings, and says where.
    assert unread_settings(config, sets) == [
        "--set rag.retriever=dense: rag is not among this run's strategies (lora+rag, "
        "system_prompt), so nothing reads it; lora+rag takes it as lora+rag.rag.retriever"
    ]
    config = build_config(_parser().parse_args(["run", "--strategies", "rag", "--set", sets[0]]))
    assert unread_settings(config, sets[:1]) == []
