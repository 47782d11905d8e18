"""Task kinds beyond factual Q/A: answers in a given format, or in a house style.

A run's `task` is `qa` (today's factual questions), `format` (each answer must follow a JSON
Schema or, for plain text, a regular expression) or `style` (each answer must keep checkable
rules read from a small YAML file). A `TaskSpec` is what every layer shares about the task:
the instruction the system prompt carries, how an answer is read out of a generation, the
formatted target a shot shows and LoRA trains on, and whether an answer keeps the format or
the rules. It is loaded once, checked before a run starts, and stored with the run so stored
answers can be scored again without the files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import regex  # a user's patterns run with a time limit, which the stdlib `re` has not
import yaml

from core.prompts import CONTEXT_INSTRUCTION
from core.types import QAPair

TASK_KINDS = ("qa", "format", "style")
MAX_TASK_FILE_BYTES = 256_000  # a schema or style file is a few hundred bytes; refuse a dump
MAX_PATTERN_CHARS = 2_000  # a format pattern, closing or citation rule, typed or uploaded
# A pattern from a browser can backtrack for hours on one answer ("(a|aa)+$"); a match that
# takes longer than this counts as no match, so the answer is scored invalid, not the run hung.
MATCH_TIMEOUT_S = 0.5


class TaskFileError(ValueError):
    """A schema, pattern or style file cannot be used; the message names the file, the line
    (where known) and the reason."""


# --- style rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StyleRules:
    """A house style as checkable rules; a rule left at its default is not checked."""

    max_words: int | None = None  # most words in an answer
    required: tuple[str, ...] = ()  # phrases every answer must contain (case-insensitive)
    forbidden: tuple[str, ...] = ()  # phrases no answer may contain (case-insensitive)
    max_grade: float | None = None  # highest Flesch-Kincaid grade level allowed
    closing: str = ""  # a regular expression the answer must end with
    citation: str = ""  # a regular expression that must occur somewhere in the answer
    rubric: str = ""  # free text for the judge model; not checked by rule
    example: str = ""  # how a gold answer is written in the style: "{answer} (Source: {source})"

    # The rules `checks` scores, in this order (rubric and example are not rules).
    RULES = ("max_words", "required", "forbidden", "max_grade", "closing", "citation")

    def active(self) -> list[str]:
        """The rules this style sets."""
        return [r for r in self.RULES if getattr(self, r) not in (None, (), "")]

    def checks(self, text: str) -> dict[str, bool]:
        """Each set rule -> whether `text` keeps it."""
        low = text.lower()
        out: dict[str, bool] = {}
        for rule in self.active():
            if rule == "max_words":
                out[rule] = len(text.split()) <= int(self.max_words)
            elif rule == "required":
                out[rule] = all(p.lower() in low for p in self.required)
            elif rule == "forbidden":
                out[rule] = not any(p.lower() in low for p in self.forbidden)
            elif rule == "max_grade":
                out[rule] = flesch_kincaid_grade(text) <= float(self.max_grade)
            elif rule == "closing":
                out[rule] = user_match(f"(?:{self.closing})\\s*$", text)
            else:
                out[rule] = user_match(self.citation, text)
        return out

    def instruction(self) -> str:
        """The rules in words, for the system prompt."""
        lines = []
        if self.max_words:
            lines.append(f"Use at most {self.max_words} words.")
        if self.required:
            lines.append("Always include: " + "; ".join(f'"{p}"' for p in self.required) + ".")
        if self.forbidden:
            lines.append("Never write: " + "; ".join(f'"{p}"' for p in self.forbidden) + ".")
        if self.max_grade is not None:
            lines.append(f"Write plainly (reading grade {self.max_grade:g} or below).")
        if self.example:
            lines.append("Write each answer like this: " + self.example)
        elif self.citation or self.closing:
            lines.append("End each answer with its source, as the examples do.")
        return " ".join(lines)


# A word's syllables: its groups of vowels, a silent final "e" dropped, at least one. The
# textstat package (0.7.13) needs NLTK's cmudict downloaded at first use, which an offline
# machine cannot do, so the grade is computed here with the usual vowel-group estimate.
_VOWELS = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    """Estimated syllables of one word (vowel groups; a silent final 'e' dropped)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 0
    n = len(_VOWELS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee")) and n > 1:
        n -= 1
    return max(1, n)


def flesch_kincaid_grade(text: str) -> float:
    """Flesch-Kincaid grade level: 0.39 words/sentence + 11.8 syllables/word - 15.59 (0 for
    text without words)."""
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]*", text)]
    if not words:
        return 0.0
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text.strip())))
    syl = sum(syllables(w) for w in words)
    return 0.39 * len(words) / sentences + 11.8 * syl / len(words) - 15.59


# --- the task --------------------------------------------------------------------------------


@dataclass
class TaskSpec:
    """What a run asks for beyond the facts: the kind, and its schema, pattern or style."""

    kind: str = "qa"
    schema: dict[str, Any] | None = None
    pattern: str = ""
    style: StyleRules | None = None
    source: str = ""  # the file the schema or style was read from (for messages)
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_json(self) -> bool:
        return self.kind == "format" and self.schema is not None

    @property
    def min_new_tokens(self) -> int:
        """The fewest generated tokens an answer of this kind needs: a JSON object or a styled
        sentence cut at 32 tokens would fail the format for want of room, not of skill."""
        return {"format": 96, "style": 96}.get(self.kind, 0)

    def instruction(self) -> str:
        """What the system prompt adds for this task ('' for qa)."""
        if self.is_json:
            schema = json.dumps(self.schema, ensure_ascii=False, separators=(",", ":"))
            fields = ", ".join(f'"{k}"' for k in (self.schema.get("properties") or {}))
            return (
                "Reply with one JSON object only, no other text"
                + (f", with the fields {fields}" if fields else "")
                + f". It must validate against this JSON Schema: {schema}"
            )
        if self.kind == "format":
            return f"Reply with one line matching this regular expression: {self.pattern}"
        if self.kind == "style":
            return self.style.instruction() if self.style else ""
        return ""

    def context_instruction(self) -> str:
        """The line before retrieved passages: the task's format survives the passages."""
        if self.kind == "format":
            return "Read the passages and answer the question in the required format."
        if self.kind == "style":
            return "Read the passages and answer the question in the house style."
        return CONTEXT_INSTRUCTION

    def extract(self, raw: str, cleaned: str) -> str:
        """The answer in a generation `raw` (`cleaned`: the Q/A clean-up of it).

        JSON: the first JSON object in it, re-serialised (code fences and chatter around it
        dropped), else the text as it is (and invalid). Pattern: the cleaned first line. Style:
        the whole reply, since the rules (length, closing) read all of it."""
        if self.is_json:
            obj = first_json_object(raw)
            return json.dumps(obj, ensure_ascii=False) if obj is not None else raw.strip()
        if self.kind == "style":
            return raw.strip()
        return cleaned

    def valid(self, text: str) -> bool:
        """Whether `text` follows the format (True for kinds without one)."""
        if self.is_json:
            try:
                obj = json.loads(text)
            except (json.JSONDecodeError, TypeError):
                return False
            return self.validator().is_valid(obj)
        if self.kind == "format":
            return user_match(self.pattern, text.strip(), whole=True)
        return True

    def validator(self):
        if self._validator is None:
            cls = jsonschema.validators.validator_for(self.schema)
            self._validator = _bounded(cls)(self.schema)
        return self._validator

    def target(self, pair: QAPair) -> str:
        """The answer a shot shows and LoRA trains on: the gold answer, formatted.

        A JSON gold stays as it is; a text answer (pairs LoRA generates from the corpus) is put
        into the schema's `answer`/`source`/`quote` fields when that validates; a style's
        `example` template writes the gold answer in the style."""
        first = pair.answers[0]
        if self.is_json and first_json_object(first) is None:
            props = self.schema.get("properties") or {}
            values = {"answer": first, "source": pair.source or "", "quote": pair.passage or ""}
            obj = {k: v for k, v in values.items() if k in props}
            made = json.dumps(obj, ensure_ascii=False)
            return made if obj and self.valid(made) else first
        if self.kind == "style" and self.style and self.style.example:
            return self.style.example.replace("{answer}", first).replace(
                "{source}", (pair.source or "the documents").rsplit(".", 1)[0]
            )
        return first

    def answer_phrases(self, answer: str) -> list[str]:
        """The words of gold answer `answer` to look for in a passage (which passage holds the
        answer, whether a retrieved chunk does): the answer itself, or for a JSON gold the
        string values of its fields, longest first. A field the schema limits to `enum` or
        `const` values is a label (a document's name, a category) that any passage of the
        document may hold, so it is left out while a free-text field remains."""
        obj = first_json_object(answer) if self.is_json else None
        if obj is None:
            return [answer]
        props = self.schema.get("properties") or {}

        def label(key: str) -> bool:
            spec = props.get(key)
            return isinstance(spec, dict) and ("enum" in spec or "const" in spec)

        free = [t for k, v in obj.items() if not label(k) for t in _strings(v)]
        phrases = {t.strip() for t in free or [t for v in obj.values() for t in _strings(v)]}
        return sorted((t for t in phrases if t), key=len, reverse=True) or [answer]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "schema": self.schema,
            "pattern": self.pattern,
            "style": asdict(self.style) if self.style else None,
            "source": self.source,
        }

    @staticmethod
    def from_dict(d: dict[str, Any] | None) -> TaskSpec | None:
        if not d:
            return None
        style = d.get("style")
        if style:
            style = StyleRules(
                **{
                    k: tuple(v) if isinstance(v, list) else v
                    for k, v in style.items()
                    if k in StyleRules.__dataclass_fields__
                }
            )
        return TaskSpec(
            d.get("kind", "qa"), d.get("schema"), d.get("pattern", ""), style, d.get("source", "")
        )


def _strings(value: Any) -> list[str]:
    """The texts a JSON value holds: strings and numbers, inside lists and objects too."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        return [str(value)]
    items = value.values() if isinstance(value, dict) else value
    return [t for v in items for t in _strings(v)]


def gold_phrases(task: TaskSpec | None, answers: Iterable[str]) -> list[str]:
    """Every gold answer of a pair as the phrases a passage holding it contains
    (TaskSpec.answer_phrases; the answers as they are for a Q/A run)."""
    if task is None:
        return list(answers)
    return [t for a in answers for t in task.answer_phrases(a)]


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (a reply may wrap it in a code fence), or None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            start = text.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            return obj
        start = text.find("{", start + 1)
    return None


# --- reading the task's files ----------------------------------------------------------------


def _read(path: str | Path, what: str) -> tuple[str, str]:
    p = Path(path)
    if not p.is_file():
        raise TaskFileError(f"{what} file not found: {p}")
    if p.stat().st_size > MAX_TASK_FILE_BYTES:
        raise TaskFileError(f"{p.name}: over {MAX_TASK_FILE_BYTES:,} bytes; not a {what} file")
    try:
        return p.name, p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{p.name}: not UTF-8 text ({e.reason} at byte {e.start})") from e


def load_schema(path: str | Path) -> dict[str, Any]:
    """A JSON Schema file, checked against its metaschema. Raises TaskFileError naming the
    line (bad JSON) or the place in the schema (not a valid schema)."""
    name, text = _read(path, "schema")
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{name} line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(schema, dict):
        raise TaskFileError(f"{name} line 1: a JSON Schema must be an object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        where = e.json_path if e.path else "the top level"
        raise TaskFileError(f"{name}: not a valid JSON Schema at {where}: {e.message}") from None
    return schema


def check_pattern(pattern: str) -> str:
    """`pattern` when it compiles as a regular expression, else TaskFileError."""
    problem = pattern_problem(pattern)
    if problem:
        raise TaskFileError(f"format pattern {pattern[:80]!r}: {problem}")
    return pattern


def pattern_problem(pattern: str) -> str:
    """Why `pattern` cannot be a user's rule ("" when it can): too long, or not a regular
    expression."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"{len(pattern):,} characters, more than {MAX_PATTERN_CHARS:,}"
    try:
        regex.compile(pattern)
    except regex.error as e:
        return f"not a regular expression ({e})"
    return ""


def user_match(pattern: str, text: str, whole: bool = False) -> bool:
    """Whether `text` matches a user's `pattern` (whole: all of it); a match that outlasts
    MATCH_TIMEOUT_S counts as none."""
    find = regex.fullmatch if whole else regex.search
    try:
        return find(pattern, text, timeout=MATCH_TIMEOUT_S) is not None
    except TimeoutError:
        return False


def _bounded(cls: type) -> type:
    """JSON Schema validator class `cls` whose `pattern`, `patternProperties` and the
    pattern side of `additionalProperties` match with `user_match` (a schema is the user's)."""

    def pattern(validator, patrn, instance, schema):
        if validator.is_type(instance, "string") and not user_match(patrn, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator, patterns, instance, schema):
        if validator.is_type(instance, "object"):
            for patrn, sub in patterns.items():
                for key, value in instance.items():
                    if user_match(patrn, key):
                        yield from validator.descend(value, sub, path=key, schema_path=patrn)

    def additional_properties(validator, extra, instance, schema):
        if not validator.is_type(instance, "object"):
            return
        named, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
        extras = [
            k for k in instance if k not in named and not any(user_match(p, k) for p in patterns)
        ]
        if validator.is_type(extra, "object"):
            for key in extras:
                yield from validator.descend(instance[key], extra, path=key)
        elif not extra and extras:
            listed = ", ".join(repr(k) for k in sorted(extras))
            yield jsonschema.ValidationError(f"Additional properties are not allowed ({listed})")

    return jsonschema.validators.extend(
        cls,
        {
            "pattern": pattern,
            "patternProperties": pattern_properties,
            "additionalProperties": additional_properties,
        },
    )


def load_style(path: str | Path) -> StyleRules:
    """A style YAML file as StyleRules. Raises TaskFileError naming the line of an unknown rule
    or a value of the wrong kind."""
    name, text = _read(path, "style")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" line {line + 1}" if line is not None else ""
        raise TaskFileError(f"{name}{at}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise TaskFileError(f"{name} line 1: a style file is a mapping of rules")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    known = set(StyleRules.__dataclass_fields__)
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{name} line {lines.get(str(key), '?')}"
        if key not in known:
            raise TaskFileError(f"{where}: unknown rule {key!r}; known: {', '.join(sorted(known))}")
        values[key] = _style_value(key, value, where)
    rules = StyleRules(**values)
    if not rules.active():
        raise TaskFileError(f"{name}: no checkable rule ({', '.join(StyleRules.RULES)})")
    return rules


def _style_value(key: str, value: Any, where: str) -> Any:
    if key == "max_words":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TaskFileError(f"{where}: max_words must be a whole number >= 1")
        return value
    if key == "max_grade":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TaskFileError(f"{where}: max_grade must be a number")
        return float(value)
    if key in ("required", "forbidden"):
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise TaskFileError(f"{where}: {key} must be a list of phrases")
        return tuple(value)
    if not isinstance(value, str):
        raise TaskFileError(f"{where}: {key} must be text")
    if key in ("closing", "citation"):
        problem = pattern_problem(value)
        if problem:
            raise TaskFileError(f"{where}: {key} is {problem}")
    return value


def check_task_file(path: str | Path, kind: str) -> dict[str, str]:
    """Read and check an uploaded schema (`kind` "format") or style file ("style") as a run
    would; run in the bounded parser child (core.untrusted.sandbox) for files from a browser.
    Returns {"kind": kind}; raises TaskFileError naming the file, the line and the reason."""
    if kind == "format":
        load_schema(path)
    elif kind == "style":
        load_style(path)
    else:
        raise TaskFileError(f"the {kind!r} task takes no file")
    return {"kind": kind}


def load_task(kind: str, schema: str = "", pattern: str = "", style: str = "") -> TaskSpec:
    """The task a run's config names, its files read and checked. Raises TaskFileError."""
    if kind == "format":
        if schema:
            return TaskSpec("format", schema=load_schema(schema), source=Path(schema).name)
        if pattern:
            return TaskSpec("format", pattern=check_pattern(pattern))
        raise TaskFileError("a format task needs a JSON Schema file (--schema) or a pattern")
    if kind == "style":
        if not style:
            raise TaskFileError("a style task needs a style file (--style FILE.yaml)")
        return TaskSpec("style", style=load_style(style), source=Path(style).name)
    return TaskSpec(kind)


def gold_problem(task: TaskSpec, answer: str) -> str | None:
    """Why a gold answer does not follow the task's format (None when it does)."""
    if task.is_json:
        try:
            obj = json.loads(answer)
        except json.JSONDecodeError:
            return "the gold answer is not a JSON object"
        errors = sorted(task.validator().iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            at = f" at {e.json_path}" if e.path else ""
            return f"the gold answer does not validate against the schema{at}: {e.message}"
        return None
    if task.kind == "format" and not task.valid(answer):
        return f"the gold answer {answer[:60]!r} does not match the pattern {task.pattern!r}"
    return None
