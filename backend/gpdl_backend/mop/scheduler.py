"""Model hopper parallelism (MOP) scheduling oracle: pure, seeded, serialisable.

A *unit* is one configuration trained for one visit on one segment's partition.
Per iteration every configuration visits every segment exactly once; a
configuration never trains on two segments at once and a segment trains at most
one unit at once. :class:`MopScheduler` assigns units asynchronously, like
Cerebro's randomized scheduler: whenever a segment is idle it gets a unit whose
configuration is idle and has not visited that segment in this iteration, so no
segment idles while an eligible unit exists. Iterations end with a barrier so
that the driver can evaluate every configuration between them.

This module only decides; it does no I/O, touches no database and imports no
deep-learning framework. The driver asks (:meth:`MopScheduler.assign_all_idle`),
runs the units, and reports (:meth:`MopScheduler.complete`,
:meth:`MopScheduler.fail`). :class:`FixedRotationScheduler` is MADlib's
synchronous rotation with the same interface, and :func:`simulate` replays
either one against a unit-time model, for benchmarks and tests.

Example:
    >>> scheduler = MopScheduler(configs=[1, 2, 3], segments=[0, 1], num_iterations=2)
    >>> while not scheduler.finished:
    ...     for unit in scheduler.assign_all_idle():
    ...         scheduler.complete(unit)  # a real driver trains the unit first
    ...     if scheduler.iteration_complete:
    ...         scheduler.advance()  # evaluate every configuration, then go on
    >>> scheduler.visits[(1, 0)]
    2
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gpdl_backend.errors import UsageError

__all__ = [
    "FixedRotationScheduler",
    "MopScheduler",
    "Scheduler",
    "Status",
    "Unit",
    "derived_rng",
    "priority_matching",
    "simulate",
]

_STATE_VERSION = 1


class Status(enum.Enum):
    """Status of a unit, or of a configuration within the current iteration."""

    PENDING = "pending"
    """Not started yet (a configuration: idle, with units left)."""
    RUNNING = "running"
    """In flight on a segment."""
    DONE = "done"
    """Completed (a configuration: every unit of this iteration completed)."""
    STOPPED = "stopped"
    """Dropped because its configuration was stopped."""


@dataclass(frozen=True)
class Unit:
    """One configuration trained for one visit on one segment in one iteration.

    Args:
        iteration: 0-based iteration the unit belongs to.
        config: the configuration's key (an ``mst_key``).
        segment: the segment index whose partition it trains on.
    """

    iteration: int
    config: Hashable
    segment: int


class Scheduler(Protocol):
    """What a driver (or :func:`simulate`) needs from a scheduler."""

    @property
    def finished(self) -> bool:
        """Whether every iteration has been advanced past."""
        ...

    @property
    def iteration_complete(self) -> bool:
        """Whether the current iteration's units are all done."""
        ...

    def assign_all_idle(self) -> list[Unit]:
        """Start units on idle segments and return them."""
        ...

    def complete(self, unit: Unit) -> None:
        """Record that a running unit finished."""
        ...

    def advance(self) -> None:
        """Start the next iteration once the current one is complete."""
        ...


SEGMENT, CONFIG = "segment", "config"
Node = tuple[str, Hashable]
"""A vertex of the assignment graph: ``(SEGMENT, index)`` or ``(CONFIG, key)``."""


def priority_matching(graph: dict[Node, list[Node]],
                       order: list[Node]) -> dict[Node, Node]:
    """Return a maximum matching that covers the earliest vertices of ``order`` it can.

    The vertex sets a bipartite matching can cover form a matroid, so the greedy
    pass is optimal: it keeps ``order[i]`` covered whenever some matching covers
    it together with every vertex kept before. Each step searches an alternating
    path from the new vertex to a free vertex (augment) or to a covered vertex
    not kept (swap it out); kept vertices stay covered.

    Args:
        graph: bipartite adjacency lists, both directions.
        order: all vertices of ``graph``, most important first.

    Returns:
        ``mate``: each matched vertex mapped to its partner.
    """
    mate: dict[Node, Node] = {}
    kept: set[Node] = set()
    for start in order:
        if start in mate or _cover(start, graph, mate, kept):
            kept.add(start)
    return mate


def _cover(start: Node, graph: dict[Node, list[Node]], mate: dict[Node, Node],
           kept: set[Node]) -> bool:
    """Cover the free vertex ``start`` along an alternating path; False if none exists."""
    parent: dict[Node, Node] = {}
    frontier = [start]
    while frontier:
        reached: list[Node] = []
        for near in frontier:
            for far in graph[near]:
                if far in parent or mate.get(near) == far:
                    continue
                parent[far] = near
                beyond = mate.get(far)
                if beyond is not None and beyond in kept:
                    reached.append(beyond)
                    continue
                if beyond is not None:
                    del mate[beyond]
                while True:
                    near = parent[far]
                    previous = mate.get(near)
                    mate[near], mate[far] = far, near
                    if near == start or previous is None:
                        return True
                    far = previous
        frontier = reached
    return False


def derived_rng(seed: int, *parts: object) -> random.Random:
    """Return a generator seeded from ``seed`` and ``parts``, stable across processes."""
    return random.Random(":".join(["gpdl-mop", str(seed), *map(str, parts)]))


def _check_common(configs: Sequence[Hashable], segments: Sequence[int],
                  num_iterations: int, start_iteration: int) -> None:
    """Raise :class:`UsageError` for arguments no schedule can be built from."""
    if not configs:
        raise UsageError("at least one configuration is needed")
    if len(set(configs)) != len(configs):
        raise UsageError("configuration keys must be unique")
    if not segments:
        raise UsageError("at least one segment is needed")
    if len(set(segments)) != len(segments):
        raise UsageError("segment indexes must be unique")
    if num_iterations < 1:
        raise UsageError(f"num_iterations must be at least 1, not {num_iterations}")
    if not 0 <= start_iteration <= num_iterations:
        raise UsageError(
            f"start_iteration must be between 0 and {num_iterations}, not {start_iteration}"
        )


class MopScheduler:
    """Asynchronous, randomized model hopper scheduler (Cerebro-style), seeded.

    An idle segment gets a unit of an idle, not-stopped configuration that has not
    visited it in this iteration. When there is a choice, it takes a maximum
    matching of idle segments to eligible configurations that favours the
    configurations and segments with the most units left in this iteration
    (those units must run one after another, so they bound when the iteration
    ends), breaking ties at random with the seeded generator. With equal unit
    times an iteration takes ``max(#configs, #segments)`` unit times, the
    optimum. When all units of an iteration are done,
    :attr:`iteration_complete` is true and nothing more is assigned until the
    driver calls :meth:`advance` (after evaluating, if it wants to).

    Args:
        configs: unique configuration keys (``mst_key`` values). Keys should be
            ints or strings for :meth:`state` to be JSON-serialisable.
        segments: unique segment indexes, e.g. ``range(p)``.
        num_iterations: total number of iterations, at least 1.
        seed: seed of the random choices. Defaults to 0.
        start_iteration: 0-based iteration to start at (resuming at an
            iteration boundary). Defaults to 0.

    Raises:
        UsageError: empty or duplicate configs or segments, bad iteration numbers.

    Example:
        >>> scheduler = MopScheduler([7, 8], [0, 1], num_iterations=1, seed=3)
        >>> sorted(unit.config for unit in scheduler.assign_all_idle())
        [7, 8]
    """

    def __init__(self, configs: Sequence[Hashable], segments: Sequence[int],
                 num_iterations: int, seed: int = 0, start_iteration: int = 0) -> None:
        configs, segments = tuple(configs), tuple(segments)
        _check_common(configs, segments, num_iterations, start_iteration)
        self._configs: tuple[Hashable, ...] = configs
        self._segments: tuple[int, ...] = segments
        self._segment_set = frozenset(segments)
        self._num_iterations = num_iterations
        self._seed = seed
        self._iteration = start_iteration
        self._done: set[tuple[Hashable, int]] = set()
        self._done_count: dict[Hashable, int] = dict.fromkeys(configs, 0)
        self._by_segment: dict[int, Unit] = {}
        self._by_config: dict[Hashable, Unit] = {}
        self._stopped: set[Hashable] = set()
        self._visits: dict[tuple[Hashable, int], int] = {
            (config, segment): 0 for config in configs for segment in segments
        }
        self._rng = derived_rng(seed, start_iteration)

    # ----------------------------------------------------------------- read-only
    @property
    def configs(self) -> tuple[Hashable, ...]:
        """All configuration keys, stopped ones included, in the given order."""
        return self._configs

    @property
    def segments(self) -> tuple[int, ...]:
        """All segment indexes, in the given order."""
        return self._segments

    @property
    def num_iterations(self) -> int:
        """Total number of iterations."""
        return self._num_iterations

    @property
    def seed(self) -> int:
        """Seed the random choices started from."""
        return self._seed

    @property
    def iteration(self) -> int:
        """Current 0-based iteration; equals :attr:`num_iterations` once finished."""
        return self._iteration

    @property
    def stopped_configs(self) -> frozenset[Hashable]:
        """Configurations stopped by :meth:`stop`."""
        return frozenset(self._stopped)

    @property
    def active_configs(self) -> tuple[Hashable, ...]:
        """Configurations not stopped, in the given order."""
        return tuple(config for config in self._configs if config not in self._stopped)

    @property
    def running(self) -> tuple[Unit, ...]:
        """Units in flight, in segment order."""
        return tuple(self._by_segment[s] for s in self._segments if s in self._by_segment)

    @property
    def visits(self) -> dict[tuple[Hashable, int], int]:
        """Completed units per ``(config, segment)`` over all iterations (a copy)."""
        return dict(self._visits)

    @property
    def finished(self) -> bool:
        """Whether there is nothing left to run or advance.

        True after :meth:`advance` past the last iteration, or once every
        configuration is stopped and no unit is in flight.
        """
        if self._iteration >= self._num_iterations:
            return True
        return not self.active_configs and not self._by_segment

    @property
    def iteration_complete(self) -> bool:
        """Whether every unit of the current iteration is done and none is in flight.

        While true, nothing is assigned until :meth:`advance` is called.
        """
        if self.finished or self._by_segment:
            return False
        p = len(self._segments)
        return all(self._done_count[c] == p for c in self.active_configs)

    def unit_status(self, config: Hashable, segment: int) -> Status:
        """Return the status of ``(config, segment)`` in the current iteration."""
        self._check_config(config)
        self._check_segment(segment)
        if (config, segment) in self._done:
            return Status.DONE
        unit = self._by_segment.get(segment)
        if unit is not None and unit.config == config:
            return Status.RUNNING
        return Status.STOPPED if config in self._stopped else Status.PENDING

    def config_status(self, config: Hashable) -> Status:
        """Return a configuration's status: STOPPED, RUNNING, DONE (this iteration) or PENDING."""
        self._check_config(config)
        if config in self._stopped:
            return Status.STOPPED
        if config in self._by_config:
            return Status.RUNNING
        if self._done_count[config] == len(self._segments):
            return Status.DONE
        return Status.PENDING

    def eligible_configs(self, segment: int) -> list[Hashable]:
        """Configurations an idle ``segment`` could take now, in the given order."""
        self._check_segment(segment)
        if self._iteration >= self._num_iterations:
            return []
        return [
            config for config in self._configs
            if config not in self._stopped
            and config not in self._by_config
            and (config, segment) not in self._done
        ]

    # ------------------------------------------------------------------ decisions
    def next_unit(self, segment: int) -> Unit | None:
        """Start a unit on the idle ``segment`` and return it.

        Args:
            segment: an idle segment index.

        Returns:
            The started unit, or None when no unit is eligible for it now
            (including when the iteration is complete or the run finished).

        Raises:
            ValueError: the segment is unknown or already running a unit.
        """
        self._check_segment(segment)
        if segment in self._by_segment:
            raise ValueError(f"segment {segment} is busy with {self._by_segment[segment]}")
        started = self._assign([segment])
        return started[0] if started else None

    def assign_all_idle(self) -> list[Unit]:
        """Start a unit on every idle segment that has an eligible one.

        When several segments are idle at once the assignment is a maximum
        matching, so afterwards no idle segment has an eligible unit.

        Returns:
            The started units, in segment order (empty when none can start).
        """
        return self._assign([s for s in self._segments if s not in self._by_segment])

    def complete(self, unit: Unit) -> None:
        """Record that a running unit finished (its weights are committed).

        Counts a visit; the configuration and the segment become idle. A unit of
        a configuration stopped while it ran is accepted too.

        Raises:
            ValueError: the unit is not running.
        """
        self._finish(unit)
        key = (unit.config, unit.segment)
        self._done.add(key)
        self._done_count[unit.config] += 1
        self._visits[key] += 1

    def fail(self, unit: Unit) -> None:
        """Put a running unit back to pending (e.g. its connection dropped).

        The configuration and the segment become idle; the unit is assigned
        again later (unless its configuration was stopped).

        Raises:
            ValueError: the unit is not running.
        """
        self._finish(unit)

    def stop(self, config: Hashable) -> Unit | None:
        """Stop a configuration: drop its remaining units; the others go on.

        Idempotent. A unit it has in flight may finish: report it with
        :meth:`complete` or :meth:`fail` as usual.

        Returns:
            The configuration's unit in flight, or None.

        Raises:
            UsageError: unknown configuration.
        """
        if config not in self._done_count:
            raise UsageError(f"unknown configuration {config!r}")
        self._stopped.add(config)
        return self._by_config.get(config)

    def advance(self) -> None:
        """Go to the next iteration once :attr:`iteration_complete` is true.

        The driver evaluates the configurations before calling this. Advancing
        past the last iteration makes :attr:`finished` true.

        Raises:
            ValueError: the current iteration is not complete.
        """
        if not self.iteration_complete:
            raise ValueError(f"iteration {self._iteration} is not complete")
        self._iteration += 1
        self._done.clear()
        self._done_count = dict.fromkeys(self._configs, 0)
        self._rng = derived_rng(self._seed, self._iteration)

    # ------------------------------------------------------------ save / restore
    def state(self) -> dict[str, Any]:
        """Return the whole state, JSON-serialisable when config keys are ints or strings.

        Example:
            >>> scheduler = MopScheduler([1, 2], [0, 1], num_iterations=1)
            >>> MopScheduler.from_state(scheduler.state()).state() == scheduler.state()
            True
        """
        version, internal, gauss = self._rng.getstate()
        return {
            "version": _STATE_VERSION,
            "configs": list(self._configs),
            "segments": list(self._segments),
            "num_iterations": self._num_iterations,
            "seed": self._seed,
            "iteration": self._iteration,
            "done": [[c, s] for c in self._configs for s in self._segments
                     if (c, s) in self._done],
            "running": [[u.config, u.segment] for u in self.running],
            "stopped": [c for c in self._configs if c in self._stopped],
            "visits": [[c, s, self._visits[(c, s)]] for c in self._configs
                       for s in self._segments],
            "rng": [version, list(internal), gauss],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MopScheduler:
        """Rebuild a scheduler from :meth:`state`, exactly (random generator included).

        Units that were running when the state was taken are running again;
        report each with :meth:`complete` or :meth:`fail`.

        Raises:
            UsageError: the state has another version or is inconsistent.
        """
        if state.get("version") != _STATE_VERSION:
            raise UsageError(f"unsupported scheduler state version {state.get('version')!r}")
        scheduler = cls(state["configs"], state["segments"], state["num_iterations"],
                        seed=state["seed"], start_iteration=state["iteration"])
        for config, segment in state["done"]:
            scheduler._restore_done(config, segment)
        for config, segment in state["running"]:
            scheduler._start(config, segment)
        for config in state["stopped"]:
            scheduler.stop(config)
        for config, segment, count in state["visits"]:
            scheduler._check_config(config)
            scheduler._check_segment(segment)
            scheduler._visits[(config, segment)] = int(count)
        version, internal, gauss = state["rng"]
        scheduler._rng.setstate((version, tuple(internal), gauss))
        return scheduler

    @classmethod
    def resume(cls, configs: Sequence[Hashable], segments: Sequence[int],
               num_iterations: int, seed: int, iteration: int,
               completed_units: Iterable[Unit],
               stopped_configs: Iterable[Hashable] = ()) -> MopScheduler:
        """Rebuild a scheduler from what the database recorded: the completed units.

        Units in flight when the driver died are lost and run again. Completed
        units of ``iteration`` are marked done; those of earlier iterations only
        count in :attr:`visits`. The random generator is derived from ``seed``,
        ``iteration`` and the number of units already done, so a resume is
        deterministic; resuming at an iteration boundary (no unit of
        ``iteration`` done) continues exactly like an uninterrupted run.

        Args:
            configs: as in the constructor.
            segments: as in the constructor.
            num_iterations: as in the constructor.
            seed: as in the constructor.
            iteration: the 0-based iteration to continue (the latest one with
                progress, or the next one when that was evaluated).
            completed_units: completed units of this run (earlier iterations may
                be included; later ones may not).
            stopped_configs: configurations stopped before. Defaults to none.

        Raises:
            UsageError: bad arguments, a unit from a later iteration, an unknown
                config or segment, or a unit recorded twice.
        """
        scheduler = cls(configs, segments, num_iterations, seed=seed,
                        start_iteration=iteration)
        for unit in completed_units:
            if unit.iteration > iteration:
                raise UsageError(f"{unit} is later than iteration {iteration}")
            try:
                scheduler._check_config(unit.config)
                scheduler._check_segment(unit.segment)
                if unit.iteration == iteration:
                    scheduler._restore_done(unit.config, unit.segment)
            except ValueError as error:
                raise UsageError(f"cannot resume: {error}") from error
            scheduler._visits[(unit.config, unit.segment)] += 1
        for config in stopped_configs:
            scheduler.stop(config)
        if scheduler._done:
            scheduler._rng = derived_rng(seed, iteration, len(scheduler._done))
        return scheduler

    # ------------------------------------------------------------------ internals
    def _check_config(self, config: Hashable) -> None:
        if config not in self._done_count:
            raise ValueError(f"unknown configuration {config!r}")

    def _check_segment(self, segment: int) -> None:
        if segment not in self._segment_set:
            raise ValueError(f"unknown segment {segment!r}")

    def _assign(self, idle: list[int]) -> list[Unit]:
        """Start the units of a priority matching between ``idle`` segments and configs.

        Every vertex's priority is its number of units left in this iteration
        (its degree in the graph of remaining units), ties broken at random.
        """
        edges = {s: self.eligible_configs(s) for s in idle}
        graph: dict[Node, list[Node]] = {}
        for segment, configs in edges.items():
            for config in configs:
                graph.setdefault((SEGMENT, segment), []).append((CONFIG, config))
                graph.setdefault((CONFIG, config), []).append((SEGMENT, segment))
        if not graph:
            return []
        p = len(self._segments)
        left: dict[Node, int] = {}
        for node in graph:
            if node[0] == CONFIG:
                left[node] = p - self._done_count[node[1]]
            else:
                left[node] = sum(
                    (c, node[1]) not in self._done for c in self.active_configs
                )
        order = list(graph)
        self._rng.shuffle(order)
        order.sort(key=left.__getitem__, reverse=True)
        for neighbours in graph.values():
            self._rng.shuffle(neighbours)
        mate = priority_matching(graph, order)
        return [
            self._start(mate[(SEGMENT, s)][1], s) for s in idle if (SEGMENT, s) in mate
        ]

    def _start(self, config: Hashable, segment: int) -> Unit:
        self._check_config(config)
        self._check_segment(segment)
        if segment in self._by_segment or config in self._by_config:
            raise ValueError(f"config {config!r} or segment {segment} is already busy")
        if (config, segment) in self._done:
            raise ValueError(f"config {config!r} already visited segment {segment}")
        unit = Unit(self._iteration, config, segment)
        self._by_segment[segment] = unit
        self._by_config[config] = unit
        return unit

    def _finish(self, unit: Unit) -> None:
        if self._by_segment.get(unit.segment) != unit:
            raise ValueError(f"{unit} is not running")
        del self._by_segment[unit.segment]
        del self._by_config[unit.config]

    def _restore_done(self, config: Hashable, segment: int) -> None:
        self._check_config(config)
        self._check_segment(segment)
        if (config, segment) in self._done:
            raise ValueError(f"config {config!r} completed segment {segment} twice")
        self._done.add((config, segment))
        self._done_count[config] += 1


class FixedRotationScheduler:
    """MADlib's ``fit_multiple`` schedule: synchronous rounds of a fixed rotation.

    With ``m = max(#configs, #segments)`` (configs padded with empty slots up to
    ``#segments``), an iteration has ``m`` rounds; in round ``r`` the ``j``-th
    segment trains the configuration in slot ``(j + r) % m``. A round starts only
    when the previous one is done, so segments idle while the slowest unit of a
    round runs, and some idle in every round when there are fewer configs than
    segments. It is the baseline :func:`simulate` compares :class:`MopScheduler` against.

    Args:
        configs: unique configuration keys.
        segments: unique segment indexes.
        num_iterations: total number of iterations, at least 1.

    Raises:
        UsageError: empty or duplicate configs or segments, bad iteration count.

    Example:
        >>> baseline = FixedRotationScheduler([1, 2, 3], [0, 1], num_iterations=1)
        >>> [[(u.config, u.segment) for u in units] for units in baseline.rounds()]
        [[(1, 0), (2, 1)], [(2, 0), (3, 1)], [(3, 0), (1, 1)]]
    """

    def __init__(self, configs: Sequence[Hashable], segments: Sequence[int],
                 num_iterations: int) -> None:
        configs, segments = tuple(configs), tuple(segments)
        _check_common(configs, segments, num_iterations, 0)
        self._slots: tuple[Hashable | None, ...] = configs + (None,) * max(
            0, len(segments) - len(configs))
        self._segments = segments
        self._num_iterations = num_iterations
        self._iteration = 0
        self._round = 0
        self._running: set[Unit] = set()

    @property
    def iteration(self) -> int:
        """Current 0-based iteration; equals ``num_iterations`` once finished."""
        return self._iteration

    @property
    def finished(self) -> bool:
        """Whether every iteration has been advanced past."""
        return self._iteration >= self._num_iterations

    @property
    def iteration_complete(self) -> bool:
        """Whether every round of the current iteration is done."""
        return not self.finished and self._round == len(self._slots)

    def rounds(self) -> list[list[Unit]]:
        """Return the current iteration's rounds, each a list of units in segment order."""
        m = len(self._slots)
        return [
            [Unit(self._iteration, config, segment)
             for j, segment in enumerate(self._segments)
             if (config := self._slots[(j + r) % m]) is not None]
            for r in range(m)
        ]

    def assign_all_idle(self) -> list[Unit]:
        """Start the next round when the previous one is done; else start nothing."""
        if self.finished or self.iteration_complete or self._running:
            return []
        units = self.rounds()[self._round]
        self._running = set(units)
        return units

    def complete(self, unit: Unit) -> None:
        """Record that a unit of the current round finished.

        Raises:
            ValueError: the unit is not running.
        """
        if unit not in self._running:
            raise ValueError(f"{unit} is not running")
        self._running.remove(unit)
        if not self._running:
            self._round += 1

    def advance(self) -> None:
        """Go to the next iteration once :attr:`iteration_complete` is true.

        Raises:
            ValueError: the current iteration is not complete.
        """
        if not self.iteration_complete:
            raise ValueError(f"iteration {self._iteration} is not complete")
        self._iteration += 1
        self._round = 0


def simulate(scheduler_factory: Callable[[], Scheduler],
             unit_time: Callable[[Unit], float]) -> float:
    """Replay a scheduler against a unit-time model and return the makespan.

    Event simulation without training: every unit takes ``unit_time(unit)``;
    units ending at the same instant are all reported before new ones are
    assigned; iterations advance as soon as they are complete (evaluation is
    taken to be free).

    Args:
        scheduler_factory: builds a fresh scheduler, e.g.
            ``lambda: MopScheduler(configs, segments, 2)``.
        unit_time: seconds one unit takes, non-negative.

    Returns:
        The time at which the last unit finishes.

    Raises:
        RuntimeError: the scheduler stalls (nothing running, nothing assigned,
            iteration not complete).

    Example:
        >>> def factory() -> MopScheduler:
        ...     return MopScheduler([1, 2, 3], [0, 1], num_iterations=1)
        >>> simulate(factory, lambda unit: 1.0)
        3.0
    """
    scheduler = scheduler_factory()
    now = 0.0
    events: list[tuple[float, int, Unit]] = []
    sequence = 0
    while not scheduler.finished:
        for unit in scheduler.assign_all_idle():
            heapq.heappush(events, (now + unit_time(unit), sequence, unit))
            sequence += 1
        if not events:
            if not scheduler.iteration_complete:
                raise RuntimeError("scheduler stalled: nothing running or assignable")
            scheduler.advance()
            continue
        now, _, unit = heapq.heappop(events)
        scheduler.complete(unit)
        while events and events[0][0] == now:
            scheduler.complete(heapq.heappop(events)[2])
    return now
