"""Metrics of the format and style tasks, and consistency over paraphrase groups.

Registered in the one metric registry (eval.metrics) with `tasks=`: a format or style run
scores them by default, a Q/A run when it names them. Each reads the run's TaskSpec from the
scoring item; a metric that does not apply to the task (field scores of a regex format, style
rules in a format run) scores None, as retrieval recall does for a closed-book strategy.

Consistency is a property of a group of questions, not of one: its score sits on the first
question of each group of two or more (None on the others and on lone questions), so its mean
is the share of groups and its bootstrap interval resamples groups.
"""

from __future__ import annotations

import json
import re
from typing import Any

from eval.metrics import ScoringItem, exact_match_score, f1_score, normalize_answer, register_metric

FORMAT = ("format",)
STYLE = ("style",)
BOTH = ("format", "style")


def value_text(value: Any) -> str:
    """A JSON value as the words it holds (strings as they are, lists and objects joined)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(value_text(v) for v in value)
    if isinstance(value, dict):
        return " ".join(value_text(v) for v in value.values())
    return json.dumps(value)


def _object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


def field_scores(prediction: str, gold: str) -> dict[str, tuple[float, float]]:
    """Each field of the gold JSON object -> (exact match, token F1) of the prediction's value
    for it (0, 0 when the prediction is not an object or lacks the field)."""
    gold_obj = _object(gold) or {}
    pred_obj = _object(prediction) or {}
    out = {}
    for key, want in gold_obj.items():
        if key not in pred_obj:
            out[key] = (0.0, 0.0)
            continue
        got, ref = value_text(pred_obj[key]), value_text(want)
        out[key] = (exact_match_score(got, ref), f1_score(got, ref))
    return out


def content(task: Any, text: str) -> str | None:
    """The free-text content of an answer: a JSON answer's values, a styled answer without its
    citation and closing; None for an answer that breaks the format."""
    if task is None or task.kind == "qa":
        return text
    if task.kind == "format":
        if not task.valid(text):
            return None
        return value_text(json.loads(text)) if task.is_json else text
    style = task.style
    for pattern in (style.citation, style.closing) if style else ():
        if pattern:
            text = re.sub(pattern, " ", text)
    return text


def _gold_content(task: Any, gold: str) -> str:
    if task is not None and task.is_json:
        obj = _object(gold)
        return value_text(obj) if obj is not None else gold
    return gold


def _applies(item: ScoringItem, kinds: tuple[str, ...]) -> bool:
    return item.task is not None and item.task.kind in kinds


@register_metric(
    "format_valid",
    "Valid format",
    tasks=FORMAT,
    headline=True,
    help="1 if the answer follows the format: validates against the JSON Schema, or matches "
    "the regular expression.",
)
def format_valid(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
    return [float(it.task.valid(it.prediction)) if _applies(it, FORMAT) else None for it in items]


def _field_metric(which: int):
    def batched(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
        out: list[float | None] = []
        for it in items:
            if not (_applies(it, FORMAT) and it.task.is_json):
                out.append(None)
                continue
            best = 0.0
            for gold in it.golds:
                scores = field_scores(it.prediction, gold)
                if scores:
                    best = max(best, sum(s[which] for s in scores.values()) / len(scores))
            out.append(best)
        return out

    return batched


register_metric(
    "field_em",
    "Field EM",
    tasks=FORMAT,
    help="JSON format: exact match of each field of the gold object, mean over its fields "
    "(best gold answer).",
)(_field_metric(0))
register_metric(
    "field_f1",
    "Field F1",
    tasks=FORMAT,
    headline=True,
    help="JSON format: token F1 of each field of the gold object, mean over its fields "
    "(best gold answer).",
)(_field_metric(1))


@register_metric(
    "content_f1",
    "Content F1",
    tasks=BOTH,
    headline=True,
    help="Token F1 of the answer's content with the best gold answer's: the values of a JSON "
    "answer, a styled answer without its citation and closing; 0 for an answer that breaks the "
    "format.",
)
def content_f1(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
    out: list[float | None] = []
    for it in items:
        if not _applies(it, BOTH):
            out.append(None)
            continue
        got = content(it.task, it.prediction)
        if got is None:
            out.append(0.0)
            continue
        out.append(max(f1_score(got, _gold_content(it.task, g)) for g in it.golds))
    return out


def _style_checks(item: ScoringItem) -> dict[str, bool] | None:
    if not _applies(item, STYLE) or item.task.style is None:
        return None
    return item.task.style.checks(item.prediction)


@register_metric(
    "style_pass",
    "Style pass",
    tasks=STYLE,
    headline=True,
    help="1 if the answer keeps every rule of the style file.",
)
def style_pass(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
    out: list[float | None] = []
    for it in items:
        checks = _style_checks(it)
        out.append(None if checks is None else float(all(checks.values())))
    return out


@register_metric(
    "style_content_f1",
    "Content F1, style kept",
    tasks=STYLE,
    help="Content F1 of an answer that keeps every rule of the style file, 0 for one that "
    "breaks a rule: what tuning maximises in a style run.",
)
def style_content_f1(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
    kept = style_pass(items)
    f1s = content_f1(items)
    return [None if k is None else k * (f or 0.0) for k, f in zip(kept, f1s, strict=True)]


# What an arm's search maximises per validation answer: the task's right answer, graded. For
# format and style the content of an answer that breaks the form scores 0, so a search cannot
# buy facts with the format (plain F1 against a styled or JSON gold rewards dropping the form).
TUNING_METRIC = {"qa": "f1", "format": "content_f1", "style": "style_content_f1"}


def tuning_metric(task: Any) -> str:
    """The metric an arm's settings are tuned on in a run of `task` (None: factual Q/A)."""
    return TUNING_METRIC[task.kind if task is not None else "qa"]


def _rule_metric(rule: str):
    def batched(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
        out: list[float | None] = []
        for it in items:
            checks = _style_checks(it)
            out.append(None if checks is None or rule not in checks else float(checks[rule]))
        return out

    return batched


_RULE_LABELS = {
    "max_words": "Style: length",
    "required": "Style: required",
    "forbidden": "Style: forbidden",
    "max_grade": "Style: reading level",
    "closing": "Style: closing",
    "citation": "Style: citation",
}
for _rule, _label in _RULE_LABELS.items():
    register_metric(
        f"style_{_rule}",
        _label,
        tasks=STYLE,
        help=f"1 if the answer keeps the style file's {_rule} rule (none when it sets no such "
        "rule).",
    )(_rule_metric(_rule))


def consistency_key(task: Any, text: str) -> str:
    """What two answers of one group must share to agree: the normalised content (of each
    JSON field apart), or the normalised text of an answer that breaks the format."""
    if task is not None and task.is_json and task.valid(text):
        obj = json.loads(text)
        return json.dumps(
            {k: normalize_answer(value_text(v)) for k, v in obj.items()}, sort_keys=True
        )
    got = content(task, text)
    return normalize_answer(text if got is None else got)


def _by_group(items: list[ScoringItem]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        if it.group:
            groups.setdefault(it.group, []).append(i)
    return {g: members for g, members in groups.items() if len(members) > 1}


def group_scores(items: list[ScoringItem], agree) -> list[float | None]:
    """`agree(members)` (1 or 0) on the first item of each group of two or more, None elsewhere."""
    out: list[float | None] = [None] * len(items)
    for members in _by_group(items).values():
        out[members[0]] = float(agree([items[i] for i in members]))
    return out


@register_metric(
    "consistency",
    "Consistency",
    tasks=BOTH,
    headline=True,
    help="Share of paraphrase groups (the Q/A file's 'group', else near-duplicate questions) "
    "whose answers agree after normalisation; interval over groups. Scored for a Q/A run when "
    "named.",
)
def consistency(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
    return group_scores(
        items, lambda g: len({consistency_key(it.task, it.prediction) for it in g}) == 1
    )


@register_metric(
    "format_consistency",
    "Format consistency",
    tasks=FORMAT,
    help="Share of paraphrase groups whose answers are all valid or all invalid.",
)
def format_consistency(items: list[ScoringItem], _r: Any = None) -> list[float | None]:
    if not any(_applies(it, FORMAT) for it in items):
        return [None] * len(items)
    return group_scores(items, lambda g: len({it.task.valid(it.prediction) for it in g}) == 1)
