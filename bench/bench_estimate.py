"""The estimate's speed and its per-strategy figures against a measured run, in one process.

Prints, for the same config: seconds the estimate took, and per strategy the predicted seconds
per question against those a real run of the same questions measured (ratio actual/predicted).
The models are loaded first and timed apart, as the worker holds them between jobs.

    .venv/bin/python bench/bench_estimate.py [--strategies system_prompt,few_shot,rag] [--n-test 16]
        [--tuning off]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# This checkout's packages, not whichever one the shared venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="system_prompt,few_shot,rag")
    parser.add_argument("--n-test", type=int, default=16)
    parser.add_argument("--tuning", default="quick", help="the run's tuning budget (off, quick)")
    args = parser.parse_args()

    from core.engines.in_process import load_embedder, load_generator
    from eval.config import RunConfig
    from eval.run.harness import run_comparison
    from eval.store.runs import RunStore
    from service.estimate.probe import estimate_run

    tmp = Path(tempfile.mkdtemp(prefix="bench-estimate-"))
    config = RunConfig(
        strategies=args.strategies.split(","),
        n_test=args.n_test,
        retention_questions=0,
        tuning={"budget": args.tuning},
        store_path=str(tmp / "runs.sqlite"),
        workdir=str(tmp / "work"),
    )
    t = time.perf_counter()
    load_generator(config.models), load_embedder(config.models)
    print(f"models loaded in {time.perf_counter() - t:.1f} s (once per worker)")

    t = time.perf_counter()
    est = estimate_run(config)
    print(f"estimate: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    run_id = run_comparison(config)
    took = time.perf_counter() - t
    run = RunStore(config.store_path).get_run(run_id)
    actual = {r.strategy: r.cost for r in run.results if r.status == "done"}
    print(f"{'strategy':<16}{'predicted s/q':>15}{'measured s/q':>14}{'ratio':>8}")
    for e in est.strategies:
        got = actual[e.strategy].latency_mean_s if e.strategy in actual else None
        ratio = f"{got / e.seconds_per_question:.2f}" if got else "—"
        print(
            f"{e.strategy:<16}{e.seconds_per_question:>15.2f}"
            f"{(got or float('nan')):>14.2f}{ratio:>8}"
        )
    print(f"run: {took:.0f} s, estimated {est.total_s:.0f} s (ratio {took / est.total_s:.2f})")
    # The next estimate on this machine: the probes above are reused (service.estimate.reuse).
    t = time.perf_counter()
    again = estimate_run(config)
    print(
        f"second estimate: {time.perf_counter() - t:.1f} s, reused {len(again.reused)} of "
        f"{len(config.strategies)} strategies, {again.total_s:.0f} s estimated"
    )


if __name__ == "__main__":
    main()
