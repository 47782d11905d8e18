"""The judge: a model grades each answer against the gold answers, with a short rationale.

`Judge` turns scoring items into prompts, asks a generator (the run's own, another local model,
or an endpoint), and parses each reply into a `JudgeVerdict` (a 0-1 score or None when the reply
cannot be read, plus the rationale). What judging cost is kept apart from the strategies' costs in
a `JudgeCost`. How often the judge and token F1 agree is eval.stats.agreement's job.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from core.config import ConfigBase, ConfigError, ModelConfig, check, option
from core.engines.base import engine_class
from core.engines.in_process import load_generator

if TYPE_CHECKING:
    from eval.metrics import ScoringItem

ENGINES = ("", "transformers", "openai")

DEFAULT_PROMPT = (
    "You grade answers to questions. Decide whether the candidate answer means the same as "
    "one of the gold answers; extra words are fine, a different fact is not.\n\n"
    "Question: {question}\n"
    "Gold answer(s): {golds}\n"
    "Candidate answer: {answer}\n\n"
    "Reply with exactly two lines:\n"
    "Verdict: CORRECT or INCORRECT\n"
    "Reason: one short sentence"
)
_PLACEHOLDER = re.compile(r"\{(?:question|golds|answer)\}")
RATIONALE_CHARS = 300  # a rationale is a sentence; longer replies are rambling, not reasons


@dataclass
class JudgeConfig(ConfigBase):
    """Which model grades the answers (metric `judge`) and how it is asked."""

    model: str = option(
        "",
        "Judge model: empty = the run's generator; else a generator name as for --generator "
        "(bundled alias, Hugging Face id, local folder) or the model name an endpoint serves.",
    )
    engine: str = option(
        "",
        "How the judge runs: empty = like the run's generator; 'transformers' (in process) or "
        "'openai' (an OpenAI-compatible server at base_url).",
        choices=ENGINES,
    )
    base_url: str = option(
        "",
        "The judge endpoint's base URL (engine 'openai'), e.g. http://127.0.0.1:8080/v1; "
        "empty = the run's server.",
    )
    api_key_env: str = option(
        "", "Name of the environment variable holding the endpoint's API key (never the key)."
    )
    prompt: str = option(
        DEFAULT_PROMPT,
        "Prompt sent to the judge; {question}, {golds} and {answer} are filled in. Ask for a "
        "'Verdict: CORRECT/INCORRECT' line or a 'Score: 0-1' line and a 'Reason:' line.",
    )
    max_tokens: int = option(48, "Most tokens the judge writes per verdict (verdict + reason).")
    batch_size: int = option(8, "Answers graded together in one batch.")

    def validate(self) -> None:
        check(
            not self.api_key_env or self.api_key_env.replace("_", "").isalnum(),
            "judge.api_key_env must be the NAME of an environment variable, not the key",
        )
        missing = [p for p in ("{golds}", "{answer}") if p not in self.prompt]
        check(not missing, f"judge.prompt must contain {' and '.join(missing)}")
        check(1 <= int(self.max_tokens) <= 1024, "judge.max_tokens must be in 1..1024")
        check(1 <= int(self.batch_size) <= 256, "judge.batch_size must be in 1..256")


@dataclass
class JudgeVerdict:
    """One graded answer: the score (1 correct, 0 incorrect, None unreadable) and why."""

    score: float | None
    rationale: str = ""
    raw: str = ""  # the judge's whole reply, for inspection

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> JudgeVerdict:
        return JudgeVerdict(d.get("score"), d.get("rationale", ""), d.get("raw", ""))


@dataclass
class JudgeCost:
    """What judging cost: replies, tokens and seconds. Kept apart from the strategies' costs."""

    model: str = ""
    verdicts: int = 0
    unparsed: int = 0  # replies no grade could be read from (their score is None)
    prompt_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: JudgeCost) -> JudgeCost:
        return JudgeCost(
            self.model or other.model,
            self.verdicts + other.verdicts,
            self.unparsed + other.unparsed,
            self.prompt_tokens + other.prompt_tokens,
            self.output_tokens + other.output_tokens,
            self.seconds + other.seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any] | None) -> JudgeCost:
        return JudgeCost(**{k: v for k, v in (d or {}).items() if k in JudgeCost.__annotations__})


# --- parsing the judge's reply -----------------------------------------------------------------

_NUM = r"(\d+(?:\.\d+)?)"
_VERDICT_LINE = re.compile(r"^\W*(?:final\s+)?(?:verdict|grade|judg(?:e)?ment)[^\w-]*(.*)$", re.I)
_SCORE = re.compile(
    rf"\b(?:score|rating)\b(?:\s+(?:is|of))?\W*{_NUM}\s*(?:(?:/|out\s+of)\s*{_NUM}|(%))?", re.I
)
# Most specific first: "incorrect" and "not correct" contain "correct". Outside a verdict line
# only the correct/incorrect family counts: "right" and "true" turn up in restated facts.
_WORDS = [
    (re.compile(r"\b(?:partially|partly)\s+correct\b", re.I), 0.5),
    (re.compile(r"\b(?:incorrect|wrong)\b", re.I), 0.0),
    (re.compile(r"\b(?:not|isn't|is\s+not)\s+correct\b", re.I), 0.0),
    (re.compile(r"\bcorrect\b", re.I), 1.0),
]
_LINE_WORDS = [
    (re.compile(r"\b(?:partially|partly)\s+(?:correct|right)\b", re.I), 0.5),
    (re.compile(r"\b(?:incorrect|wrong|false)\b", re.I), 0.0),
    (re.compile(r"\b(?:not|isn't|is\s+not)\s+(?:correct|right)\b", re.I), 0.0),
    (re.compile(r"\b(?:correct|right|true)\b", re.I), 1.0),
]
_LEADING = re.compile(rf"^\W*(?:(yes|no)\b|{_NUM}\s*(?:$|[\s.,;:)]))", re.I)
_REASON = re.compile(r"\b(?:reason|rationale|explanation|because)\b\W*(.*)", re.I | re.S)


def _scaled(value: str, denominator: str | None, percent: str | None) -> float | None:
    v = float(value)
    if denominator:
        d = float(denominator)
        v = v / d if d > 0 else -1.0
    elif percent:
        v = v / 100.0
    return v if 0.0 <= v <= 1.0 else None


def _verdict_word(text: str, words=_WORDS) -> float | None:
    """The grade named by the earliest verdict word in `text` ('partially correct' = 0.5)."""
    best: tuple[int, float] | None = None
    for pattern, value in words:
        m = pattern.search(text)
        # The earliest match wins; on a tie the more specific pattern (listed first) does.
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), value)
    return None if best is None else best[1]


def parse_grade(text: str) -> float | None:
    """A 0-1 grade from a judge's reply, or None when none can be read.

    Read in this order: a 'Verdict:' line (CORRECT / INCORRECT / PARTIALLY CORRECT, or a number),
    a 'Score:' figure (0-1, 'n/10', 'n out of 5' or a percentage), a reply opening with yes/no or
    a bare 0-1 number, then the first verdict word anywhere. Figures outside 0-1 are unreadable.
    """
    text = (text or "").strip()
    if not text:
        return None
    for line in text.splitlines():
        m = _VERDICT_LINE.match(line)
        if m:
            grade = _verdict_word(m.group(1), _LINE_WORDS)
            if grade is not None:
                return grade
            num = re.match(rf"[^\w-]*{_NUM}\s*(?:/\s*{_NUM}|(%))?", m.group(1))
            if num:
                return _scaled(*num.groups())
    m = _SCORE.search(text)
    if m:
        return _scaled(*m.groups())
    m = _LEADING.match(text)
    if m:
        if m.group(1):
            return 1.0 if m.group(1).lower() == "yes" else 0.0
        return _scaled(m.group(2), None, None)
    return _verdict_word(text)


def parse_rationale(text: str) -> str:
    """The judge's reason: what follows 'Reason:' (or 'because'), else the reply without its
    verdict line; one paragraph, at most RATIONALE_CHARS characters."""
    text = (text or "").strip()
    m = _REASON.search(text)
    if m and m.group(1).strip():
        reason = m.group(1)
    else:
        reason = "\n".join(ln for ln in text.splitlines() if not _VERDICT_LINE.match(ln))
    reason = " ".join(reason.split())
    return reason if len(reason) <= RATIONALE_CHARS else reason[: RATIONALE_CHARS - 1] + "…"


# --- the judge ---------------------------------------------------------------------------------


def render_prompt(
    template: str, question: str, golds: tuple[str, ...] | list[str], answer: str
) -> str:
    """The judge prompt for one answer. Not str.format: answers and questions may hold braces,
    and a user's template must not reach object attributes."""
    filled = {
        "{question}": question,
        "{golds}": " | ".join(golds),
        "{answer}": answer.strip() or "(empty answer)",
    }
    # One pass, so a question that itself contains "{answer}" is never filled in again.
    return _PLACEHOLDER.sub(lambda m: filled[m.group(0)], template)


class Judge:
    """Grades answers with a generator (anything with `generate(conversations, max_new_tokens)`
    returning objects with `text`, `prompt_tokens`, `output_tokens`).

    `grade()` returns one score per item, as a metric does. The metric registry passes numbers
    only, so the judge also keeps the latest call's verdicts (with rationales) and cost for the
    harness to store; make one judge per scoring pass.
    """

    def __init__(self, generator: Any, config: JudgeConfig | None = None, model_name: str = ""):
        self.generator = generator
        self.config = config or JudgeConfig()
        self.model_name = model_name or getattr(generator, "name", "")
        self.verdicts: list[JudgeVerdict] = []
        self.cost = JudgeCost(self.model_name)
        # Called as progress(done, total) after each batch: judging is slow next to scoring.
        self.progress: Callable[[int, int], None] | None = None

    def prompt_for(self, item: ScoringItem) -> str:
        """The filled-in judge prompt for one scoring item (a style task's rubric first)."""
        prompt = render_prompt(self.config.prompt, item.question, item.golds, item.prediction)
        rubric = getattr(getattr(item.task, "style", None), "rubric", "")
        if rubric:  # the style file's rubric: the judge grades the house style as well
            prompt = f"House style every answer must keep: {rubric}\n\n{prompt}"
        return prompt

    def grade(self, items: list[ScoringItem]) -> list[float | None]:
        """Scores (1, 0, 0.5 or None) for `items`, keeping their verdicts and cost."""
        convs = [[{"role": "user", "content": self.prompt_for(it)}] for it in items]
        verdicts: list[JudgeVerdict] = []
        cost = JudgeCost(self.model_name)
        step = int(self.config.batch_size)
        for start in range(0, len(convs), step):
            t0 = time.perf_counter()
            gens = self.generator.generate(
                convs[start : start + step], max_new_tokens=int(self.config.max_tokens)
            )
            cost.seconds += time.perf_counter() - t0
            for g in gens:
                score = parse_grade(g.text)
                verdicts.append(JudgeVerdict(score, parse_rationale(g.text), g.text))
                cost.prompt_tokens += int(g.prompt_tokens)
                cost.output_tokens += int(g.output_tokens)
            if self.progress is not None:
                self.progress(len(verdicts), len(convs))
        if len(verdicts) != len(items):
            raise RuntimeError(f"the judge returned {len(verdicts)} replies for {len(items)}")
        cost.verdicts = len(verdicts)
        cost.unparsed = sum(v.score is None for v in verdicts)
        self.verdicts, self.cost = verdicts, cost
        return [v.score for v in verdicts]


def judge_model_config(run_models: ModelConfig, config: JudgeConfig) -> ModelConfig:
    """The ModelConfig the judge loads: the run's, with the judge's model and engine put in.

    An empty judge config gives the run's own ModelConfig, so the shared generator is reused.
    On the 'openai' engine `model` is the name sent to the server (a judge with its own
    base_url and no model takes the first model that server lists); in process it is the
    generator name.
    """
    data = run_models.to_dict()
    if (config.engine or config.base_url or config.api_key_env) and "engine" not in data:
        raise ConfigError(
            "judge.engine, judge.base_url and judge.api_key_env need the OpenAI-compatible "
            "engine, which this version's models section does not have"
        )
    engine = config.engine or data.get("engine", "transformers")
    if not engine_class(engine).in_process:
        data["engine"] = engine
        if config.base_url:  # another server: its own model list, not the run's model name
            data["base_url"], data["api_model"] = config.base_url, config.model
        elif config.model:
            data["api_model"] = config.model
        if config.api_key_env:
            data["api_key_env"] = config.api_key_env
    else:
        if "engine" in data:
            data["engine"] = engine
        if config.model:
            data["generator"] = config.model
    return ModelConfig.from_dict(data)


def load_judge(run_models: ModelConfig, config: JudgeConfig) -> Judge:
    """A judge over the shared generator that `config` names (loaded on first use)."""

    # The generator's own name: the model id a server answers with, or the local model's.
    return Judge(load_generator(judge_model_config(run_models, config)), config)


def attach_verdicts(judge: Judge, answers: list[Any], metric: str = "judge") -> JudgeCost:
    """Put the judge's latest verdicts into the scored answers' `details[metric]`; returns the
    judging cost as stored in the result's extras (apart from the strategy's own cost)."""
    if not answers:  # nothing was graded: the judge still holds an earlier strategy's verdicts
        return JudgeCost(judge.model_name)
    if len(judge.verdicts) != len(answers):
        raise RuntimeError(f"{len(judge.verdicts)} verdicts for {len(answers)} answers")
    for a, v in zip(answers, judge.verdicts, strict=True):
        a.details[metric] = v.to_dict()
    return judge.cost
