"""Paired tests between stored runs of one split: one strategy measured once per setting.

A run compares strategies; a setting of one strategy (rag's retriever, say) is compared by one
run per value on the same split. This prints each run's mean with its interval and, for every
pair of runs, the paired difference on the questions both answered, with the test every view
runs (`eval.stats.decision.pair_test`: whole groups flipped) and Holm's adjustment over the pairs.

    .venv/bin/python bench/paired_runs.py dense=RUN_A bm25=RUN_B hybrid=RUN_C
        [--strategy rag] [--metric f1] [--store PATH]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

# This checkout's packages, not whichever one the shared venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_ID, two or more, one split")
    parser.add_argument("--strategy", default="rag")
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--store", default="", help="SQLite file of runs (default: the CLI's)")
    args = parser.parse_args()

    from eval.config import RunConfig
    from eval.stats.decision import holm, pair_test
    from eval.store.runs import RunStore
    from eval.views.run_view import RunView

    store = RunStore(args.store or RunConfig().store_path)
    views: dict[str, RunView] = {}
    for item in args.runs:
        label, sep, run_id = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: give LABEL=RUN_ID")
        views[label] = RunView.load(store, run_id)
    splits = {tuple(v.run.meta.split.test_ids) for v in views.values()}
    if len(splits) != 1:
        parser.error("the runs hold different test splits: a paired test needs the same one")
    scores = {k: v.scores(args.strategy, args.metric) for k, v in views.items()}
    groups = next(iter(views.values())).groups()

    for label, view in views.items():
        mean = view.result(args.strategy).interval(args.metric)
        print(f"{label:>10}  {args.metric} {mean.mean:.3f} [{mean.low:.3f}, {mean.high:.3f}]")
    pairs = list(itertools.combinations(views, 2))
    rows = [pair_test(scores[a], scores[b], groups) for a, b in pairs]
    adjusted = holm([r["p_value"] for r in rows])
    for (a, b), row, p_holm in zip(pairs, rows, adjusted, strict=True):
        print(
            f"{a} - {b}: {row['diff']:+.3f} [{row['diff_low']:+.3f}, {row['diff_high']:+.3f}] "
            f"on {row['n']} questions in {row['groups']} groups, {row['test']} "
            f"p {row['p_value']:.3f}, Holm p {p_holm:.3f}"
        )


if __name__ == "__main__":
    main()
