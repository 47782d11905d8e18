"""Task kinds beyond factual Q/A: format (JSON Schema, pattern) and style (rules), and
consistency over paraphrase groups. Known answers for the scoring, refusals of bad files, and
every strategy on the tiny model for each kind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.config import SplitConfig
from core.qa import QAFormatError, load_qa, split_pairs
from core.tasks import (
    MATCH_TIMEOUT_S,
    MAX_PATTERN_CHARS,
    StyleRules,
    TaskFileError,
    TaskSpec,
    first_json_object,
    flesch_kincaid_grade,
    load_schema,
    load_style,
    load_task,
)
from core.types import QAPair
from eval.metrics import ScoringItem, default_metrics, score_items
from eval.run.groups import group_warnings, paraphrase_groups
from eval.stats.intervals import bootstrap_ci
from eval.store.runs import RunStore
from eval.task_metrics import field_scores
from tests.conftest import QA, SAMPLE

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "source": {"type": "string"}},
    "required": ["answer", "source"],
    "additionalProperties": False,
}
STYLE = """\
max_words: 8
forbidden: ["I think"]
citation: "\\\\(Source: \\\\w+\\\\)"
closing: "\\\\."
example: "{answer} (Source: {source})."
"""


def json_task() -> TaskSpec:
    return TaskSpec("format", schema=SCHEMA)


def item(prediction: str, gold: str, task: TaskSpec | None, group: str = "") -> ScoringItem:
    return ScoringItem(prediction, (gold,), task=task, group=group)


def scores(metric: str, items: list[ScoringItem]) -> list[float | None]:
    return score_items(items, [metric])[metric]


# --- files: schema, style, gold answers -----------------------------------------------------


def test_a_valid_schema_loads_and_a_broken_one_is_refused_with_line_or_place(tmp_path):
    good = tmp_path / "schema.json"
    good.write_text(json.dumps(SCHEMA))
    assert load_schema(good) == SCHEMA
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{\n  "type": "object",\n  "properties": {,}\n}')
    with pytest.raises(TaskFileError, match=r"bad\.json line 3: invalid JSON"):
        load_schema(bad_json)
    not_schema = tmp_path / "wrong.json"
    not_schema.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "strnig"}}}))
    with pytest.raises(
        TaskFileError, match=r"wrong\.json: not a valid JSON Schema at .*properties"
    ):
        load_schema(not_schema)


def test_the_sample_schema_and_style_load_and_the_format_golds_validate():
    task = load_task("format", schema=str(SAMPLE / "format" / "schema.json"))
    pairs = load_qa(SAMPLE / "format" / "qa.jsonl", task)
    assert len(pairs) == len(load_qa(SAMPLE / "qa.jsonl"))
    assert all(task.valid(a) for p in pairs for a in p.answers)
    style = load_task("style", style=str(SAMPLE / "style" / "style.yaml"))
    assert set(style.style.active()) >= {"max_words", "citation", "closing"}
    # The gold answers written in the style (what shots show, LoRA learns) mostly keep it.
    plain = load_qa(SAMPLE / "qa.jsonl")
    kept = sum(all(style.style.checks(style.target(p)).values()) for p in plain)
    assert kept >= 0.9 * len(plain)


def test_json_gold_answers_load_only_under_a_json_format_task(tmp_path):
    qa = tmp_path / "qa.jsonl"
    row = {"id": "a", "question": "Q?", "answers": [{"answer": "x", "source": "doc"}]}
    qa.write_text(json.dumps(row) + "\n")
    with pytest.raises(QAFormatError, match="must be text"):
        load_qa(qa)  # a Q/A run keeps refusing objects as answers
    (pair,) = load_qa(qa, json_task())
    assert json.loads(pair.answers[0]) == {"answer": "x", "source": "doc"}


def test_a_gold_answer_that_breaks_the_schema_is_refused_naming_its_line(tmp_path):
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"id": "a", "question": "Q1?", "answers": [{"answer": "x", "source": "d"}]},
        {"id": "b", "question": "Q2?", "answers": [{"answer": "y"}]},
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(QAFormatError, match=r"qa\.jsonl line 2: .*does not validate.*source"):
        load_qa(qa, json_task())
    text = tmp_path / "text.jsonl"
    text.write_text(json.dumps({"question": "Q?", "answers": ["plain"]}) + "\n")
    with pytest.raises(QAFormatError, match=r"line 1: the gold answer is not a JSON object"):
        load_qa(text, json_task())
    with pytest.raises(QAFormatError, match=r"line 1: .*does not match the pattern"):
        load_qa(text, TaskSpec("format", pattern=r"\d+"))


def test_style_file_unknown_rule_and_bad_values_are_refused_with_their_line(tmp_path):
    style = tmp_path / "style.yaml"
    style.write_text(STYLE)
    rules = load_style(style)
    assert rules.max_words == 8 and rules.forbidden == ("I think",)
    style.write_text("max_words: 8\n# a comment\nmax_lenght: 3\n")
    with pytest.raises(TaskFileError, match=r"style\.yaml line 3: unknown rule 'max_lenght'"):
        load_style(style)
    style.write_text("max_words: many\n")
    with pytest.raises(TaskFileError, match=r"line 1: max_words must be a whole number"):
        load_style(style)
    style.write_text("citation: '(unclosed'\n")
    with pytest.raises(TaskFileError, match=r"line 1: citation is not a regular expression"):
        load_style(style)
    style.write_text("rubric: be nice\n")
    with pytest.raises(TaskFileError, match="no checkable rule"):
        load_style(style)
    with pytest.raises(TaskFileError, match="not a regular expression"):
        load_task("format", pattern="([")


def test_a_backtracking_pattern_scores_invalid_instead_of_hanging_the_run():
    """A pattern from a browser that backtracks exponentially ("(a|aa)+$" on 40 a's and a "!"
    takes minutes with the stdlib) counts as no match after MATCH_TIMEOUT_S, in every place a
    user's pattern is matched: the format pattern, a style rule and a schema's own patterns."""
    slow = "(a|aa)+$"
    text = "a" * 40 + "!"
    t0 = time.perf_counter()
    assert not TaskSpec("format", pattern=slow).valid(text)
    assert StyleRules(citation=slow).checks(text) == {"citation": False}
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": slow}}}
    assert not TaskSpec("format", schema=schema).valid(json.dumps({"a": text}))
    by_key = {"type": "object", "patternProperties": {slow: {"type": "integer"}}}
    closed = {**by_key, "additionalProperties": False}
    assert TaskSpec("format", schema=by_key).valid(json.dumps({text: "not checked"}))
    assert not TaskSpec("format", schema=closed).valid(json.dumps({text: 1}))
    assert time.perf_counter() - t0 < 12 * MATCH_TIMEOUT_S
    # The same checks still match what they should.
    assert TaskSpec("format", pattern="(a|aa)+!").valid(text)
    assert TaskSpec("format", schema=closed).valid(json.dumps({"aa": 1}))
    assert not TaskSpec("format", schema=closed).valid(json.dumps({"aa": "x"}))
    assert not TaskSpec("format", schema=closed).valid(json.dumps({"b": 1}))


def test_a_pattern_longer_than_the_cap_is_refused(tmp_path):
    with pytest.raises(TaskFileError, match="more than 2,000"):
        load_task("format", pattern="a" * (MAX_PATTERN_CHARS + 1))
    style = tmp_path / "style.yaml"
    style.write_text(f"closing: '{'b' * (MAX_PATTERN_CHARS + 1)}'\n")
    with pytest.raises(TaskFileError, match=r"line 1: closing is .* characters, more than"):
        load_style(style)


# --- reading answers and scoring them ------------------------------------------------------


def test_answers_are_read_out_of_chatter_and_code_fences():
    raw = 'Sure!\n```json\n{"answer": "pharma", "source": "Pharmacy"}\n```'
    assert first_json_object(raw) == {"answer": "pharma", "source": "Pharmacy"}
    task = json_task()
    assert json.loads(task.extract(raw, "Sure!")) == {"answer": "pharma", "source": "Pharmacy"}
    assert task.extract("no json here", "no json here") == "no json here"
    assert first_json_object('{broken {"a": 1}') == {"a": 1}


def test_format_validity_field_scores_and_content_f1_on_known_answers():
    task = json_task()
    gold = json.dumps({"answer": "the thymus", "source": "Immune_system"})
    exact = json.dumps({"answer": "thymus", "source": "Immune_system"})
    half = json.dumps({"answer": "bone marrow", "source": "Immune_system"})
    extra = json.dumps({"answer": "thymus", "source": "Immune_system", "note": "x"})
    items = [item(exact, gold, task), item(half, gold, task), item(extra, gold, task)]
    items.append(item("thymus", gold, task))  # not JSON at all
    assert scores("format_valid", items) == [1.0, 1.0, 0.0, 0.0]
    assert field_scores(half, gold) == {"answer": (0.0, 0.0), "source": (1.0, 1.0)}
    assert scores("field_em", items) == [1.0, 0.5, 1.0, 0.0]  # the fields are scored as given
    assert scores("field_f1", items) == [1.0, 0.5, 1.0, 0.0]
    content = scores("content_f1", items)
    assert content[0] == pytest.approx(1.0)  # "thymus immune_system" against the same
    # "bone marrow immunesystem" against "thymus immunesystem": P 1/3, R 1/2.
    assert content[1] == pytest.approx(0.4)
    assert content[2:] == [0.0, 0.0]  # invalid answers carry no content
    # A regular-expression format has no fields; a Q/A item none of these scores.
    pattern = TaskSpec("format", pattern=r"[A-Z][a-z]+\.")
    assert scores("format_valid", [item("Thymus.", "Thymus.", pattern)]) == [1.0]
    assert scores("field_em", [item("Thymus.", "Thymus.", pattern)]) == [None]
    assert scores("format_valid", [item("thymus", "thymus", None)]) == [None]


def test_style_rules_are_scored_one_by_one_and_together(tmp_path):
    style = tmp_path / "style.yaml"
    style.write_text(STYLE)
    task = TaskSpec("style", style=load_style(style))
    ok = "The thymus (Source: Immune_system)."
    long = "I think it is the thymus, a small organ in the chest (Source: Immune_system)."
    bare = "The thymus"
    items = [item(a, "the thymus", task) for a in (ok, long, bare)]
    assert scores("style_pass", items) == [1.0, 0.0, 0.0]
    assert scores("style_max_words", items) == [1.0, 0.0, 1.0]
    assert scores("style_forbidden", items) == [1.0, 0.0, 1.0]
    assert scores("style_citation", items) == [1.0, 1.0, 0.0]
    assert scores("style_closing", items) == [1.0, 1.0, 0.0]
    assert scores("style_required", items) == [None, None, None]  # the file sets no such rule
    # Content F1 reads the answer without its citation: "The thymus." against "the thymus".
    assert scores("content_f1", items)[0] == pytest.approx(1.0)
    # What tuning maximises: the content of an answer that keeps every rule; the bare answer
    # has the right words (content F1 1.0) but breaks two rules, so it scores 0.
    assert scores("content_f1", items)[2] == pytest.approx(1.0)
    assert scores("style_content_f1", items) == pytest.approx([1.0, 0.0, 0.0])


def test_reading_grade_orders_plain_and_dense_text():
    plain = "The cat sat on the mat. It was warm."
    dense = (
        "Pharmacological interventions necessitate comprehensive consideration of "
        "pharmacokinetic variability and interindividual therapeutic responsiveness."
    )
    assert flesch_kincaid_grade(plain) < 3 < 12 < flesch_kincaid_grade(dense)
    rules = StyleRules(max_grade=10)
    assert rules.checks(plain) == {"max_grade": True}
    assert rules.checks(dense) == {"max_grade": False}


def test_consistency_on_hand_made_groups():
    task = json_task()
    a = json.dumps({"answer": "The thymus", "source": "Immune_system"})
    a2 = json.dumps({"answer": "thymus!", "source": "Immune_system"})  # same after normalising
    b = json.dumps({"answer": "bone marrow", "source": "Immune_system"})
    items = [
        item(a, a, task, "g1"),
        item(a2, a, task, "g1"),
        item(a, a, task, "g2"),
        item(b, a, task, "g2"),
        item("not json", a, task, "g3"),
        item(a, a, task, "g3"),
        item(a, a, task, ""),  # alone: no group, no score
    ]
    assert scores("consistency", items) == [1.0, None, 0.0, None, 0.0, None, None]
    assert scores("format_consistency", items) == [1.0, None, 1.0, None, 0.0, None, None]
    # The mean is the share of groups, so its interval resamples groups.
    ci = bootstrap_ci(scores("consistency", items), n_resamples=200)
    assert ci.n == 3 and ci.mean == pytest.approx(1 / 3)
    # Plain text answers of a Q/A run: agreement after SQuAD normalisation.
    text = [item("The Thymus.", "x", None, "g"), item("thymus", "x", None, "g")]
    assert scores("consistency", text) == [1.0, None]


def test_groups_come_from_the_file_else_from_near_duplicates_and_odd_groups_are_named():
    declared = [
        QAPair("a", "Where do T cells mature?", ("thymus",), group="g"),
        QAPair("b", "In which organ do T cells become mature?", ("the thymus",), group="g"),
        QAPair("c", "What do B cells make?", ("antibodies",), group="h"),
        QAPair("d", "Which proteins do B cells produce?", ("antigens",), group="h"),
        QAPair("e", "What is pharmacy?", ("a science",)),
    ]
    assert paraphrase_groups(declared, 0.6) == {"a": "g", "b": "g", "c": "h", "d": "h"}
    warnings = group_warnings(declared)
    assert len(warnings) == 1 and "'h' (c, d)" in warnings[0]
    found = [
        QAPair("x", "Where do T cells mature?", ("thymus",)),
        QAPair("y", "Where do the T cells mature?", ("thymus",)),
        QAPair("z", "What do B cells make?", ("antibodies",)),
    ]
    assert paraphrase_groups(found, 0.6) == {"x": "x", "y": "x"}
    # Declared paraphrases stay on one side of the split, like near-duplicates.
    many = [
        QAPair(f"p{i}", f"Question {i} about topic {i}?", ("a",), group=f"g{i // 2}")
        for i in range(20)
    ]
    train, test = split_pairs(many, SplitConfig(test_fraction=0.3))
    test_groups = {p.group for p in test}
    assert not test_groups & {p.group for p in train}


def test_targets_are_formatted_for_shots_and_training():
    task = json_task()
    text_pair = QAPair("g1", "Where do T cells mature?", ("thymus",), source="Immune_system.md")
    made = json.loads(task.target(text_pair))
    assert made == {"answer": "thymus", "source": "Immune_system.md"}
    json_pair = QAPair("g2", "Q?", (json.dumps({"answer": "x", "source": "d"}),))
    assert task.target(json_pair) == json_pair.answers[0]
    style = TaskSpec("style", style=StyleRules(max_words=9, example="{answer} (Source: {source})."))
    assert style.target(text_pair) == "thymus (Source: Immune_system)."
    assert TaskSpec("qa").target(text_pair) == "thymus"


def test_task_metrics_are_default_only_in_their_task_kinds():
    assert not {"format_valid", "style_pass", "consistency"} & set(default_metrics())
    assert {"format_valid", "field_f1", "content_f1", "consistency"} <= set(
        default_metrics("format")
    )
    assert {"style_pass", "content_f1", "consistency"} <= set(default_metrics("style"))
    assert "format_valid" not in default_metrics("style")


# --- runs on the tiny model -----------------------------------------------------------------

ALL = ["system_prompt", "few_shot", "rag", "lora", "few_shot+rag", "lora+rag"]


def format_corpus(mini_corpus) -> Path:
    """The mini corpus's Q/A pairs with JSON gold answers, q1/q2 and q9/q8 declared paraphrase
    groups (so the test split holds groups)."""
    corpus, qa = mini_corpus
    groups = {"q1": "b", "q9": "b", "q2": "t", "q3": "t"}
    path = qa.parent / "format_qa.jsonl"
    rows = [
        {
            "id": i,
            "question": q,
            "answers": [{"answer": x, "source": "doc"} for x in a],
            **({"group": groups[i]} if i in groups else {}),
        }
        for i, q, a in QA
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kind", ["format", "style", "qa"])
def test_every_strategy_runs_each_task_kind_on_the_tiny_model(
    kind, mini_corpus, tiny_models, tmp_path
):
    from eval.run.harness import run_comparison
    from eval.views.tables import run_summary
    from tests.test_harness import make_config

    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    style = tmp_path / "style.yaml"
    style.write_text(STYLE)
    over = {"format": {"qa": str(format_corpus(mini_corpus)), "schema": str(schema)}}
    over["style"] = {"style": str(style)}
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=ALL,
        strategy_configs={
            # The tiny model's tokens are near characters: room for the schema in the prompt.
            "lora": {"epochs": 1, "batch_size": 4, "max_seq_tokens": 1024},
            "lora+rag": {"lora": {"epochs": 1, "batch_size": 4, "max_seq_tokens": 2048}},
            "few_shot": {"k": 2, "max_shot_tokens": 2000},
        },
        task=kind,
        retention_questions=0,
        verdict={"oracle": False},
        split={"test_fraction": 0.4, "seed": 1},
        **over.get(kind, {}),
    )
    run_id = run_comparison(cfg)
    store = RunStore(cfg.store_path)
    run = store.get_run(run_id)
    assert run.status == "done", run.error
    summary = run_summary(run)["strategies"]
    assert [r.strategy for r in run.results] == ALL
    for name in ALL:
        assert summary[name]["status"] == "done", summary[name]["error"]
        metrics = summary[name]["metrics"]
        if kind == "format":
            assert set(metrics["format_valid"]) == {"mean", "low", "high", "n"}
            assert metrics["format_valid"]["n"] == len(run.meta.split.test_ids)
            assert "consistency" in metrics and "field_f1" in metrics
        elif kind == "style":
            assert metrics["style_pass"]["n"] > 0 and "style_max_words" in metrics
        else:
            assert not {"format_valid", "style_pass", "consistency"} & set(metrics)
    if kind == "qa":
        return
    assert run.meta.task["kind"] == kind
    # The system prompt carries the schema or the rules, the shots are formatted.
    system = run.results[0].prepare.details["system_prompt"]
    assert ('"additionalProperties"' in system) if kind == "format" else ("at most 8" in system)
    shots = [c for a in store.get_answers(run_id, "few_shot") for c in a.answer.contexts]
    want = '{"answer"' if kind == "format" else "(Source: "
    assert shots and all(want in c.text for c in shots if c.kind == "shot")
    if kind == "format":  # declared groups in the test split are scored, over groups
        groups = set(run.meta.paraphrases.values())
        assert summary["rag"]["metrics"]["consistency"]["n"] == len(groups)


def test_a_format_run_from_the_cli_writes_the_metrics_and_refuses_bad_files(
    mini_corpus, tiny_models, tmp_path, capsys
):
    from cli.main import main

    corpus, _ = mini_corpus
    qa = format_corpus(mini_corpus)
    store = tmp_path / "runs.sqlite"
    base = ["run", "--corpus", str(corpus), "--store", str(store), "--quiet"]
    bad = tmp_path / "bad_schema.json"
    bad.write_text(json.dumps({"type": 12}))
    assert main([*base, "--qa", str(qa), "--task", "format", "--schema", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad_schema.json: not a valid JSON Schema" in err and "Traceback" not in err
    style = tmp_path / "house.yaml"
    style.write_text("max_words: 9\nshout: true\n")
    assert main([*base, "--task", "style", "--style", str(style)]) == 2
    assert "house.yaml line 2: unknown rule 'shout'" in capsys.readouterr().err
    wrong = tmp_path / "wrong_golds.jsonl"
    wrong.write_text(json.dumps({"question": "Q?", "answers": [{"answer": "x"}]}) + "\n")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    assert main([*base, "--qa", str(wrong), "--task", "format", "--schema", str(schema)]) == 2
    err = capsys.readouterr().err
    assert "wrong_golds.jsonl line 1: the gold answer does not validate" in err
    assert not store.exists() or not RunStore(store).list_runs()  # refused before any run

    out = tmp_path / "summary.json"
    args = [*base, "--qa", str(qa), "--task", "format", "--schema", str(schema)]
    args += ["--generator", "tiny", "--strategies", "system_prompt,rag", "--n-test", "3"]
    config = tmp_path / "run.yaml"
    config.write_text("retention_questions: 0\nverdict: {oracle: false}\n")
    args += ["--config", str(config), "--set", "models.max_new_tokens=8", "--json", str(out)]
    assert main(args) in (0, 1)
    data = json.loads(out.read_text())
    for name in ("system_prompt", "rag"):
        metrics = data["strategies"][name]["metrics"]
        for key in ("format_valid", "consistency", "content_f1"):
            assert set(metrics[key]) == {"mean", "low", "high", "n"}
    printed = capsys.readouterr().out
    assert "Valid format" in printed and "Content F1" in printed
    html = tmp_path / "report.html"
    assert main(["compare", data["run_id"], "--store", str(store), "--html", str(html)]) == 0
    assert "Valid format" in html.read_text()


def test_rescoring_a_stored_format_run_needs_no_files(mini_corpus, tiny_models, tmp_path):
    from eval.run.harness import run_comparison
    from eval.run.scoring import rescore
    from tests.test_harness import make_config

    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt"],
        task="format",
        qa=str(format_corpus(mini_corpus)),
        schema=str(schema),
        retention_questions=0,
        verdict={"oracle": False},
        metrics=["f1"],
    )
    run_id = run_comparison(cfg)
    schema.unlink()  # the run stored its task: the file is not read again
    store = RunStore(cfg.store_path)
    rescore(store, run_id, ["format_valid", "field_f1"])
    got = store.get_run(run_id).results[0].metrics
    assert got["format_valid"].n == len(store.get_answers(run_id, "system_prompt"))


def _scored(name: str, scores: dict[str, list[float]]) -> list:
    """Stored answers of `name` to questions q0, q1, ... carrying `scores` per question (the
    paired tests read them)."""
    from core.types import Answer, Cost
    from eval.store.runs import StoredAnswer

    n = len(next(iter(scores.values())))
    return [
        StoredAnswer(
            name,
            f"q{i}",
            f"Question {i}?",
            ["gold"],
            Answer(f"Question {i}?", "{}", [], Cost(10, 3, 0.1)),
            {m: v[i] for m, v in scores.items()},
        )
        for i in range(n)
    ]


def test_the_verdict_names_what_fine_tuning_bought_on_format_validity(tmp_path):
    from eval.views import RunView
    from eval.views.task_verdict import fine_tuning_bought
    from tests.test_dashboards import _result

    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"strategies": ["few_shot", "rag", "lora"]}, "format")

    def save(name: str, valid: list[float]) -> None:
        scores = {"f1": [0.5] * len(valid), "format_valid": valid}
        store.save_strategy(run_id, _result(name, scores), _scored(name, scores))

    save("few_shot", [1.0] * 7 + [0.0] * 3)
    save("rag", [1.0] * 5 + [0.0] * 5)
    save("lora", [1.0] * 10)
    store.finish_run(run_id, "done")
    (sentence,) = fine_tuning_bought(RunView.load(store, run_id))
    # lora costs $0.02 per 1k questions, few_shot $0.08 (tests.test_dashboards.COSTS).
    assert sentence.startswith("LoRA")
    assert "100% valid format against 70% for Few-shot examples" in sentence
    assert "-$0.06 per 1,000 questions" in sentence
    # 3 questions of 10 apart: said with the paired test, which cannot tell them apart.
    assert "the paired test cannot tell them apart (Holm-adjusted p = " in sentence
    # 30 questions of 40 apart: a purchase.
    save("few_shot", [1.0] * 10 + [0.0] * 30)
    save("rag", [0.0] * 40)
    save("lora", [1.0] * 40)
    (sentence,) = fine_tuning_bought(RunView.load(store, run_id))
    assert "100% valid format against 25%" in sentence
    assert "; a significant difference (paired test, Holm-adjusted p = " in sentence
    # A prompt-only lead buys nothing to name.
    save("few_shot", [1.0] * 40)
    assert fine_tuning_bought(RunView.load(store, run_id)) == []


def test_compare_decides_a_format_run_on_its_metric_and_says_what_training_bought(tmp_path, capsys):
    from cli.main import main
    from eval.views import RunView
    from eval.views.verdict.export import decision_data
    from tests.test_dashboards import _result

    store = RunStore(tmp_path / "runs.sqlite")
    config = {"strategies": ["few_shot", "rag", "lora"], "task": "format", "schema": "s.json"}
    run_id = store.create_run(config, "format")
    valid = {"few_shot": [1.0] * 7 + [0.0] * 3, "rag": [0.0] * 10, "lora": [1.0] * 10}
    for name, v in valid.items():
        store.save_strategy(run_id, _result(name, {"f1": [0.5] * 10, "format_valid": v}), [])
    store.finish_run(run_id, "done")
    # --store may name the folder the runs file lies in, as the app keeps it (.adaptlab).
    assert main(["compare", run_id, "--store", str(tmp_path), "--threshold", "0.9"]) == 0
    out = capsys.readouterr().out
    # The bar is on what a format run is judged by (as the Compare page opens), not plain F1:
    # few-shot's 70% valid misses 0.9 though its F1 equals LoRA's.
    assert "Use **LoRA fine-tune**: it meets your bar (Valid format ≥ 0.9)" in out
    assert "100% valid format against 70% for Few-shot examples" in out
    assert main(["compare", run_id, "--store", str(tmp_path), "--metric", "f1"]) == 0
    assert "(F1 ≥ 0.1)" in capsys.readouterr().out
    html = tmp_path / "report.html"
    assert main(["compare", run_id, "--store", str(tmp_path), "--html", str(html)]) == 0
    assert "Valid format ≥ 0.1" in html.read_text()
    assert main(["compare", run_id, "--store", str(tmp_path), "--metric", "rouge"]) == 2
    assert "metric 'rouge' is not in run" in capsys.readouterr().err
    # `show` and the --json figures say it too.
    assert main(["show", run_id, "--store", str(tmp_path)]) == 0
    assert "100% valid format against 70%" in capsys.readouterr().out
    figures = decision_data(RunView.load(store, run_id))["decision"]
    assert figures["fine_tuning_bought"][0].startswith("LoRA fine-tune: 100% valid format")


def test_run_page_offers_the_task_kinds_from_the_config_field(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from eval.config import RunConfig
    from tests.test_app import APP, OWNER, goto, texts

    monkeypatch.setenv("ADAPTLAB_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["owner"] = OWNER
    at.session_state["show_hidden_strategies"] = True
    at.run()
    goto(at, "run")
    at.multiselect(key="run.strategies").set_value(["fake"]).run()
    task = at.selectbox(key="run.task")
    assert tuple(task.options) == RunConfig.choices_of("task") and task.value == "qa"
    for kind in ("format", "style"):
        at.selectbox(key="run.task").set_value(kind).run()
        assert not at.exception and not at.error, texts(at.error)
        assert "What a right answer is" in texts(at.caption)
        assert not at.button(key="run").disabled  # the sample's schema and style are found


def test_a_style_rubric_reaches_the_judge_prompt():
    from eval.judge import Judge

    judge = Judge(None)
    task = TaskSpec("style", style=StyleRules(max_words=5, rubric="Name the source document."))
    styled = judge.prompt_for(item("thymus", "the thymus", task))
    assert styled.startswith("House style every answer must keep: Name the source document.")
    assert "Candidate answer: thymus" in styled
    assert "House style" not in judge.prompt_for(item("thymus", "the thymus", None))


def test_a_format_run_opens_on_the_compare_page_with_its_metrics(
    mini_corpus, tiny_models, tmp_path, monkeypatch
):
    from streamlit.testing.v1 import AppTest

    from eval.run.harness import run_comparison
    from eval.views.display import quality_table
    from eval.views.quality import side_by_side
    from eval.views.run_view import RunView
    from tests.test_app import APP, OWNER, goto
    from tests.test_harness import make_config

    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTLAB_HOME", str(home))
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    cfg = make_config(
        mini_corpus,
        tiny_models,
        tmp_path,
        strategies=["system_prompt", "rag"],
        task="format",
        qa=str(format_corpus(mini_corpus)),
        schema=str(schema),
        retention_questions=0,
        store_path=str(home / "runs.sqlite"),
        workdir=str(home / "work"),
    )
    run_id = run_comparison(cfg, owner=OWNER)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["owner"] = OWNER
    at.run()
    goto(at, "compare")
    assert not at.exception
    columns = {c for df in at.dataframe for c in df.value.columns}  # field names, labels aside
    assert {"format_valid", "field_f1", "content_f1", "consistency"} <= columns
    # The page opens on what a format run is judged by, not on F1.
    assert at.selectbox(key="cmp_metric").value == "format_valid"
    # What a format run is judged by is in the quality table's first view, beside the chosen
    # metric; the other metrics (field EM, format consistency, EM...) wait in its column menu.
    view = RunView.load(RunStore(home / "runs.sqlite"), run_id)
    table = quality_table(view, side_by_side(view), "f1")
    first_view = {c.key for c in table.columns if not c.more}
    assert first_view & set(default_metrics("format")) == {
        "f1",
        "format_valid",
        "field_f1",
        "content_f1",
        "consistency",
    }


def test_a_task_s_headline_metrics_lead_only_in_runs_of_that_task():
    from eval.metrics import headline_metric

    assert headline_metric("format_valid", "format") and headline_metric("style_pass", "style")
    assert headline_metric("consistency", "style") and headline_metric("content_f1", "format")
    assert not headline_metric("consistency", "qa")  # scored in a Q/A run only when named
    assert not headline_metric("field_em", "format") and not headline_metric("f1", "format")
    assert not headline_metric("format_valid", "style") and not headline_metric("unknown", "qa")


def test_views_open_on_the_metric_a_run_of_its_task_is_judged_by():
    from eval.views.run_view import lead_metric

    fmt = ["exact_match", "f1", "format_valid", "field_f1", "content_f1", "consistency"]
    assert lead_metric(fmt, "format") == "format_valid"
    style = ["exact_match", "f1", "content_f1", "style_pass", "consistency"]
    assert lead_metric(style, "style") == "style_pass"
    assert lead_metric(["exact_match", "f1", "consistency"], "qa") == "f1"
    assert lead_metric(["exact_match", "rouge_l"], "qa") == "exact_match"
    assert lead_metric(["f1", "content_f1"], "style") == "f1"  # no style metric scored


def test_stored_runs_without_a_task_read_as_qa_and_a_task_needs_its_file():
    from core.config import ConfigError
    from eval.config import RunConfig

    old = {k: v for k, v in RunConfig().to_dict().items() if k not in ("task", "schema", "style")}
    assert RunConfig.from_stored(old).task == "qa"
    with pytest.raises(ConfigError, match="needs a JSON Schema file"):
        RunConfig(task="format")
    with pytest.raises(ConfigError, match="needs a style file"):
        RunConfig(task="style")
    with pytest.raises(ConfigError, match="task must be one of qa, format, style"):
        RunConfig(task="tone")
    # A format or style run judges right answers by its own metric unless told otherwise.
    data = RunConfig.with_task_defaults({"task": "format", "verdict": {"right_metric": "f1"}})
    assert data["verdict"]["right_metric"] == "content_f1"
    kept = {"task": "style", "verdict": {"right_metric": "rouge_l"}}
    assert RunConfig.with_task_defaults(kept) == kept
