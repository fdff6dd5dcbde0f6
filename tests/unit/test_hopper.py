"""HopperScheduler: MOP's rules per configuration, with no iteration barrier."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gpdl_backend.errors import UsageError
from gpdl_backend.mop.hopper import HopperScheduler
from gpdl_backend.mop.scheduler import Unit


def drive(hopper: HopperScheduler, seed: int, on_iteration=None) -> list[Unit]:
    """Run everything, finishing a random running unit at each step; the units in order."""
    rng = random.Random(seed)
    finished: list[Unit] = []
    running: list[Unit] = []
    while True:
        started = hopper.assign_all_idle()
        running += started
        busy = {u.segment for u in running}
        for segment in hopper.segments:  # no idle segment while a unit is eligible
            if segment not in busy:
                assert not _eligible_for(hopper, segment, running)
        if not running:
            return finished
        unit = running.pop(rng.randrange(len(running)))
        finished.append(unit)
        if hopper.complete(unit):
            if on_iteration is not None:
                on_iteration(hopper, unit.config)
            hopper.end_iteration(unit.config)


def _eligible_for(hopper: HopperScheduler, segment: int, running: list[Unit]) -> bool:
    busy_configs = {u.config for u in running}
    return any(
        not hopper.is_stopped(c) and c not in busy_configs and not hopper.awaits_evaluation(c)
        and hopper.iteration_of(c) < hopper.budget_of(c)
        and segment not in hopper._tracks[c].done  # the rule under test
        for c in hopper.configs)


@pytest.mark.parametrize("seed", range(5))
def test_each_configuration_visits_every_segment_once_per_iteration(seed: int) -> None:
    hopper = HopperScheduler(segments=[0, 1, 2], seed=seed)
    budgets = {10: 1, 11: 3, 12: 2, 13: 4}
    for config, budget in budgets.items():
        hopper.add(config, budget)
    units = drive(hopper, seed)
    assert Counter((u.config, u.iteration, u.segment) for u in units) == Counter(
        {(c, i, s): 1 for c, b in budgets.items() for i in range(b) for s in range(3)})
    for config, budget in budgets.items():
        assert hopper.iteration_of(config) == budget and hopper.at_budget(config)
    assert hopper.active_count == 0 and hopper.idle


def test_a_configuration_never_runs_on_two_segments_at_once() -> None:
    hopper = HopperScheduler(segments=[0, 1, 2, 3])
    hopper.add("only", budget=2)
    assert len(hopper.assign_all_idle()) == 1
    assert hopper.assign_all_idle() == []


def test_an_iteration_waits_for_its_evaluation_while_others_train() -> None:
    hopper = HopperScheduler(segments=[0, 1])
    hopper.add("a", budget=2)
    hopper.add("b", budget=2)
    first = hopper.assign_all_idle()
    for unit in first:
        assert not hopper.complete(unit)
    second = hopper.assign_all_idle()
    done = [hopper.complete(unit) for unit in second]
    assert done == [True, True]
    assert hopper.assign_all_idle() == []  # both await evaluation
    hopper.end_iteration("a")
    started = hopper.assign_all_idle()
    assert [u.config for u in started] == ["a"] and started[0].iteration == 1
    with pytest.raises(ValueError, match="not complete"):
        hopper.end_iteration("a")


def test_extend_promotes_and_stop_ends() -> None:
    hopper = HopperScheduler(segments=[0])
    hopper.add(1, budget=1)
    drive(hopper, 0)
    assert hopper.at_budget(1) and hopper.assign_all_idle() == []
    hopper.extend(1, 3)
    units = drive(hopper, 0)
    assert [u.iteration for u in units] == [1, 2]
    with pytest.raises(UsageError, match="cannot go down"):
        hopper.extend(1, 2)
    hopper.stop(1)
    with pytest.raises(UsageError, match="stopped"):
        hopper.extend(1, 5)


def test_a_stopped_configurations_unit_in_flight_is_accepted_and_dropped() -> None:
    hopper = HopperScheduler(segments=[0, 1])
    hopper.add(1, budget=2)
    unit = hopper.assign_all_idle()[0]
    assert hopper.stop(1) == unit
    assert hopper.complete(unit) is False
    assert hopper.assign_all_idle() == [] and hopper.idle


def test_resume_continues_from_the_recorded_segments() -> None:
    hopper = HopperScheduler(segments=[0, 1, 2])
    hopper.add(5, budget=2, iteration=1, done_segments=[2])
    units = drive(hopper, 1)
    assert sorted((u.iteration, u.segment) for u in units) == [(1, 0), (1, 1)]
    whole = HopperScheduler(segments=[0, 1])
    whole.add(6, budget=1, done_segments=[0, 1])
    assert whole.awaits_evaluation(6)  # died before its evaluation: evaluate first


def test_units_left_counts_what_the_budgets_still_need() -> None:
    hopper = HopperScheduler(segments=[0, 1])
    hopper.add(1, budget=2)
    hopper.add(2, budget=1, done_segments=[0])
    assert hopper.units_left() == 4 + 1


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        HopperScheduler(segments=[])
    hopper = HopperScheduler(segments=[0])
    hopper.add(1, budget=1)
    with pytest.raises(UsageError, match="already"):
        hopper.add(1, budget=1)
    with pytest.raises(UsageError, match="below"):
        hopper.add(2, budget=0, iteration=1)
    with pytest.raises(UsageError, match="unknown segments"):
        hopper.add(3, budget=1, done_segments=[4])
