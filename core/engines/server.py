"""The OpenAI-compatible engine: a generator that answers through a model server's chat API.

`OpenAIGenerator` meets the `Generator` contract (core.engines.base) as the in-process engine does,
registered as `openai`, so a run switches engine by config alone (`models.engine: openai`).
Standard library only (urllib + threads): no client package to install. Token counts come from
the server's `usage`; latency is measured per request.

Prompt-side budgets (few-shot packing, chunking) need a tokenizer: the local one named by
`models.generator` when given (the same model the server runs, ideally). Without one, `tokenizer`
is None, chunking falls back to whitespace words and `count_tokens` estimates 4/3 token per word.

Fine-tuned arms: training always runs in-process on the transformers model; the adapter is then
served by the server when it can load adapters at runtime (vLLM with
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`: `POST /v1/load_lora_adapter`, then the adapter's name as
`model`). `adapter_problem()` says before a run when it cannot.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import email.utils
import hashlib
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from core.config import ModelConfig
from core.engines.base import Generation, register_engine
from core.engines.in_process import (
    ModelLoadError,
    TransformersGenerator,
    load_tokenizer,
    resolve_device,
)
from core.untrusted.http_client import (
    RedirectRefused,
    ReplyTooLarge,
    open_url,
    read_capped,
    status_text,
)

_LOCK = threading.Lock()
_ENGINES: dict[tuple, OpenAIGenerator] = {}
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


class EngineError(ModelLoadError):
    """A model server could not be reached or refused a request; the message names the URL."""


@dataclass
class ServerInfo:
    """What the server says about itself (`GET /models`, plus `/version` where offered)."""

    base_url: str
    model_id: str  # the model answers are asked of (configured, or the first listed)
    models: list[str] = field(default_factory=list)
    owned_by: str = ""  # vLLM says "vllm"; llama-cpp-python says "me"
    version: str | None = None

    @property
    def kind(self) -> str:
        """'vllm' when the server identifies as vLLM, else 'openai-compatible'."""
        return "vllm" if self.owned_by == "vllm" else "openai-compatible"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "kind": self.kind}


@register_engine("openai")
class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible server: the `Generator` contract of
    core.engines.base, as the in-process engine meets it.

    Requests run `concurrency` at a time; connection errors, timeouts, 429 and 5xx are retried
    up to `retries` times with exponential backoff (honouring `Retry-After`). Greedy decoding
    (temperature 0) as the in-process engine.
    """

    in_process: ClassVar[bool] = False  # no local weights to count or move

    def __init__(self, config: ModelConfig, backoff_s: float = 0.5):
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.backoff_s = backoff_s
        self.lock = threading.RLock()
        self._info: ServerInfo | None = None
        self._tokenizer: Any = None
        self._train_gen: Any = None  # the in-process Generator, once training needs it
        self._served: dict[str, str] = {}  # adapter name -> folder the server loaded it from
        self._paths: dict[str, Path] = {}  # adapter name -> saved folder (load_adapter)

    @classmethod
    def load(cls, config: ModelConfig) -> OpenAIGenerator:
        """The shared server-backed generator for `config`; checks the server answers first."""
        return load_engine(config)

    # --- identity ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model id the server answers with."""
        return self.server_info().model_id

    @property
    def device(self) -> str:
        """Where in-process work (training an adapter) runs; generation runs on the server."""
        return resolve_device(self.config.device)

    def server_info(self, refresh: bool = False) -> ServerInfo:
        """The server's model list, the model used and any version it reports (cached)."""
        if self._info is None or refresh:
            listed = self._request("GET", "/models")
            data = listed.get("data") or []
            ids = [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]
            model = self.config.api_model or (ids[0] if ids else "")
            if not model:
                raise EngineError(
                    f"{self.base_url}/models lists no model; set models.api_model to the name "
                    "the server expects"
                )
            owned = next((str(m.get("owned_by", "")) for m in data if m.get("id") == model), "")
            self._info = ServerInfo(self.base_url, model, ids, owned, self._version())
        return self._info

    def _version(self) -> str | None:
        # vLLM serves GET /version at the root (beside /v1); others answer 404 and have none.
        root = self.base_url.removesuffix("/v1")
        try:
            with open_url(root + "/version", timeout=5) as r:
                return str(json.loads(read_capped(r, 65536) or b"{}").get("version") or "") or None
        except (OSError, ValueError, AttributeError):
            return None

    # --- tokens ------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The local tokenizer named by `models.generator`, or None when none is configured."""
        if self._train_gen is not None:  # padding set up for training, as Generator's is
            return self._train_gen.tokenizer
        if self._tokenizer is None and self.config.generator:
            self._tokenizer = load_tokenizer(self.config)
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` by the local tokenizer; without one, 4/3 per whitespace word."""
        tok = self.tokenizer
        if tok is None:
            return (len(text.split()) * 4 + 2) // 3
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: list[dict[str, str]], answer: str | None = None) -> str:
        """Chat-template `messages` with the local tokenizer (training data); see Generator."""
        return self._trainer().render(messages, answer)

    # --- generation --------------------------------------------------------------------------
    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        max_new_tokens: int = 32,
        adapter: str | None = None,
    ) -> list[Generation]:
        """Greedy completions for chat conversations, `concurrency` requests at a time."""
        if not conversations:
            return []
        model = self._serve(adapter) if adapter is not None else self.name
        workers = min(int(self.config.concurrency), len(conversations))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda m: self._complete(m, max_new_tokens, model), conversations))

    def _complete(self, messages: list[dict[str, str]], max_new_tokens: int, model: str):
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": int(max_new_tokens),
            "temperature": 0.0,
            "stream": False,
        }
        start = time.perf_counter()
        reply = self._request("POST", "/chat/completions", body)
        latency = time.perf_counter() - start
        try:
            choice = reply["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            # The reply itself is not quoted: it is whatever answered at that address.
            raise EngineError(
                f"{self.base_url}/chat/completions returned no choices[0].message (not an "
                "OpenAI-style chat completion; the reply is not shown)"
            ) from e
        usage = reply.get("usage") or {}
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency,
            truncated=choice.get("finish_reason") == "length",  # OpenAI's word for max_tokens
        )

    # --- HTTP --------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        env = self.config.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise EngineError(
                    f"models.api_key_env names {env!r}, but that environment variable is not "
                    f"set (needed for {self.base_url})"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(
        self, method: str, path: str, body: dict | None = None, json_reply: bool = True
    ) -> dict[str, Any]:
        """One JSON request, retried on connection errors, timeouts, 429 and 5xx.

        With `json_reply=False` the reply is plain text (vLLM's adapter endpoints), returned
        as {"text": ...}.
        """
        url = self.base_url + path
        data = json.dumps(body).encode() if body is not None else None
        attempts = int(self.config.retries) + 1
        for attempt in range(attempts):
            req = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            wait: float | None = None
            try:
                with open_url(req, timeout=float(self.config.timeout_s)) as r:
                    try:
                        raw = read_capped(r)
                    except ReplyTooLarge as e:
                        raise EngineError(f"{method} {url}: {e}") from e
                if not json_reply:
                    return {"text": raw.decode("utf-8", "replace")}
                try:
                    return json.loads(raw or b"{}")
                except ValueError as e:
                    raise EngineError(f"{method} {url}: the reply is not JSON") from e
            except urllib.error.HTTPError as e:
                detail = _error_text(e)
                if e.code not in RETRY_STATUS or attempt == attempts - 1:
                    raise EngineError(
                        f"{method} {url} failed with HTTP {e.code}"
                        + (f" after {attempt + 1} attempts" if attempt else "")
                        + f": {detail}"
                        + _hint(e.code, self.config)
                    ) from e
                wait = _retry_after(e.headers.get("Retry-After"))
            except RedirectRefused as e:  # never followed: it would carry the key elsewhere
                raise EngineError(f"{method} {e}") from e
            except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                if attempt == attempts - 1:
                    raise EngineError(
                        f"cannot reach the model server at {url} ({reason}) after "
                        f"{attempts} attempt(s); is it running? Check models.base_url."
                    ) from e
            delay = wait if wait is not None else self.backoff_s * 2**attempt
            # Jitter keeps concurrent requests from retrying in lockstep.
            delay = min(MAX_BACKOFF_S, delay) * (1 + 0.1 * random.random())
            time.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    # --- adapters ----------------------------------------------------------------------------
    @property
    def serves_adapters(self) -> bool:
        """Whether the server can load a LoRA adapter at runtime (vLLM) and a local model to
        train it on is configured."""
        return bool(self.config.generator) and self.server_info().kind == "vllm"

    def _trainer(self):
        """The in-process transformers generator that trains adapters (loaded on first use)."""
        if not self.config.generator:
            raise EngineError(
                "the openai engine has no local model (models.generator is empty): training "
                "and chat templating need one"
            )
        self._train_gen = TransformersGenerator.load(self.config)
        return self._train_gen

    def parameter_count(self) -> int | None:
        """None: the weights answering are the server's, not in this process."""
        return None

    def server_details(self) -> dict[str, Any] | None:
        """The server's own account: its URL, the model id it answers with, its version."""
        return self.server_info().to_dict()

    def adapter_problem(self) -> str | None:
        """Why a trained adapter cannot be served here (no local model to train it on, or a
        server that cannot load adapters at runtime), or None."""
        if not self.config.generator:
            return (
                f"the server at {self.base_url} has no local model to train an adapter on: set "
                "models.generator to the model the server runs"
            )
        info = self.server_info()
        if info.kind != "vllm":
            return (
                f"the server at {self.base_url} ({info.model_id}) cannot load LoRA adapters at "
                "runtime; fine-tuned arms need vLLM started with --enable-lora and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or models.engine=transformers"
            )
        return None

    def _require_adapters(self) -> None:
        problem = self.adapter_problem()
        if problem:
            raise EngineError(problem)

    @property
    def model(self) -> Any:
        """The in-process base model adapters are trained on (loads it)."""
        return self._trainer().model

    @property
    def peft_model(self) -> Any:
        return self._trainer().peft_model

    def attach_adapter(self, name: str, peft_config: Any) -> Any:
        """Train-side: a fresh adapter on the in-process model (served after training)."""
        self._require_adapters()
        self._forget(name)
        return self._trainer().attach_adapter(name, peft_config)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load a saved peft adapter in-process and have the server serve it under `name`."""
        self._require_adapters()
        self._forget(name)
        self._trainer().load_adapter(name, path)
        self._paths[name] = Path(path)

    def detach_adapter(self, name: str) -> None:
        """Drop adapter `name` in-process and on the server."""
        if self.config.generator:
            self._trainer().detach_adapter(name)
        self._forget(name)

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[Any]:
        """The in-process model with `adapter` active (for training-side code)."""
        with self._trainer().using(adapter) as model:
            yield model

    def _forget(self, name: str) -> None:
        self._paths.pop(name, None)
        if self._served.pop(name, None) is not None:
            with contextlib.suppress(EngineError):
                self._request("POST", "/unload_lora_adapter", {"lora_name": name}, json_reply=False)

    def _serve(self, name: str) -> str:
        """Make the server hold adapter `name` (saving it from memory first); its model name."""
        with self.lock:
            if name in self._served:
                return name
            self._require_adapters()
            folder = self._paths.get(name) or self._save_trained(name)
            self._request(
                "POST",
                "/load_lora_adapter",
                {"lora_name": name, "lora_path": str(folder)},
                json_reply=False,
            )
            self._served[name] = str(folder)
            return name

    def _save_trained(self, name: str) -> Path:
        trainer = self._trainer()
        if trainer.peft_model is None or name not in trainer._adapters:
            raise KeyError(f"no adapter {name!r} attached")
        key = hashlib.sha256(f"{self.base_url}:{name}".encode()).hexdigest()[:10]
        out = Path(self.config.cache_dir) / "served-adapters" / f"{name}-{key}"
        trainer.peft_model.save_pretrained(str(out), selected_adapters=[name])
        found = sorted(out.rglob("adapter_config.json"))  # peft nests non-default names
        return (found[0].parent if found else out).resolve()


def adapter_support_problem(generator: Any) -> str | None:
    """Why trained strategies cannot run on this generator's engine, or None when they can."""
    return generator.adapter_problem()


def load_engine(config: ModelConfig) -> OpenAIGenerator:
    """The shared server-backed generator for `config`; checks the server answers first."""
    key = (
        config.engine,
        config.base_url.rstrip("/"),
        config.api_model,
        config.api_key_env,
        int(config.concurrency),
        float(config.timeout_s),
        int(config.retries),
        config.generator,
        config.device,
        config.cache_dir,
    )
    with _LOCK:
        if key not in _ENGINES:
            gen = OpenAIGenerator(config)
            gen.server_info()  # fail now, naming the URL, not in the middle of a run
            _ENGINES[key] = gen
        return _ENGINES[key]


def _error_text(e: urllib.error.HTTPError) -> str:
    # The status only: the body is whatever the server (or a service behind it) wrote.
    return status_text(e)


def _hint(code: int, config: ModelConfig) -> str:
    if code in (401, 403):
        return (
            f"; the server wants an API key: put it in an environment variable and name that "
            f"variable in models.api_key_env (now {config.api_key_env or 'empty'!r})"
        )
    if code == 404:
        return "; check models.base_url (it usually ends in /v1) and models.api_model"
    return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
