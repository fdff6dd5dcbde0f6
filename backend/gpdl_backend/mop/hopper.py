"""Model hopping without an iteration barrier: each configuration has its own clock.

:class:`~gpdl_backend.mop.scheduler.MopScheduler` ends every iteration with a
barrier, which a search cannot afford: asynchronous successive halving must let a
configuration that finished its rung be judged, promoted or paused while the
others train on. :class:`HopperScheduler` keeps MOP's rules per configuration
(one segment at a time, every segment once per iteration, a segment trains one
unit at a time) but counts iterations per configuration, up to a *budget* the
search raises (a promotion, "extend by N") or ends (a stop).

When a configuration has visited every segment in its iteration it *awaits
evaluation*: nothing more of it runs until the driver folds and evaluates it and
calls :meth:`HopperScheduler.end_iteration`. Like the other schedulers it only
decides: pure, seeded, no I/O.

Example:
    >>> hopper = HopperScheduler(segments=[0, 1])
    >>> hopper.add(7, budget=1)
    >>> unit = hopper.assign_all_idle()[0]
    >>> hopper.complete(unit)
    False
    >>> hopper.complete(hopper.assign_all_idle()[0])  # visited both segments
    True
    >>> hopper.end_iteration(7)
    >>> hopper.iteration_of(7), hopper.active_count
    (1, 0)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from gpdl_backend.errors import UsageError
from gpdl_backend.mop.scheduler import (
    CONFIG,
    SEGMENT,
    Node,
    Unit,
    derived_rng,
    priority_matching,
)

__all__ = ["HopperScheduler"]


@dataclass
class _Track:
    """One configuration's clock."""

    budget: int
    iteration: int = 0  # 0-based iteration it trains now (= iterations done)
    done: set[int] = field(default_factory=set)  # segments visited in this iteration
    evaluating: bool = False
    stopped: bool = False


class HopperScheduler:
    """Assigns units of configurations that each run on their own iteration count.

    An idle segment gets a unit of a configuration that is not stopped, not
    busy, not awaiting evaluation, below its budget and has not visited that
    segment in its current iteration. Several idle segments at once get a
    maximum matching that favours the configurations and segments with the
    most units left, ties broken by the seeded generator (as ``MopScheduler``).

    Args:
        segments: unique segment indexes.
        seed: seed of the tie-breaking. Defaults to 0.

    Raises:
        UsageError: no or duplicate segments.
    """

    def __init__(self, segments: Sequence[int], seed: int = 0) -> None:
        segments = tuple(segments)
        if not segments or len(set(segments)) != len(segments):
            raise UsageError("at least one segment is needed, each once")
        self._segments = segments
        self._tracks: dict[Hashable, _Track] = {}
        self._by_segment: dict[int, Unit] = {}
        self._by_config: dict[Hashable, Unit] = {}
        self._rng = derived_rng(seed, "hopper")

    # ----------------------------------------------------------------- read-only
    @property
    def segments(self) -> tuple[int, ...]:
        return self._segments

    @property
    def configs(self) -> tuple[Hashable, ...]:
        """Every configuration added, in the order added."""
        return tuple(self._tracks)

    @property
    def running(self) -> tuple[Unit, ...]:
        """Units in flight, in segment order."""
        return tuple(self._by_segment[s] for s in self._segments if s in self._by_segment)

    @property
    def active_count(self) -> int:
        """Configurations that can still train (or are being evaluated) within their budget."""
        return sum(1 for t in self._tracks.values()
                   if not t.stopped and (t.iteration < t.budget or t.evaluating))

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing awaiting evaluation."""
        return not self._by_segment and not any(t.evaluating for t in self._tracks.values())

    def iteration_of(self, config: Hashable) -> int:
        """Iterations the configuration completed (and had evaluated)."""
        return self._track(config).iteration

    def budget_of(self, config: Hashable) -> int:
        return self._track(config).budget

    def awaits_evaluation(self, config: Hashable) -> bool:
        """Whether the configuration visited every segment of its iteration (not stopped)."""
        track = self._track(config)
        return track.evaluating and not track.stopped

    def at_budget(self, config: Hashable) -> bool:
        """Whether the configuration used its whole budget (waits for a decision)."""
        track = self._track(config)
        return track.iteration >= track.budget and not track.evaluating

    def units_left(self) -> int:
        """Units still to run for the configurations' present budgets."""
        p = len(self._segments)
        return sum(max(0, (t.budget - t.iteration) * p - len(t.done))
                   for t in self._tracks.values() if not t.stopped)

    # ------------------------------------------------------------------ decisions
    def add(self, config: Hashable, budget: int, iteration: int = 0,
            done_segments: Iterable[int] = ()) -> None:
        """Add a configuration at ``iteration`` (resume: with the segments it visited).

        Raises:
            UsageError: a known key, or a budget below the iteration.
        """
        if config in self._tracks:
            raise UsageError(f"configuration {config!r} is already scheduled")
        if budget < iteration:
            raise UsageError(f"budget {budget} is below iteration {iteration} of {config!r}")
        done = set(done_segments)
        unknown = done - set(self._segments)
        if unknown:
            raise UsageError(f"unknown segments {sorted(unknown)} for {config!r}")
        track = _Track(budget=budget, iteration=iteration, done=done)
        track.evaluating = len(done) == len(self._segments)
        self._tracks[config] = track

    def extend(self, config: Hashable, budget: int) -> None:
        """Raise a configuration's budget (a promotion, or "extend by N iterations").

        Raises:
            UsageError: a stopped configuration, or a budget that is lower.
        """
        track = self._track(config)
        if track.stopped:
            raise UsageError(f"configuration {config!r} is stopped")
        if budget < track.budget:
            raise UsageError(f"budget of {config!r} cannot go down from {track.budget} "
                             f"to {budget}")
        track.budget = budget

    def stop(self, config: Hashable) -> Unit | None:
        """Stop a configuration; returns its unit in flight (report it as usual)."""
        track = self._track(config)
        track.stopped = True
        track.evaluating = False
        return self._by_config.get(config)

    def is_stopped(self, config: Hashable) -> bool:
        return self._track(config).stopped

    def assign_all_idle(self) -> list[Unit]:
        """Start a unit on every idle segment that has an eligible one (maximum matching)."""
        idle = [s for s in self._segments if s not in self._by_segment]
        graph: dict[Node, list[Node]] = {}
        for segment in idle:
            for config, track in self._tracks.items():
                if self._eligible(config, track) and segment not in track.done:
                    graph.setdefault((SEGMENT, segment), []).append((CONFIG, config))
                    graph.setdefault((CONFIG, config), []).append((SEGMENT, segment))
        if not graph:
            return []
        p = len(self._segments)
        left: dict[Node, int] = {}
        for node in graph:
            if node[0] == CONFIG:
                track = self._tracks[node[1]]
                left[node] = (track.budget - track.iteration) * p - len(track.done)
            else:
                left[node] = len(graph[node])
        order = list(graph)
        self._rng.shuffle(order)
        order.sort(key=left.__getitem__, reverse=True)
        for neighbours in graph.values():
            self._rng.shuffle(neighbours)
        mate = priority_matching(graph, order)
        started = []
        for segment in idle:
            if (SEGMENT, segment) in mate:
                config = mate[(SEGMENT, segment)][1]
                unit = Unit(self._tracks[config].iteration, config, segment)
                self._by_segment[segment] = self._by_config[config] = unit
                started.append(unit)
        return started

    def complete(self, unit: Unit) -> bool:
        """Record a finished unit; True when its configuration completed its iteration.

        Raises:
            ValueError: the unit is not running.
        """
        self._finish(unit)
        track = self._tracks[unit.config]
        if track.stopped:
            return False
        track.done.add(unit.segment)
        if len(track.done) == len(self._segments):
            track.evaluating = True
            return True
        return False

    def fail(self, unit: Unit) -> None:
        """Put a running unit back (it runs again later unless its configuration stopped)."""
        self._finish(unit)

    def end_iteration(self, config: Hashable) -> None:
        """The driver evaluated (or skipped evaluating) a completed iteration: go on.

        Raises:
            ValueError: the configuration's iteration is not complete.
        """
        track = self._track(config)
        if not track.evaluating:
            raise ValueError(f"iteration {track.iteration} of {config!r} is not complete")
        track.evaluating = False
        track.iteration += 1
        track.done.clear()

    # ------------------------------------------------------------------ internals
    def _track(self, config: Hashable) -> _Track:
        try:
            return self._tracks[config]
        except KeyError:
            raise UsageError(f"unknown configuration {config!r}") from None

    def _eligible(self, config: Hashable, track: _Track) -> bool:
        return (not track.stopped and not track.evaluating and config not in self._by_config
                and track.iteration < track.budget)

    def _finish(self, unit: Unit) -> None:
        if self._by_segment.get(unit.segment) != unit:
            raise ValueError(f"{unit} is not running")
        del self._by_segment[unit.segment]
        del self._by_config[unit.config]
