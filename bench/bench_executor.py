"""Benchmark: the same comparison run locally and as Ray work on a local 2-CPU Ray cluster.

Both runs are `python -m eval run` child processes on the bundled sample (same split, same
strategies), one with `--executor local`, one with `--executor ray` against a Ray head started
here on loopback (or `--address` of a running cluster: the same command then runs unchanged on
a real one). Prints wall time, the scheduling overhead per arm (the driver's wall time for an
arm minus the worker's own time measuring it and loading the models) and peak RSS: the
driver's, and for Ray also the arm worker's (its own measurement, stored with each arm).
With `--rounds N` the two alternate (local first, then Ray first, ...) and the ratio is the
median of each round's: on a shared machine, load then falls on both alike.

    .venv/bin/python bench/bench_executor.py [--n-test 20] [--generator tiny] [--rounds 3]
        [--tuning off|quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.store.runs import RunStore  # noqa: E402
from service.cluster.ray_head import local_head  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_once(kind: str, args, work: Path, address: str = "") -> dict:
    """One `python -m eval run` child; its wall time, peak RSS and per-arm records."""
    work = work / f"{kind}-{len(list(work.iterdir()))}"  # a fresh store and workdir per run
    work.mkdir()
    store = work / f"{kind}.sqlite"
    config = work / "bench.yaml"
    config.write_text(
        f"retention_questions: {args.retention}\nbootstrap_resamples: 200\n"
        f"workdir: {work / kind}\n"
        # The arm worker gets the threads a local run uses (the whole head), so the figures
        # compare scheduling, not one thread against two.
        f"executor: {{cpus_per_arm: {args.cpus}}}\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "eval", "run", "--config", str(config), "--quiet"]
    command += ["--corpus", str(ROOT / "sample_data/corpus")]
    command += ["--qa", str(ROOT / "sample_data/qa.jsonl"), "--strategies", args.strategies]
    command += ["--n-test", str(args.n_test), "--store", str(store), "--executor", kind]
    command += ["--generator", args.generator] + (["--ray-address", address] if address else [])
    if args.tuning:
        command += ["--tuning", args.tuning]
    for item in args.set:
        command += ["--set", item]
    t0 = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = child.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{kind} run failed:\n{out[-3000:]}")
    runs = RunStore(store)
    run = runs.get_run(runs.list_runs()[0].id)
    answers = {(a.strategy, a.qid): a.answer.text for a in runs.get_answers(run.id)}
    return {
        "wall_s": wall,
        "driver_rss_mb": usage.ru_maxrss / 1024,
        "results": run.results,
        "answers": answers,
    }


def differing(local: dict, remote: dict) -> dict[str, int]:
    """Per strategy, how many of its answers differ between the two runs (0: word for word)."""
    out: dict[str, int] = {}
    for key in local["answers"].keys() | remote["answers"].keys():
        out.setdefault(key[0], 0)
        out[key[0]] += local["answers"].get(key) != remote["answers"].get(key)
    return dict(sorted(out.items()))


def arm_overheads(results) -> list[tuple[str, float, float]]:
    """Per Ray arm: (strategy, scheduling overhead, model load on the worker), in seconds."""
    out = []
    for r in results:
        placed = r.extras.placement
        if placed is not None and placed.overhead_s is not None:
            out.append((r.strategy, placed.overhead_s, placed.load_s))
    return out


def paired_results(local: dict, remote: dict) -> list[tuple[Any, Any]]:
    """Each local arm's result with the Ray run's of the same strategy (None if it has none)."""
    remote_by_name = {r.strategy: r for r in remote["results"]}
    return [(r, remote_by_name.get(r.strategy)) for r in local["results"]]


def stages_line(local: dict, remote: dict) -> str:
    """Per stage, summed over the arms: prepare and answer seconds (the harness's own
    measurement, taken where the arm ran), local vs Ray."""
    out = []
    for stage in ("prepare_s", "answer_s"):
        a = sum(float(getattr(r.cost, stage) or 0) for r in local["results"])
        b = sum(float(getattr(r.cost, stage) or 0) for r in remote["results"])
        out.append(f"{stage[:-2]} {a:.1f} vs {b:.1f} s")
    for r, other in paired_results(local, remote):  # per arm: which arm's stage differs
        if other is not None:
            pairs = [
                (float(getattr(r.cost, s) or 0), float(getattr(other.cost, s) or 0))
                for s in ("prepare_s", "answer_s")
            ]
            out.append(f"{r.strategy} " + " / ".join(f"{a:.1f} vs {b:.1f}" for a, b in pairs))
    return ", ".join(out)


def tuning_lines(local: dict, remote: dict) -> list[str]:
    """Per tuned arm, local vs Ray: its trials (pruned, validation answers: the two searches
    prune differently), the search's seconds and the seconds inside the trials, so the
    difference shows as in the trials or between them."""
    out = []
    for r, other in paired_results(local, remote):
        a, b = r.extras.tuning, other.extras.tuning if other is not None else None
        if a is None or b is None or not a.trials:
            continue
        cells = []
        for rec in (a, b):
            inside = sum(float(t.seconds or 0) for t in rec.trials)
            answered = sum(int(t.answered or 0) for t in rec.trials)
            pruned = sum(t.state == "pruned" for t in rec.trials)
            cells.append(
                f"{len(rec.trials)} trials ({pruned} pruned, {answered} validation answers), "
                f"search {rec.seconds:.1f} s, in trials {inside:.1f} s"
            )
        out.append(f"tuning {r.strategy}: local {cells[0]}; ray {cells[1]}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strategies", default="system_prompt,few_shot,rag,lora")
    p.add_argument("--n-test", type=int, default=20)
    p.add_argument("--generator", default="smollm2-135m-instruct")
    p.add_argument("--retention", type=int, default=0, help="general questions per arm")
    p.add_argument("--address", default="", help="a running Ray cluster (default: start one)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray head")
    p.add_argument("--set", action="append", default=[], help="STRATEGY.KEY=VALUE, as eval run")
    p.add_argument("--rounds", type=int, default=1, help="local/Ray pairs, order alternating")
    p.add_argument("--tuning", default="", help="tuning budget of both runs (default: config's)")
    args = p.parse_args()
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        head = contextlib.nullcontext(args.address) if args.address else local_head(args.cpus)
        with head as address:
            for r in range(args.rounds):
                if r % 2 == 0:
                    local = run_once("local", args, work)
                    remote = run_once("ray", args, work, address)
                else:
                    remote = run_once("ray", args, work, address)
                    local = run_once("local", args, work)
                print(
                    f"round {r}: local {local['wall_s']:.1f} s, ray {remote['wall_s']:.1f} s, "
                    f"ratio {remote['wall_s'] / local['wall_s']:.3f}; stages "
                    + stages_line(local, remote),
                    flush=True,
                )
                pairs.append((local, remote))
    ratios = sorted(b["wall_s"] / a["wall_s"] for a, b in pairs)
    print(
        f"ray / local wall time, median of {len(ratios)} round(s): "
        f"{statistics.median(ratios):.3f} (each: {', '.join(f'{x:.3f}' for x in ratios)})"
    )
    arms = len(remote["results"])
    overheads = arm_overheads(remote["results"])
    worker_rss = max((float(r.cost.peak_rss_mb or 0) for r in remote["results"]), default=0)
    extra = remote["wall_s"] - local["wall_s"]
    print(f"{args.strategies} on {args.generator}, {args.n_test} test questions, {arms} arms")
    print(f"{'':28}{'local':>10}{'ray':>10}")
    print(f"{'wall time (s)':28}{local['wall_s']:10.1f}{remote['wall_s']:10.1f}")
    print(
        f"{'driver peak RSS (MB)':28}{local['driver_rss_mb']:10.0f}{remote['driver_rss_mb']:10.0f}"
    )
    print(f"{'arm worker peak RSS (MB)':28}{'-':>10}{worker_rss:10.0f}")
    print(
        f"ray - local: {extra:+.1f} s in all ({extra / arms:+.2f} s per arm, "
        f"{100 * extra / local['wall_s']:+.1f}% of the local wall time)"
    )
    shown = ", ".join(f"{name} {o:.2f}" for name, o, _ in overheads)
    print(f"scheduling overhead per arm (s; driver wall - worker's work - model load): {shown}")
    loads = ", ".join(f"{name} {load:.1f}" for name, _, load in overheads)
    print(f"model load on the Ray worker per arm (s; once per run): {loads}")
    for line in tuning_lines(local, remote):
        print(line)
    diff = differing(local, remote)
    print(
        "answers differing from local, per strategy: "
        + ", ".join(f"{k} {n}" for k, n in diff.items())
    )
    print(
        json.dumps(
            {
                "local": {k: v for k, v in local.items() if k not in ("results", "answers")},
                "ray": {k: v for k, v in remote.items() if k not in ("results", "answers")},
            }
        )
    )


if __name__ == "__main__":
    main()
