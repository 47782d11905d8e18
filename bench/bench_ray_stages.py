"""Benchmark: where a Ray arm loses time against the same arm measured in this process.

Measures the same arms (default: rag and lora on the bundled model) three ways, interleaved
round by round so a shared machine's load falls on all of them alike: in this process (local),
on a Ray worker at Ray's default niceness (15), and on a Ray worker at nice 0 (the executor's
`worker_niceness` default). Per arm and way it prints the stages (prepare and answer seconds,
the driver's scoring), the worker's nice value and threads, and the involuntary context
switches its threads took (the kernel handing their CPU to another process), then each stage's
ratio to local, medians over the rounds.

    .venv/bin/python bench/bench_ray_stages.py [--rounds 2] [--n-test 6] [--generator tiny]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.args import parser  # noqa: E402
from cli.main import build_config  # noqa: E402
from core.engines.in_process import load_embedder  # noqa: E402
from eval.run.executor import LocalExecutor  # noqa: E402
from eval.run.measurement import Arm, StrategyMeasurement  # noqa: E402
from eval.run.scoring import score  # noqa: E402
from eval.run.workbench import Workbench  # noqa: E402
from service.cluster.process_figures import ProcessFigures  # noqa: E402
from service.cluster.ray_executor import RayExecutor, connect  # noqa: E402
from service.cluster.ray_head import local_head  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("local", "ray nice 15", "ray nice 0")


def run_config(args, address: str):
    argv = ["run", "--corpus", str(ROOT / "sample_data/corpus")]
    argv += ["--qa", str(ROOT / "sample_data/qa.jsonl"), "--strategies", args.strategies]
    argv += ["--n-test", str(args.n_test), "--generator", args.generator]
    argv += ["--ray-address", address]
    for item in args.set:
        argv += ["--set", item]
    config = build_config(parser().parse_args(argv))
    return config.replace(
        retention_questions=0,
        bootstrap_resamples=100,
        tuning=config.tuning.replace(budget="off"),
        executor=config.executor.replace(cpus_per_arm=args.cpus),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strategies", default="rag,lora")
    p.add_argument("--n-test", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--generator", default="smollm2-135m-instruct")
    p.add_argument("--cpus", type=int, default=2, help="threads of every arm, local or Ray")
    p.add_argument("--set", action="append", default=["lora.max_steps=2"])
    args = p.parse_args()
    # Two idle Ray workers of `cpus` each must fit at once (only one works at a time).
    with local_head(cpus=2 * args.cpus) as address, tempfile.TemporaryDirectory() as tmp:
        try:
            rows, config = measure(args, address, Path(tmp))
        finally:
            connect(address).shutdown()  # before the head stops, or Ray's client aborts
    report(args, config, rows)


def measure(args, address: str, tmp: Path):
    """Every arm measured every way, round by round; rows keyed by (strategy, way)."""
    config = run_config(args, address)
    connect(address)
    bench = Workbench.open(config)
    embedder = load_embedder(config.models)
    emit = lambda event: None  # noqa: E731
    measurement = StrategyMeasurement(
        config.batch_size, bench.device, config.prices, emit, lambda: False
    )
    executors = {
        "local": LocalExecutor(config, bench, measurement),
        "ray nice 15": RayExecutor(
            config.replace(executor=config.executor.replace(worker_niceness=15)),
            bench,
            measurement,
        ),
        "ray nice 0": RayExecutor(config, bench, measurement),
    }
    rows: dict[tuple[str, str], list[dict]] = {}
    train = bench.inputs.train
    for r in range(args.rounds):
        order = WAYS[r % 3 :] + WAYS[: r % 3]  # each way goes first in turn
        for way in order:
            for name in config.strategies:
                folder = tmp / f"{way}-{name}-{r}".replace(" ", "_")
                folder.mkdir()
                before = ProcessFigures.read()
                t0 = time.perf_counter()
                measured = executors[way].evaluate(Arm(name, name, train, [], folder))
                wall = time.perf_counter() - t0
                result = measured.result
                if result.status != "done":
                    raise SystemExit(f"{way} {name}: {result.error}")
                t1 = time.perf_counter()
                score(measured.answers, config.metrics, embedder, 100, 0, None)
                score_s = time.perf_counter() - t1
                placed = result.extras.placement
                if placed is None:  # measured here: this process's own figures
                    now = ProcessFigures.read()
                    nice, threads, switches = now.nice, now.threads, now.since(before)
                    load = 0.0
                else:
                    nice, threads = placed.nice, placed.threads
                    switches, load = placed.involuntary_switches, placed.load_s
                row = {
                    "prepare_s": result.cost.prepare_s or 0.0,
                    "answer_s": result.cost.answer_s or 0.0,
                    "prepare_cpu_s": result.cost.prepare_cpu_s or 0.0,
                    "answer_cpu_s": result.cost.answer_cpu_s or 0.0,
                    "others_cores": result.cost.others_cores or 0.0,
                    "score_s": score_s,
                    "arm_wall_s": wall - load,
                    "nice": nice,
                    "threads": threads,
                    "switches": switches,
                }
                rows.setdefault((name, way), []).append(row)
                print(
                    f"round {r} {way:12} {name:8} "
                    + ", ".join(
                        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in row.items()
                    ),
                    flush=True,
                )
    for ex in executors.values():
        ex.close()
    return rows, config


def report(args, config, rows) -> None:
    """The medians per strategy and way, and each stage's ratio to local."""
    print(
        f"\n{args.strategies} on {args.generator}, {args.n_test} test questions, "
        f"{args.rounds} rounds (medians; ratio = way / local)"
    )
    stages = ("prepare_s", "answer_s", "score_s", "arm_wall_s")
    for name in config.strategies:
        base = {s: statistics.median(x[s] for x in rows[(name, "local")]) for s in stages}
        for way in WAYS:
            got = rows[(name, way)]
            med = {s: statistics.median(x[s] for x in got) for s in stages}
            sw = statistics.median(x["switches"] or 0 for x in got)
            cells = "  ".join(
                f"{s[:-2]} {med[s]:7.2f}s x{med[s] / base[s]:.2f}"
                if base[s]
                else f"{s[:-2]} {med[s]:7.2f}s"
                for s in stages
            )
            print(
                f"{name:8} {way:12} {cells}  nice {got[-1]['nice']}  "
                f"threads {got[-1]['threads']}  involuntary switches {sw:.0f}"
            )


if __name__ == "__main__":
    main()
