"""The operator's settings files under the app home, read one way.

Each is a YAML mapping in `<home>/`: `server.yaml` (personal or shared mode, sign-in, admins),
`workspace.yaml` (private or team), `worker_limits.yaml`, `upload_limits.yaml` and
`cluster.yaml`. A missing file means the defaults; a broken one is an `OperatorFileError` that
names the file and the line, so the operator can fix it without guessing which of five files
(or which key) is wrong. Never typed in a browser: only the operator writes these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.config import ConfigBase, ConfigError

T = TypeVar("T", bound=ConfigBase)


class OperatorFileError(ConfigError):
    """An operator settings file that does not parse or holds a bad value (file and line said)."""


def operator_path(home: str | Path, name: str) -> Path:
    """Where the operator's settings file `name` lives under the app home."""
    return Path(home) / name


def _key_lines(text: str) -> dict[str, int]:
    """Top-level key -> its 1-based line, from the YAML node tree (values are not built)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.Node)}


def read_operator_yaml(home: str | Path, name: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping in `<home>/<name>` ({} when there is no file) and the line of each top-level
    key. Raises OperatorFileError, naming the file and line, for text that is not a YAML
    mapping."""
    path = operator_path(home, name)
    if not path.is_file():
        return {}, {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OperatorFileError(f"{path}: cannot be read ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise OperatorFileError(f"{path}{line}: {problem}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise OperatorFileError(f"{path}, line 1: expected a mapping such as 'key: value'")
    return data, _key_lines(text)


def load_operator(home: str | Path, name: str, cls: type[T]) -> T:
    """`cls` built from `<home>/<name>` (any subset of its fields), or `cls()` without the file.

    A bad value is an OperatorFileError naming the file and the line of the key it is about
    (the first key the message mentions; line 1 when it names none)."""
    data, lines = read_operator_yaml(home, name)
    try:
        return cls.from_dict(data)
    except (ValueError, TypeError) as e:  # ConfigError, float("abc"), a list for a number
        raise OperatorFileError(f"{operator_path(home, name)}{_where(str(e), lines)}: {e}") from e


def _where(message: str, lines: dict[str, int]) -> str:
    """', line N' of the first key named in `message` (longest names first: 'owner_jobs'
    before 'jobs'), else ', line 1' when the file has keys, else ''."""
    for key in sorted(lines, key=len, reverse=True):
        if key in message:
            return f", line {lines[key]}"
    return f", line {min(lines.values())}" if lines else ""
