"""Which models and adapters a browser user may name: bundled aliases, the app's home, and an
operator's allow-list (`<home>/allowed_paths.yaml`).

A model or adapter field typed in the browser is a path on the server: unchecked, it loads any
folder the app can read (or, with an adapter search, walks the whole file system) and any hub id
(a download). The operator opens more with a YAML file of AllowList fields, for example:

    paths: [/srv/models, /data/adapters]   # folders whose contents users may name
    allow_hub_ids: false                   # true: Hugging Face ids too (needs a reachable hub)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.config import ConfigBase, ConfigError, check, option
from core.paths import is_within

ALLOW_FILE = "allowed_paths.yaml"
# owner/name as on the Hugging Face hub (a single name is an old-style id, refused as ambiguous)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


class LocationRefused(ValueError):
    """A model or adapter location this server does not let users name; says why."""


@dataclass
class AllowList(ConfigBase):
    paths: list[str] = option([], "Folders whose models and adapters users may name.")
    allow_hub_ids: bool = option(False, "Let users name Hugging Face hub ids (owner/name).")

    def validate(self) -> None:
        check(isinstance(self.paths, list), "paths must be a list of folders")
        check(all(isinstance(p, str) and p for p in self.paths), "paths must be folder names")
        check(isinstance(self.allow_hub_ids, bool), "allow_hub_ids must be true or false")


def load_allowlist(home: str | Path) -> AllowList:
    """The operator's allow-list from `<home>/allowed_paths.yaml`, or the default (nothing
    beyond the bundled models and the home). Raises ConfigError naming a broken file."""
    path = Path(home) / ALLOW_FILE
    if not path.is_file():
        return AllowList()
    try:
        return AllowList.from_yaml(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from e


def check_location(
    value: str,
    *,
    home: str | Path,
    aliases: Iterable[str] = (),
    allow: AllowList | None = None,
    what: str = "model",
) -> str:
    """`value` if a browser user may name it, else LocationRefused with the reason.

    Accepted: one of `aliases` (the bundled names) as it is; an existing path (`~` expanded,
    links resolved) inside `home` or one of the allow-list's folders, returned resolved; a hub
    id `owner/name` only when the allow-list has `allow_hub_ids: true`.
    """
    allow = allow or AllowList()
    text = str(value or "").strip()
    if not text:
        raise LocationRefused(f"name a {what}")
    if text in set(aliases):
        return text
    path = Path(text).expanduser()
    roots = [Path(home), *(Path(p).expanduser() for p in allow.paths)]
    if path.exists():
        if any(is_within(path, root) for root in roots):
            return str(path.resolve())
        raise LocationRefused(
            f"{what} {text!r} is outside the folders this server allows "
            f"(the app's data folder and {ALLOW_FILE})"
        )
    if _HUB_ID.match(text) and not text.startswith((".", "~", "/")):
        if allow.allow_hub_ids:
            return text
        raise LocationRefused(
            f"{what} {text!r} looks like a Hugging Face id; this server does not download "
            f"models (allow_hub_ids in {ALLOW_FILE})"
        )
    known = ", ".join(sorted(aliases))
    raise LocationRefused(f"no {what} {text!r} here" + (f" (bundled: {known})" if known else ""))


def check_model(value: str, kind: str, home: str | Path, allow: AllowList | None = None) -> str:
    """check_location for a generator (`kind="generator"`) or an embedder field, with the
    bundled aliases of that kind."""
    from core.models import BUNDLED_EMBEDDERS, BUNDLED_GENERATORS

    aliases = BUNDLED_GENERATORS if kind == "generator" else BUNDLED_EMBEDDERS
    return check_location(value, home=home, aliases=aliases, allow=allow, what=kind)
