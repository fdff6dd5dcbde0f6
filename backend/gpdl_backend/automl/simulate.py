"""A pure event simulation of an AutoML search on parallel workers.

Each job an oracle hands out occupies one worker for ``(budget - iterations
trained so far) * iteration_time(key)`` seconds of simulated time; when it ends
the oracle gets ``loss(key, budget)``. Free workers ask for jobs at once, so the
simulation shows what an oracle's decisions cost in wall-clock time (the
synchronous Hyperband barrier, for one) with no training at all. Used by the
tests and by benchmarks.

Example:
    >>> from gpdl_backend.automl.oracles import Asha
    >>> trace = simulate_search(Asha(R=9, eta=3, num_configs=9), workers=3,
    ...                         iteration_time=lambda key: 1.0,
    ...                         loss=lambda key, iterations: key + 1 / iterations)
    >>> trace.best_key, trace.total_iterations, trace.makespan
    (1, 21, 12.0)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

from gpdl_backend.automl.jobs import NewConfig, Oracle, finite

__all__ = ["Event", "SearchTrace", "simulate_search"]


@dataclass(frozen=True)
class Event:
    """One step of a simulated search.

    Attributes:
        time: Simulated seconds since the start.
        kind: ``"start"`` (a new configuration), ``"promote"`` or ``"report"``.
        key: The configuration's key (numbered from 1 as started).
        iterations: Its budget (start, promote) or the iterations it reached (report).
        rung: The rung of the job, or the rung reported at.
        loss: The loss reported; None for other events.
    """

    time: float
    kind: str
    key: int
    iterations: int
    rung: int
    loss: float | None = None


@dataclass(frozen=True)
class SearchTrace:
    """What a simulated search did.

    Attributes:
        makespan: Simulated seconds until the last job ended.
        total_iterations: Iterations trained, over all configurations.
        idle_time: Worker-seconds without a job, up to the makespan.
        best_loss: Lowest finite loss reported, or None.
        best_key: Configuration that reported it, or None.
        events: Every start, promotion and report, in order.
    """

    makespan: float
    total_iterations: int
    idle_time: float
    best_loss: float | None
    best_key: int | None
    events: tuple[Event, ...]


def simulate_search(
    oracle: Oracle,
    workers: int,
    iteration_time: Callable[[int], float],
    loss: Callable[[int, int], float],
) -> SearchTrace:
    """Run a fresh oracle to the end on ``workers`` simulated workers.

    Args:
        oracle: An oracle no configuration was started on yet.
        workers: Parallel workers, >= 1.
        iteration_time: Seconds one iteration of configuration ``key`` takes.
        loss: Loss of configuration ``key`` after ``iterations`` iterations.

    Returns:
        The trace of the search.

    Raises:
        ValueError: ``workers`` < 1.
        RuntimeError: The oracle has nothing to run, nothing runs, and it is not
            done (it would wait forever).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    now, idle, free, total, next_key = 0.0, 0.0, workers, 0, 1
    trained: dict[int, int] = {}
    running: list[tuple[float, int, int, int, int]] = []
    events: list[Event] = []
    best: tuple[float, int] | None = None
    while True:
        while free:
            job = oracle.next_job()
            if job is None:
                break
            if isinstance(job, NewConfig):
                key, next_key, kind = next_key, next_key + 1, "start"
                oracle.started(key, job)
            else:
                key, kind = job.key, "promote"
            ends = now + (job.budget - trained.get(key, 0)) * iteration_time(key)
            heapq.heappush(running, (ends, len(events), key, job.budget, job.rung))
            events.append(Event(now, kind, key, job.budget, job.rung))
            free -= 1
        if not running:
            if not oracle.done:
                raise RuntimeError("the oracle has no job, none is running, and it is not done")
            break
        ends, _, key, budget, rung = heapq.heappop(running)
        idle += free * (ends - now)
        now, free = ends, free + 1
        total += budget - trained.get(key, 0)
        trained[key] = budget
        value = loss(key, budget)
        oracle.report(key, budget, value)
        events.append(Event(now, "report", key, budget, rung, value))
        if finite(value) and (best is None or (value, key) < best):
            best = (value, key)
    return SearchTrace(
        makespan=now,
        total_iterations=total,
        idle_time=idle,
        best_loss=None if best is None else best[0],
        best_key=None if best is None else best[1],
        events=tuple(events),
    )
