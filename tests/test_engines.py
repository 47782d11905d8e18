"""The OpenAI-compatible engine's client logic (retries, backoff, errors, concurrency, adapters)
against a tiny local stub server. The end-to-end test with a real server is in
test_engines_server.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.config import ConfigError, ModelConfig
from core.engines.server import (
    EngineError,
    OpenAIGenerator,
    _retry_after,
    load_engine,
)
from strategies import unservable_strategies

CONV = [{"role": "user", "content": "What do B cells produce?"}]


class Stub:
    """A scripted OpenAI-style server: `script[path]` is a list of (status, body, headers) served
    in turn (the last one repeats); every request is recorded."""

    def __init__(self, owned_by: str = "me", delay_s: float = 0.0):
        self.script: dict[str, list[tuple[int, dict, dict]]] = {}
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = delay_s
        self.owned_by = owned_by
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _serve(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                status, reply, headers = stub.reply(method, self.path, dict(self.headers), body)
                text = isinstance(reply, str)  # vLLM answers its adapter endpoints in text
                raw = reply.encode() if text else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, method, path, headers, body):
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            if path == "/v1/models":
                data = [{"id": "stub-model", "object": "model", "owned_by": self.owned_by}]
                return 200, {"object": "list", "data": data}, {}
            queue = self.script.get(path)
            if queue:
                with self._lock:
                    step = queue.pop(0) if len(queue) > 1 else queue[0]
                return step
            if path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
                return 200, f"Success: {body['lora_name']}", {}
            if path == "/v1/chat/completions":
                return 200, completion(f"echo: {body['messages'][-1]['content']}"), {}
            return 404, {"error": {"message": f"no route {path}"}}, {}
        finally:
            with self._lock:
                self.in_flight -= 1

    def calls(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def completion(text: str, prompt: int = 11, out: int = 3) -> dict:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
    }


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def engine(url: str, **kw) -> OpenAIGenerator:
    """A fresh client (not the shared cache) that backs off in milliseconds."""
    cfg = ModelConfig(engine="openai", base_url=url, generator=kw.pop("generator", ""), **kw)
    return OpenAIGenerator(cfg, backoff_s=0.01)


def test_answers_carry_server_usage_and_latency(stub):
    gen = engine(stub.url)
    [g] = gen.generate([CONV], max_new_tokens=7)
    assert g.text == "echo: What do B cells produce?"
    assert (g.prompt_tokens, g.output_tokens) == (11, 3)
    assert g.latency_s is not None and g.latency_s > 0
    body = stub.calls("/v1/chat/completions")[0]["body"]
    assert body["model"] == "stub-model"  # the first listed model when api_model is empty
    assert body["max_tokens"] == 7 and body["temperature"] == 0.0
    assert body["messages"] == CONV


def test_retries_500_then_429_then_succeeds(stub):
    stub.script["/v1/chat/completions"] = [
        (500, {"error": {"message": "boom"}}, {}),
        (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
        (200, completion("fine"), {}),
    ]
    [g] = engine(stub.url, retries=3).generate([CONV])
    assert g.text == "fine"
    assert len(stub.calls("/v1/chat/completions")) == 3


def test_backoff_doubles_between_attempts(stub):
    stub.script["/v1/chat/completions"] = [(503, {"error": "down"}, {})] * 3 + [
        (200, completion("up"), {})
    ]
    gen = engine(stub.url, retries=3)
    gen.backoff_s = 0.05
    start = time.perf_counter()
    assert gen.generate([CONV])[0].text == "up"
    # 0.05 + 0.1 + 0.2 (each up to +10% jitter): at least 0.35 s, far below a fixed 1 s wait.
    assert 0.35 <= time.perf_counter() - start < 1.5


def test_gives_up_after_retries_naming_url_and_status(stub):
    stub.script["/v1/chat/completions"] = [(503, {"error": {"message": "overloaded"}}, {})]
    with pytest.raises(EngineError) as e:
        engine(stub.url, retries=2).generate([CONV])
    msg = str(e.value)
    assert f"{stub.url}/chat/completions" in msg and "HTTP 503" in msg
    assert "after 3 attempts" in msg and "Service Unavailable" in msg
    assert "overloaded" not in msg  # the body is the server's text: never shown on a page
    assert len(stub.calls("/v1/chat/completions")) == 3


def test_client_errors_are_not_retried(stub):
    stub.script["/v1/chat/completions"] = [(400, {"error": {"message": "bad prompt"}}, {})]
    with pytest.raises(EngineError, match="HTTP 400: Bad Request"):
        engine(stub.url, retries=5).generate([CONV])
    assert len(stub.calls("/v1/chat/completions")) == 1


def test_unreachable_server_names_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(EngineError, match=f"cannot reach the model server at {url}/models"):
        load_engine(ModelConfig(engine="openai", base_url=url, generator="", retries=1))


def test_timeout_is_retried_then_reported():
    stub = Stub(delay_s=0.5)
    try:
        gen = engine(stub.url, timeout_s=0.1, retries=1)
        with pytest.raises(EngineError, match="after 2 attempt"):
            gen.generate([CONV])
    finally:
        stub.close()


def test_concurrency_is_bounded_and_order_kept():
    stub = Stub(delay_s=0.1)
    try:
        gen = engine(stub.url, concurrency=2)
        convs = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
        out = gen.generate(convs)
        assert [g.text for g in out] == [f"echo: q{i}" for i in range(6)]
        assert stub.max_in_flight == 2
    finally:
        stub.close()


def test_api_key_comes_from_the_named_variable(stub, monkeypatch):
    monkeypatch.setenv("ADAPTLAB_TEST_KEY", "secret-123")
    engine(stub.url, api_key_env="ADAPTLAB_TEST_KEY").generate([CONV])
    assert stub.calls("/v1/chat/completions")[0]["headers"]["Authorization"] == (
        "Bearer secret-123"
    )
    monkeypatch.delenv("ADAPTLAB_TEST_KEY")
    with pytest.raises(EngineError, match="ADAPTLAB_TEST_KEY.*not set"):
        engine(stub.url, api_key_env="ADAPTLAB_TEST_KEY").generate([CONV])


def test_unauthorised_says_where_the_key_goes(stub):
    stub.script["/v1/chat/completions"] = [(401, {"error": {"message": "no key"}}, {})]
    with pytest.raises(EngineError, match="models.api_key_env"):
        engine(stub.url).generate([CONV])


def test_config_validation():
    with pytest.raises(ConfigError, match="base_url"):
        ModelConfig(engine="openai")
    with pytest.raises(ConfigError, match="engine must be one of"):
        ModelConfig(engine="tgi-magic")
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        ModelConfig(engine="openai", base_url="http://x/v1", api_key_env="sk-live-abc")
    with pytest.raises(ConfigError, match="generator must be named"):
        ModelConfig(generator="")
    cfg = ModelConfig(engine="openai", base_url="http://h:8000/v1", api_model="m", concurrency=8)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert all(ModelConfig.help()[k] for k in ("engine", "base_url", "api_key_env", "retries"))


def test_cli_set_routes_models_options():
    from cli.args import parser as _parser
    from cli.main import build_config

    args = _parser().parse_args(
        [
            "run",
            "--set",
            "models.engine=openai",
            "--set",
            "models.base_url=http://127.0.0.1:9/v1",
            "--set",
            "rag.top_k=5",
        ]
    )
    cfg = build_config(args)
    assert cfg.models.engine == "openai" and cfg.models.base_url == "http://127.0.0.1:9/v1"
    assert cfg.strategy_configs["rag"]["top_k"] == 5


def test_load_generator_dispatches_on_engine(stub):
    from core.engines.in_process import load_generator

    cfg = ModelConfig(engine="openai", base_url=stub.url, generator="")
    gen = load_generator(cfg)
    assert isinstance(gen, OpenAIGenerator) and gen is load_generator(cfg)
    assert gen.name == "stub-model" and gen.tokenizer is None
    assert gen.count_tokens("one two three") == 4  # words x 4/3 without a local tokenizer
    assert gen.server_info().to_dict()["kind"] == "openai-compatible"


def test_local_tokenizer_counts_prompt_tokens(stub, tiny_models):
    from core.engines.in_process import load_tokenizer

    gen = engine(stub.url, generator="tiny")
    text = "The thymus is where T cells mature."
    tok = load_tokenizer(tiny_models)
    assert gen.count_tokens(text) == len(tok(text, add_special_tokens=False)["input_ids"])


def test_trained_strategies_refused_on_a_server_without_adapter_loading(stub):
    cfg = ModelConfig(engine="openai", base_url=stub.url, generator="tiny")
    msg = unservable_strategies(cfg, ["system_prompt", "lora", "rag"])
    assert msg is not None and msg.startswith("lora cannot run on engine 'openai'")
    assert stub.url in msg and "vLLM" in msg
    assert unservable_strategies(cfg, ["system_prompt", "rag"]) is None
    assert unservable_strategies(ModelConfig(), ["lora"]) is None
    with pytest.raises(EngineError, match="cannot load LoRA adapters"):
        engine(stub.url, generator="tiny").attach_adapter("a", None)


def test_vllm_serves_a_trained_adapter_by_name(tiny_models):
    from peft import LoraConfig

    stub = Stub(owned_by="vllm")
    try:
        cfg = ModelConfig(
            engine="openai", base_url=stub.url, generator="tiny", cache_dir=tiny_models.cache_dir
        )
        assert unservable_strategies(cfg, ["lora"]) is None
        gen = OpenAIGenerator(cfg)
        assert gen.serves_adapters
        gen.attach_adapter("lora-x", LoraConfig(r=2, target_modules=["q_proj"]))
        gen.generate([CONV], adapter="lora-x")
        gen.generate([CONV], adapter="lora-x")  # loaded once, then reused
        [load] = stub.calls("/v1/load_lora_adapter")
        assert load["body"]["lora_name"] == "lora-x"
        from pathlib import Path

        assert (Path(load["body"]["lora_path"]) / "adapter_config.json").is_file()
        chats = stub.calls("/v1/chat/completions")
        assert [c["body"]["model"] for c in chats] == ["lora-x", "lora-x"]
        gen.generate([CONV])
        assert stub.calls("/v1/chat/completions")[-1]["body"]["model"] == "stub-model"
        gen.detach_adapter("lora-x")
        assert stub.calls("/v1/unload_lora_adapter")[0]["body"] == {"lora_name": "lora-x"}
    finally:
        stub.close()


def test_retry_after_parsing():
    assert _retry_after("2") == 2.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


def test_lora_strategy_trains_in_process_and_answers_through_the_server(chunked_mini, tmp_path):
    from strategies.base import StrategyContext
    from strategies.lora import LoraStrategy, LoraStrategyConfig

    corpus, pairs = chunked_mini
    stub = Stub(owned_by="vllm")
    try:
        models = ModelConfig(engine="openai", base_url=stub.url, generator="tiny")
        ctx = StrategyContext(models=models, workdir=tmp_path)
        lora = LoraStrategy(
            LoraStrategyConfig.from_dict({"max_steps": 2, "batch_size": 2, "val_fraction": 0}), ctx
        )
        report = lora.prepare(corpus, pairs)
        assert report.trainable_params > 0 and report.artifact_bytes > 0
        [answer] = lora.answer(["Where do T cells mature?"])
        assert answer.text.startswith("echo:") and answer.cost.prompt_tokens == 11
        [load] = stub.calls("/v1/load_lora_adapter")
        assert load["body"]["lora_name"] == lora.adapter
        assert stub.calls("/v1/chat/completions")[-1]["body"]["model"] == lora.adapter
        lora.close()
        assert stub.calls("/v1/unload_lora_adapter")[0]["body"]["lora_name"] == lora.adapter
    finally:
        stub.close()


def test_trained_arm_on_a_plain_server_fails_the_run_before_any_strategy(
    stub, mini_corpus, tmp_path
):
    from eval.config import RunConfig
    from eval.run.harness import run_comparison
    from eval.store.runs import RunStore

    corpus, qa = mini_corpus
    cfg = RunConfig.from_dict(
        {
            "corpus": str(corpus),
            "qa": str(qa),
            "strategies": ["system_prompt", "lora"],
            "models": {"engine": "openai", "base_url": stub.url, "generator": "tiny"},
            "store_path": str(tmp_path / "runs.sqlite"),
            "workdir": str(tmp_path / "work"),
        }
    )
    with pytest.raises(ValueError, match="lora cannot run on engine 'openai'"):
        run_comparison(cfg)
    store = RunStore(cfg.store_path)
    [listed] = store.list_runs()
    run = store.get_run(listed.id)
    assert run.status == "failed" and "lora" in (run.error or "") and not run.results
    assert not stub.calls("/v1/chat/completions")


class _Recorder(BaseHTTPRequestHandler):
    """A second local server: records every request it gets (the redirect's target)."""

    seen: list[dict] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).seen.append({"path": self.path, "headers": dict(self.headers)})
        self.send_response(200)
        self.end_headers()

    do_POST = do_GET


def test_a_redirecting_server_is_refused_and_the_key_goes_nowhere(stub, monkeypatch):
    """The attack: an allowed server answers 302 to another host; urllib would follow it with
    the Authorization header. Here the redirect is an error naming the target, and the target
    gets no request at all."""
    _Recorder.seen = []
    target = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    try:
        there = f"http://127.0.0.1:{target.server_address[1]}/steal"
        monkeypatch.setenv("SERVER_KEY", "sk-secret")
        stub.script["/v1/chat/completions"] = [(302, {}, {"Location": there})]
        with pytest.raises(EngineError) as e:
            engine(stub.url, api_key_env="SERVER_KEY").generate([CONV])
        assert there in str(e.value) and "redirect" in str(e.value)
        assert stub.calls("/v1/chat/completions")[0]["headers"]["Authorization"]
        assert _Recorder.seen == []  # not followed: the key never reached the target
        stub.script["/w/models"] = [(307, {}, {"Location": there})]
        with pytest.raises(EngineError, match="redirect"):
            engine(stub.url.removesuffix("/v1") + "/w", api_key_env="SERVER_KEY").server_info()
        assert _Recorder.seen == []
    finally:
        target.shutdown()
        target.server_close()


def test_an_error_reply_is_not_echoed(stub):
    """A URL steered at another local service must not read that service's reply back to the
    page: an error says the status, never the body (nor a non-JSON body on success)."""
    stub.script["/v1/chat/completions"] = [(404, {"secret": "db-password-123"}, {})]
    with pytest.raises(EngineError) as e:
        engine(stub.url).generate([CONV])
    assert "HTTP 404" in str(e.value) and "db-password-123" not in str(e.value)
    stub.script["/v1/chat/completions"] = [(200, "private page: token=abc", {})]
    with pytest.raises(EngineError) as e:
        engine(stub.url).generate([CONV])
    assert "not JSON" in str(e.value) and "token=abc" not in str(e.value)


def test_a_reply_without_choices_is_not_echoed_and_a_huge_reply_is_not_read(stub):
    """Issue 32: a 200 reply without `choices` had its body quoted into the error History
    shows; replies were read whatever their size."""
    stub.script["/v1/chat/completions"] = [(200, {"secret": "db-password-123"}, {})]
    with pytest.raises(EngineError, match="no choices") as e:
        engine(stub.url).generate([CONV])
    assert "db-password-123" not in str(e.value)
    stub.script["/v1/chat/completions"] = [(200, completion("x" * (17 * 2**20)), {})]
    with pytest.raises(EngineError, match="longer than 16 MB") as e:
        engine(stub.url).generate([CONV])
