"""A run's arm workers on the cluster: one arm at a time each, reused for later arms.

Arms measured at once need a worker each. A worker asks Ray for one `ArmRequest` (CPUs, GPUs)
and loads the models once; an arm with the same request takes an idle one before a new one is
started, so a run starts at most as many workers per request as its arms ever ran at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from service.cluster.plan import ArmRequest, ClusterShape
from strategies.base import RunCancelled

WAIT_S = 0.2  # how often an arm waiting for room checks for a cancel


class WorkerPool:
    """Lends workers to arms: `lease` one for an arm, `release` it when the arm is done (it
    stays loaded for the next), `drop` it when it died or was stopped.

    A new worker is started only while the cluster has room for it beside the run's live ones
    (CPUs and GPUs in all, and no more of one request than fit at once): a worker holds its
    resources while idle, so one started without room would wait for ever behind them. To
    make room an idle worker of another request is given up; else the arm waits for one."""

    def __init__(
        self,
        shape: ClusterShape,
        start: Callable[[ArmRequest], Any],
        kill: Callable[[Any], None],
    ):
        self.shape, self._start, self._kill = shape, start, kill
        self._live: list[tuple[ArmRequest, Any]] = []
        self._idle: list[tuple[ArmRequest, Any]] = []
        self._cond = threading.Condition()

    def lease(self, request: ArmRequest, cancelled: Callable[[], bool]) -> Any:
        """A worker for `request` (idle, or started now); waits while the cluster has no room.
        Raises RunCancelled when the run is cancelled meanwhile."""
        with self._cond:
            while True:
                for held in self._idle:
                    if held[0] == request:
                        self._idle.remove(held)
                        return held[1]
                if self._room(request):
                    actor = self._start(request)
                    self._live.append((request, actor))
                    return actor
                other = next(iter(self._idle), None)  # of another request: none of ours is idle
                if other is not None:
                    self._forget(other[1])
                    continue
                if cancelled():
                    raise RunCancelled
                self._cond.wait(WAIT_S)

    def release(self, actor: Any) -> None:
        """`actor` is free for the run's next arm of its request."""
        with self._cond:
            for held in self._live:
                if held[1] is actor and all(i[1] is not actor for i in self._idle):
                    self._idle.append(held)
            self._cond.notify_all()

    def drop(self, actor: Any) -> None:
        """Kill `actor` (dead already, or stopped mid-arm) and forget it; later arms start a
        fresh one."""
        with self._cond:
            self._forget(actor)

    def drop_idle(self) -> None:
        """Kill the idle workers: what they hold is wanted elsewhere (an arm's tuning trials
        on the cluster); later arms start fresh ones."""
        with self._cond:
            for _, actor in list(self._idle):
                self._forget(actor)

    def live(self) -> list[Any]:
        """The workers started and not dropped, idle or busy."""
        with self._cond:
            return [actor for _, actor in self._live]

    def close(self) -> None:
        """Kill every worker of the run."""
        with self._cond:
            for _, actor in list(self._live):
                self._forget(actor)

    def _forget(self, actor: Any) -> None:
        self._live = [h for h in self._live if h[1] is not actor]
        self._idle = [h for h in self._idle if h[1] is not actor]
        self._kill(actor)
        self._cond.notify_all()

    def _room(self, request: ArmRequest) -> bool:
        """Whether a worker asking `request` can be placed beside the run's live ones."""
        if not self._live:  # the first always starts: Ray places it or says it cannot
            return True
        same = sum(1 for r, _ in self._live if r == request)
        cpus = sum(r.cpus for r, _ in self._live) + request.cpus
        gpus = sum(r.gpus for r, _ in self._live) + request.gpus
        return (
            same < max(1, self.shape.fits(request))
            and cpus <= self.shape.cpus
            and gpus <= self.shape.gpus + 1e-9
        )
