"""A run's arms measured one after the other, or as many at once as the executor runs, with
each result handed to the driver in the run's own order.

The harness measures an arm (tuning, then the executor) in `measure` and stores it in `finish`.
With one arm at a time both run in the calling thread, as they always did. With more, `measure`
runs in a pool of threads while `finish` stays in the calling thread and sees the results in
the order of `jobs`, so the store is written by one thread and lists the arms in the config's
order (every view and export reads them in stored order). An arm that finishes early waits for
the ones before it to be stored.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from core.types import QAPair
from eval.records import ResultExtras

T = TypeVar("T")


@dataclass
class ArmJob:
    """One arm of the run: the strategy, its label (the strategy, or a learning-curve point),
    the training pairs it learns from and the extras it is stored with."""

    name: str
    label: str
    train: list[QAPair]
    extras: ResultExtras


def in_order(
    jobs: list[ArmJob],
    at_once: int,
    measure: Callable[[ArmJob], T],
    finish: Callable[[ArmJob, T], None],
    failed: Callable[[BaseException], None] = lambda e: None,
) -> None:
    """`measure` every job, up to `at_once` at a time, and `finish` each in the order of `jobs`.

    The first error a `measure` raises stops the jobs not yet started and is told to `failed`
    (the harness stops the running ones unless the error lets them finish); once the running
    ones have ended, those that succeeded are still finished, in order, and the first error is
    raised. With `at_once` <= 1 everything runs here, one job after the other, as before."""
    if at_once <= 1 or len(jobs) <= 1:
        for job in jobs:
            finish(job, measure(job))
        return
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="arm") as pool:
        futures = [pool.submit(measure, job) for job in jobs]
        _drain(jobs, futures, finish, failed)


def _drain(
    jobs: list[ArmJob],
    futures: list[Future],
    finish: Callable[[ArmJob, Any], None],
    failed: Callable[[BaseException], None],
) -> None:
    """Finish the futures' results in order as they come; raise the first error at the end."""
    error: BaseException | None = None

    def stop(e: BaseException) -> None:
        for other in futures:  # what has not started yet never will
            other.cancel()
        failed(e)

    pending, first = set(futures), 0
    try:
        while pending or first < len(futures):
            if pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    e = None if future.cancelled() else future.exception()
                    if e is not None and error is None:
                        error = e
                        stop(e)
            while first < len(futures) and futures[first].done():
                future = futures[first]
                if not future.cancelled() and future.exception() is None:
                    finish(jobs[first], future.result())
                first += 1
    except BaseException as e:  # finishing failed here (or an interrupt): stop the others too
        stop(e)
        raise
    if error is not None:
        raise error
