"""The judge metric: parsing of replies, prompts, costs, agreement with F1, the tiny model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.config import ConfigError, ModelConfig
from eval.judge import (
    Judge,
    JudgeConfig,
    JudgeCost,
    JudgeVerdict,
    judge_model_config,
    load_judge,
    parse_grade,
    parse_rationale,
    render_prompt,
)
from eval.metrics import METRICS, ScoringItem, default_metrics, score_items
from eval.stats.agreement import Agreement, GradedAnswer, agreement_by_strategy, judge_agreement


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("Verdict: CORRECT\nReason: same fact.", 1.0),
        ("Verdict: INCORRECT\nReason: names another organ.", 0.0),
        ("verdict - incorrect", 0.0),
        ("**Verdict:** Partially correct, it misses a part.", 0.5),
        ("Verdict: 0.8", 0.8),
        ("Verdict: 7/10", 0.7),
        ("Score: 0.25", 0.25),
        ("Score: 4 out of 5", 0.8),
        ("The score is 80%", 0.8),
        ("Yes, it matches the gold answer.", 1.0),
        ("No. The answer is about T cells.", 0.0),
        ("1", 1.0),
        ("0", 0.0),
        ("The answer is not correct because it names the spleen.", 0.0),
        ("The candidate answer is wrong.", 0.0),
        ("The candidate's answer is correct.", 1.0),
        ("Verdict: right", 1.0),
        ("Verdict: false", 0.0),
        # The first verdict word decides when no labelled line exists.
        ("It is incorrect to call it correct.", 0.0),
        # A 'Verdict:' line wins over words elsewhere.
        ("The answer looks right at first.\nVerdict: INCORRECT", 0.0),
    ],
)
def test_parse_grade_reads_common_reply_shapes(reply, grade):
    assert parse_grade(reply) == pytest.approx(grade)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "I cannot decide.",
        "Score: 7",
        "Verdict: 12",
        "Verdict: -1",
        "banana 42",
        "Verdict: maybe",
        "The right ventricle pumps blood to the lungs.",  # a restated fact, not a verdict
        "It is true that T cells mature in the thymus.",
    ],
)
def test_parse_grade_unreadable_is_none(reply):
    assert parse_grade(reply) is None


def test_parse_rationale():
    assert parse_rationale("Verdict: CORRECT\nReason: both name the thymus.") == (
        "both name the thymus."
    )
    assert parse_rationale("INCORRECT because the gold answer is antigens") == (
        "the gold answer is antigens"
    )
    # Without a reason label: the reply minus its verdict line, on one line.
    assert parse_rationale("Verdict: CORRECT\nSame organ,\n same word.") == "Same organ, same word."
    long = parse_rationale("Reason: " + "x " * 400)
    assert len(long) == 300 and long.endswith("…")


def test_render_prompt_fills_once_and_keeps_braces():
    prompt = render_prompt(
        "Q={question} G={golds} A={answer}", "what is {answer}?", ["a", "b"], "{x}"
    )
    assert prompt == "Q=what is {answer}? G=a | b A={x}"
    assert "(empty answer)" in render_prompt("{golds}{answer}", "q", ["g"], "  ")


def test_judge_config_validation_and_round_trip():
    cfg = JudgeConfig(model="tiny", max_tokens=20)
    assert JudgeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="answer"):
        JudgeConfig(prompt="Grade {golds}")
    with pytest.raises(ConfigError, match="NAME"):
        JudgeConfig(api_key_env="sk-123 secret")
    with pytest.raises(ConfigError, match="engine"):
        JudgeConfig(engine="vllm")
    with pytest.raises(ConfigError, match="max_tokens"):
        JudgeConfig(max_tokens=0)
    assert JudgeConfig.help()["api_key_env"]  # every field documents itself


@dataclass
class FakeGeneration:
    text: str
    prompt_tokens: int
    output_tokens: int


class FakeGenerator:
    """Replies from a script keyed by the candidate answer; records every batch it was given."""

    name = "fake-judge"

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        self.batches: list[int] = []
        self.max_new_tokens: list[int] = []

    def generate(self, conversations, max_new_tokens=32):
        self.batches.append(len(conversations))
        self.max_new_tokens.append(max_new_tokens)
        out = []
        for conv in conversations:
            prompt = conv[-1]["content"]
            answer = prompt.split("Candidate answer: ")[1].split("\n")[0]
            out.append(FakeGeneration(self.replies[answer], len(prompt.split()), 5))
        return out


ITEMS = [
    ScoringItem("the thymus", ("thymus",), question="Where do T cells mature?"),
    ScoringItem("spleen", ("thymus",), question="Where do T cells mature?"),
    ScoringItem("antigen binding", ("antigens",), question="What do antibodies bind?"),
]
REPLIES = {
    "the thymus": "Verdict: CORRECT\nReason: same organ.",
    "spleen": "Verdict: INCORRECT\nReason: another organ.",
    "antigen binding": "hmm",
}


def test_judge_grades_keeps_verdicts_and_counts_cost():
    gen = FakeGenerator(REPLIES)
    judge = Judge(gen, JudgeConfig(batch_size=2, max_tokens=17))
    scores = judge.grade(ITEMS)
    assert scores == [1.0, 0.0, None]
    assert gen.batches == [2, 1] and gen.max_new_tokens == [17, 17]
    assert [v.rationale for v in judge.verdicts] == ["same organ.", "another organ.", "hmm"]
    assert judge.verdicts[1].raw == REPLIES["spleen"]
    cost = judge.cost
    assert (cost.model, cost.verdicts, cost.unparsed, cost.output_tokens) == (
        "fake-judge",
        3,
        1,
        15,
    )
    assert cost.prompt_tokens > 0 and cost.seconds >= 0
    # The question reaches the prompt.
    assert "Where do T cells mature?" in judge.prompt_for(ITEMS[0])
    # Progress after every batch.
    seen = []
    judge.progress = lambda done, total: seen.append((done, total))
    judge.grade(ITEMS)
    assert seen == [(2, 3), (3, 3)]


def test_judge_is_a_registered_metric_not_scored_by_default():
    assert METRICS["judge"].needs_judge and METRICS["judge"].higher_is_better
    assert "judge" not in default_metrics() and "f1" in default_metrics()
    with pytest.raises(ValueError, match="needs a judge"):
        score_items(ITEMS, ["judge"])
    got = score_items(ITEMS, ["f1", "judge"], judge=Judge(FakeGenerator(REPLIES)))
    assert got["judge"] == [1.0, 0.0, None]
    assert got["f1"][0] == 1.0


def test_records_round_trip():
    v = JudgeVerdict(0.5, "partly", "Verdict: partially correct")
    assert JudgeVerdict.from_dict(v.to_dict()) == v
    c = JudgeCost("m", 2, 1, 10, 4, 0.5) + JudgeCost("", 1, 0, 5, 2, 0.25)
    assert c == JudgeCost("m", 3, 1, 15, 6, 0.75)
    assert JudgeCost.from_dict({**c.to_dict(), "unknown": 1}) == c


def test_agreement_counts_kappa_and_disagreements():
    rows = [
        GradedAnswer("rag", "q1", 1.0, 1.0),
        GradedAnswer("rag", "q2", 0.0, 0.0),
        GradedAnswer("rag", "q3", 1.0, 0.2, answer="the thymus gland", rationale="same organ"),
        GradedAnswer("rag", "q4", 0.0, 0.6),
        GradedAnswer("rag", "q5", None, 0.9),
        GradedAnswer("rag", "q6", 1.0, None),
    ]
    a = judge_agreement(rows)
    assert (a.n, a.both_right, a.both_wrong, a.judge_only, a.f1_only, a.unparsed) == (
        4,
        1,
        1,
        1,
        1,
        1,
    )
    assert a.share == pytest.approx(0.5)
    # po = 0.5; judge yes 0.5, F1 yes 0.5 -> pe = 0.5 -> kappa 0
    assert a.kappa == pytest.approx(0.0)
    assert [(d.qid, d.judge, d.f1) for d in a.disagreements] == [("q3", 1.0, 0.2), ("q4", 0.0, 0.6)]
    assert a.disagreements[0].rationale == "same organ"


def test_kappa_hand_worked_and_undefined():
    # 10 answers: 4 both right, 3 both wrong, 2 judge only, 1 F1 only.
    a = Agreement(n=10, both_right=4, both_wrong=3, judge_only=2, f1_only=1)
    po, pj, pf = 0.7, 0.6, 0.5
    pe = pj * pf + (1 - pj) * (1 - pf)
    assert a.kappa == pytest.approx((po - pe) / (1 - pe))
    assert Agreement(n=3, both_right=3).kappa is None  # every call the same: chance explains all
    assert Agreement().share is None and Agreement().kappa is None


def test_judge_model_config():
    run = ModelConfig(generator="tiny", max_new_tokens=8)
    assert judge_model_config(run, JudgeConfig()) == run  # the run's own, shared generator
    other = judge_model_config(run, JudgeConfig(model="smollm2-135m-instruct"))
    assert other.generator == "smollm2-135m-instruct" and other.device == run.device
    if "engine" not in run.to_dict():  # before the OpenAI-compatible engine exists
        with pytest.raises(ConfigError, match="engine"):
            judge_model_config(run, JudgeConfig(engine="openai", base_url="http://x/v1"))


def test_judge_model_config_on_the_openai_engine():
    if "engine" not in ModelConfig().to_dict():
        pytest.skip("the OpenAI-compatible engine is not in this version")
    local = ModelConfig(generator="tiny")
    url = "http://127.0.0.1:9/v1"
    # An in-process run judged by an endpoint: the endpoint's first listed model by default.
    got = judge_model_config(local, JudgeConfig(engine="openai", base_url=url, api_key_env="K"))
    assert (got.engine, got.base_url, got.api_model, got.api_key_env) == ("openai", url, "", "K")
    assert got.generator == "tiny"  # still the tokenizer for budgets
    served = ModelConfig(generator="tiny", engine="openai", base_url=url, api_model="small")
    # A run on a server, judged by a bigger model on the same server.
    got = judge_model_config(served, JudgeConfig(model="big"))
    assert (got.engine, got.base_url, got.api_model) == ("openai", url, "big")
    assert judge_model_config(served, JudgeConfig()) == served
    # ... or in process, by a local model.
    got = judge_model_config(served, JudgeConfig(engine="transformers", model="tiny"))
    assert (got.engine, got.generator) == ("transformers", "tiny")


def test_tiny_model_judge_end_to_end(tiny_models):
    """The real generator path: the tiny model's nonsense replies are mostly unreadable, and
    every reply is still a verdict with its tokens counted."""
    judge = load_judge(tiny_models, JudgeConfig(max_tokens=6))
    scores = judge.grade(ITEMS)
    assert len(scores) == 3 and all(s is None or 0 <= s <= 1 for s in scores)
    assert judge.cost.verdicts == 3
    assert judge.cost.unparsed == sum(s is None for s in scores)
    assert judge.cost.prompt_tokens > 0 and 3 <= judge.cost.output_tokens <= 18
    assert judge.model_name == "tiny"


def test_agreement_by_strategy_from_stored_answers():
    from core.types import Answer
    from eval.store.runs import StoredAnswer

    def stored(strategy, qid, judge, f1, rationale=""):
        a = StoredAnswer(strategy, qid, f"question {qid}", ["gold"], Answer("q", f"answer {qid}"))
        a.scores = {"f1": f1} | ({} if judge == "absent" else {"judge": judge})
        a.details = {"judge": {"score": judge, "rationale": rationale}}
        return a

    answers = [
        stored("rag", "q1", 1.0, 1.0),
        stored("rag", "q2", 1.0, 0.0, "same meaning, other words"),
        stored("few_shot", "q1", 0.0, 0.0),
        stored("few_shot", "q2", None, 0.0),
        stored("lora", "q1", "absent", 1.0),  # judge not scored for this strategy
    ]
    got = agreement_by_strategy(answers)
    assert list(got) == ["all", "rag", "few_shot"]
    assert (got["all"].n, got["all"].unparsed, len(got["all"].disagreements)) == (3, 1, 1)
    d = got["rag"].disagreements[0]
    assert (d.qid, d.question, d.answer, d.golds) == ("q2", "question q2", "answer q2", ["gold"])
    assert d.rationale == "same meaning, other words"
    assert got["few_shot"].share == 1.0
    assert agreement_by_strategy(answers[-1:]) == {}


def test_judge_views_frames_and_lines():
    from types import SimpleNamespace

    from eval.records import ResultExtras
    from eval.store.runs import StrategyResult
    from eval.views.judge import (
        agreement_frame,
        disagreement_frame,
        judge_cost_frame,
        judge_summary,
    )

    a = judge_agreement(
        [
            GradedAnswer("rag", "q1", 1.0, 1.0),
            GradedAnswer("rag", "q2", 1.0, 0.0, "Q?", "the gland", ["thymus"], "same organ"),
        ]
    )
    frame = agreement_frame({"all": a, "rag": a})
    assert list(frame["Strategy"]) == ["all", "rag"]
    assert frame.iloc[0]["Agree"] == "50%" and frame.iloc[0]["Judge right, F1 wrong"] == 1
    # po = 0.5; the judge always says right, F1 half the time: pe = 0.5, kappa 0
    assert frame.iloc[0]["Cohen's kappa"] == "0.00"
    dis = disagreement_frame(a)
    assert dis.to_dict("records") == [
        {
            "Strategy": "rag",
            "Question": "Q?",
            "Answer": "the gland",
            "Gold": "thymus",
            "Judge": 1.0,
            "F1": 0.0,
            "Judge's reason": "same organ",
        }
    ]

    def result(name, judge):
        return StrategyResult(name, "done", extras=ResultExtras.from_dict({"judge": judge}))

    cost = JudgeCost("tiny", 3, 1, 300, 30, 1.5).to_dict()
    run = SimpleNamespace(results=[result("rag", cost), result("few_shot", cost), result("x", {})])
    frame = judge_cost_frame(run)
    assert list(frame["Strategy"]) == ["rag", "few_shot", "total"]
    assert frame.iloc[-1]["Verdicts"] == 6 and frame.iloc[-1]["Prompt tok"] == 600
    line = judge_summary(run)
    assert line.startswith("Judge (tiny): 6 verdicts, 2 unreadable, 600 prompt + 60 output")
    assert judge_summary(SimpleNamespace(results=[result("x", {})])) == ""


def test_attach_verdicts():
    from core.types import Answer
    from eval.judge import attach_verdicts
    from eval.store.runs import StoredAnswer

    judge = Judge(FakeGenerator(REPLIES))
    judge.grade(ITEMS)
    answers = [
        StoredAnswer("s", f"q{i}", "", [], Answer("", it.prediction)) for i, it in enumerate(ITEMS)
    ]
    cost = attach_verdicts(judge, answers)
    assert cost.verdicts == 3 and answers[1].details["judge"]["rationale"] == "another organ."
    assert attach_verdicts(judge, []).verdicts == 0  # no answers: no stale verdicts
    with pytest.raises(RuntimeError):
        attach_verdicts(judge, answers[:2])
