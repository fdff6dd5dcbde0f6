"""Unit tests of the AutoML oracles (pure: no database, no TensorFlow).

Searches are replayed on simulated workers where configuration ``key`` has a
seeded random quality and loss ``quality + 1 / iterations``, so its rank never
changes with training, and iteration times are seeded random too, so reports
arrive out of order.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest

from gpdl_backend.automl.hyperband import hyperband_schedule
from gpdl_backend.automl.oracles import (
    Asha,
    Hyperband,
    Job,
    NewConfig,
    Oracle,
    Promote,
    RandomOrTpe,
    asha_rungs,
    make_oracle,
    oracle_from_state,
)
from gpdl_backend.automl.params import AutomlParams, parse_automl_params
from gpdl_backend.automl.simulate import simulate_search
from gpdl_backend.errors import UsageError


def quality(seed: int) -> Callable[[int, int], float]:
    def loss(key: int, iterations: int) -> float:
        return random.Random(seed * 100_003 + key).random() + 1 / iterations
    return loss


def iteration_time(seed: int) -> Callable[[int], float]:
    return lambda key: random.Random(seed * 7_919 + key).uniform(0.5, 2.0)


class Recorder:
    """An oracle seen by the simulation: records its answers and checks ASHA's rules."""

    def __init__(self, oracle: Oracle, asha: Asha | None = None) -> None:
        self.oracle = oracle
        self.asha = asha
        self.jobs: list[tuple[Job, int | None]] = []
        self.new_configs = 0
        self.bracket: dict[int, int | None] = {}
        self.reports: dict[int, dict[int, float]] = defaultdict(dict)  # rung -> key -> loss
        self.rung: dict[int, int] = {}
        self.promoted_from: Counter[int] = Counter()

    def next_job(self) -> Job | None:
        job = self.oracle.next_job()
        self.jobs.append((job, None))
        if isinstance(job, NewConfig):
            self.new_configs += 1
        if self.asha is not None:
            self._check_asha(job)
        if isinstance(job, Promote):
            self.rung[job.key] = job.rung
            self.promoted_from[job.rung - 1] += 1
        return job

    def _check_asha(self, job: Job | None) -> None:
        if job is None:  # no worker idles while a configuration may start
            assert self.new_configs == self.asha.num_configs
        if isinstance(job, Promote):  # among the top floor(n / eta) of its rung, now
            rung = job.rung - 1
            ranked = sorted(self.reports[rung], key=lambda k: (self.reports[rung][k], k))
            assert job.key in ranked[: len(ranked) // self.asha.eta]
            assert self.rung[job.key] == rung
            assert job.budget == self.asha.rungs[job.rung]

    def started(self, key: int, job: NewConfig) -> None:
        self.bracket[key] = job.bracket
        self.rung[key] = 0
        self.oracle.started(key, job)

    def report(self, key: int, iterations: int, loss: float) -> None:
        self.reports[self.rung[key]][key] = loss
        self.oracle.report(key, iterations, loss)

    @property
    def done(self) -> bool:
        return self.oracle.done


# ------------------------------------------------------------------------------ ASHA


@pytest.mark.parametrize("workers", [1, 2, 4, 9, 30])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asha_promotes_only_the_top_third_and_never_idles(workers: int, seed: int) -> None:
    asha = Asha(R=9, eta=3, min_r=1, num_configs=27)
    recorder = Recorder(asha, asha=asha)
    trace = simulate_search(recorder, workers, iteration_time(seed), quality(seed))
    assert asha.done and recorder.new_configs == 27
    reached = [key for key in recorder.rung if recorder.rung[key] == 2]
    # Once done, nothing is promotable: the final top floor(n_k / 3) of every rung moved on.
    for rung in (0, 1):
        ranked = sorted(recorder.reports[rung], key=lambda k: (recorder.reports[rung][k], k))
        assert all(recorder.rung[key] > rung for key in ranked[: len(ranked) // 3])
    assert len(recorder.reports[0]) == 27 and len(recorder.reports[1]) >= 9
    assert 3 <= len(reached) <= 9
    assert sorted(reached) == sorted(k for k in recorder.rung if asha.outcome(k) == "finished")
    assert all(asha.outcome(k) == "stopped" for k in recorder.rung if k not in reached)
    best = min(recorder.reports[0], key=lambda k: recorder.reports[0][k])
    assert best in reached and trace.best_key == best
    iterations = sum(len(recorder.reports[k]) * (r - ([0, *asha.rungs][k]))
                     for k, r in enumerate(asha.rungs))
    assert trace.total_iterations == iterations


def test_asha_with_one_worker_in_order_promotes_as_soon_as_a_third_is_better() -> None:
    asha = Asha(R=9, eta=3, min_r=1, num_configs=9)
    trace = simulate_search(asha, 1, lambda key: 1.0, lambda key, iterations: key + 1 / iterations)
    jobs = [(e.kind, e.key, e.iterations) for e in trace.events if e.kind != "report"]
    assert jobs == [
        ("start", 1, 1), ("start", 2, 1), ("start", 3, 1), ("promote", 1, 3),
        ("start", 4, 1), ("start", 5, 1), ("start", 6, 1), ("promote", 2, 3),
        ("start", 7, 1), ("start", 8, 1), ("start", 9, 1), ("promote", 3, 3),
        ("promote", 1, 9),
    ]


def test_asha_rungs_grow_by_eta_up_to_R() -> None:
    assert asha_rungs(9) == [1, 3, 9]
    assert asha_rungs(6) == [1, 3, 6]
    assert asha_rungs(81, 3, 3) == [3, 9, 27, 81]
    assert asha_rungs(10, 2, 10) == [10]


def test_asha_outcomes_while_running_and_once_done() -> None:
    asha = Asha(R=9, eta=3, min_r=1, num_configs=4)
    for key in (1, 2, 3):
        asha.started(key, asha.next_job())
    assert [asha.outcome(k) for k in (1, 2, 3)] == ["training"] * 3
    for key, loss in ((1, 0.5), (2, math.nan), (3, 0.2)):
        asha.report(key, 1, loss)
    assert asha.next_job() == Promote(key=3, budget=3, rung=1)  # NaN ranks last
    # One configuration is still to start: the others may yet be promoted.
    assert [asha.outcome(k) for k in (1, 2, 3)] == ["paused", "paused", "training"]
    assert asha.rung_of(3) == 1 and asha.rung_of(1) == 0
    job = asha.next_job()
    assert job == NewConfig(budget=1, bracket=None, rung=0)
    assert asha.next_job() is None and not asha.done
    asha.started(4, job)
    asha.report(4, 1, 0.9)
    asha.report(3, 3, 0.1)
    # Rung 0: the top floor(4 / 3) = 1 is 3, already promoted. Rung 1 is closed with
    # floor(1 / 3) = 0: its best goes on all the same, so one configuration reaches R.
    assert asha.next_job() == Promote(key=3, budget=9, rung=2)
    assert [asha.outcome(k) for k in (1, 2, 3, 4)] == ["stopped", "stopped", "training",
                                                        "stopped"]
    assert not asha.done
    asha.report(3, 9, 0.05)
    assert asha.next_job() is None and asha.done
    assert [asha.outcome(k) for k in (1, 2, 3, 4)] == ["stopped"] * 2 + ["finished", "stopped"]


def test_asha_refuses_a_report_at_the_wrong_budget_or_of_an_unknown_config() -> None:
    asha = Asha(R=9, num_configs=2)
    with pytest.raises(ValueError, match="no NewConfig handed out"):
        asha.started(1, NewConfig(1, None, 0))
    asha.started(1, asha.next_job())
    with pytest.raises(ValueError, match="already started"):
        asha.started(1, asha.next_job())
    with pytest.raises(ValueError, match="trains to 1 iterations, not 3"):
        asha.report(1, 3, 0.5)
    with pytest.raises(ValueError, match="configuration 5 was never started"):
        asha.report(5, 1, 0.5)
    asha.report(1, 1, 0.5)
    with pytest.raises(ValueError, match="already reported"):
        asha.report(1, 1, 0.5)


# ------------------------------------------------------------------------- Hyperband


@pytest.mark.parametrize(("R", "eta", "skip_last"), [(9, 3, 0), (6, 3, 0), (81, 3, 0), (27, 3, 1),
                                                     (16, 2, 0)])
@pytest.mark.parametrize("workers", [1, 3, 8])
def test_hyperband_follows_its_schedule_exactly(R: int, eta: int, skip_last: int,
                                                workers: int) -> None:
    oracle = Hyperband(R, eta, skip_last)
    recorder = Recorder(oracle)
    trace = simulate_search(recorder, workers, iteration_time(R), quality(R))
    assert oracle.done
    schedule = hyperband_schedule(R, eta, skip_last)
    counts = Counter((recorder.bracket[k], recorder.rung[k]) for k in recorder.rung)
    reached = Counter()
    for (s, rung), count in counts.items():
        for lower in range(rung + 1):
            reached[(s, lower)] += count
    assert reached == Counter({(row.s, row.i): row.n_i for row in schedule})
    previous: dict[int, int] = {}
    expected = 0
    for row in schedule:
        expected += row.n_i * (row.r_i - (previous.get(row.s, 0) if row.i else 0))
        previous[row.s] = row.r_i
    assert trace.total_iterations == expected
    last = {row.s: row.i for row in schedule}
    for key in recorder.rung:
        finished = recorder.rung[key] == last[recorder.bracket[key]]
        assert oracle.outcome(key) == ("finished" if finished else "stopped")


def test_hyperband_promotes_the_best_only_after_the_whole_rung_reported() -> None:
    oracle = Hyperband(9, 3)
    recorder = Recorder(oracle)
    trace = simulate_search(recorder, 4, iteration_time(5), quality(5))
    reported: dict[tuple[int, int], set[int]] = defaultdict(set)
    members = {(row.s, row.i): row.n_i for row in hyperband_schedule(9, 3)}
    rung_of: dict[int, int] = {}
    for event in trace.events:
        s = recorder.bracket[event.key]
        if event.kind == "report":
            reported[(s, event.rung)].add(event.key)
        elif event.kind == "promote":
            below = reported[(s, event.rung - 1)]
            assert len(below) == members[(s, event.rung - 1)]  # the barrier
            losses = {k: quality(5)(k, event.iterations) for k in below}
            best = sorted(below, key=lambda k: (losses[k], k))[: members[(s, event.rung)]]
            assert event.key in best
            assert rung_of[event.key] == event.rung - 1
        rung_of[event.key] = event.rung


def test_hyperband_outcomes_at_a_barrier() -> None:
    oracle = Hyperband(6, 3)  # bracket 1: 3 configs at 2 iterations, best 1 to 6
    jobs = [oracle.next_job() for _ in range(5)]
    assert [(j.bracket, j.budget) for j in jobs] == [(1, 2)] * 3 + [(0, 6)] * 2
    assert oracle.next_job() is None
    for key, job in enumerate(jobs, start=1):
        oracle.started(key, job)
    oracle.report(1, 2, 0.3)
    oracle.report(2, 2, 0.1)
    assert oracle.next_job() is None and oracle.outcome(1) == "paused"
    oracle.report(3, 2, math.inf)
    assert [oracle.outcome(k) for k in (1, 2, 3)] == ["stopped", "paused", "stopped"]
    assert oracle.next_job() == Promote(key=2, budget=6, rung=1)
    oracle.report(2, 6, 0.05)
    oracle.report(4, 6, 0.2)
    assert not oracle.done
    oracle.report(5, 6, 0.3)
    assert oracle.done and oracle.next_job() is None
    assert [oracle.outcome(k) for k in (2, 4, 5)] == ["finished"] * 3


# -------------------------------------------------------------------------- hyperopt


def test_random_or_tpe_trains_every_configuration_the_same_budget() -> None:
    oracle = RandomOrTpe(num_configs=7, num_iterations=3)
    trace = simulate_search(oracle, 3, lambda key: 1.0, quality(0))
    assert oracle.done
    assert [e.iterations for e in trace.events if e.kind == "start"] == [3] * 7
    assert trace.total_iterations == 21 and trace.makespan == 9.0 and trace.idle_time == 6.0
    assert {oracle.outcome(k) for k in range(1, 8)} == {"finished"}


# --------------------------------------------------------------------- state, params


class Driver:
    """A deterministic driver: fills its workers, then one seeded random job ends."""

    def __init__(self, workers: int, seed: int) -> None:
        self.workers, self.rng = workers, random.Random(seed)
        self.running: list[tuple[int, int]] = []
        self.next_key = 1
        self.jobs: list[Job] = []
        self.loss = quality(seed)

    def step(self, oracle: Oracle) -> bool:
        while len(self.running) < self.workers:
            job = oracle.next_job()
            if job is None:
                break
            self.jobs.append(job)
            if isinstance(job, NewConfig):
                key, self.next_key = self.next_key, self.next_key + 1
                oracle.started(key, job)
            else:
                key = job.key
            self.running.append((key, job.budget))
        if not self.running:
            return False
        key, budget = self.running.pop(self.rng.randrange(len(self.running)))
        loss = math.nan if key % 7 == 0 else self.loss(key, budget)
        oracle.report(key, budget, loss)
        return True


ORACLES = {
    "asha": lambda: Asha(R=27, eta=3, min_r=1, num_configs=30),
    "hyperband": lambda: Hyperband(R=27, eta=3),
    "hyperopt": lambda: RandomOrTpe(num_configs=40, num_iterations=4),
}


@pytest.mark.parametrize("name", sorted(ORACLES))
@pytest.mark.parametrize("stop_after", [1, 10, 25])
def test_a_restored_state_continues_identically(name: str, stop_after: int) -> None:
    oracle = ORACLES[name]()
    driver = Driver(workers=4, seed=3)
    for _ in range(stop_after):
        driver.step(oracle)
    assert not oracle.done
    state = json.loads(json.dumps(oracle.state(), allow_nan=False))
    restored, restored_driver = oracle_from_state(state), copy.deepcopy(driver)
    assert type(restored) is type(oracle) and restored.state() == oracle.state()
    while driver.step(oracle):
        pass
    while restored_driver.step(restored):
        pass
    assert restored_driver.jobs == driver.jobs and len(driver.jobs) > stop_after
    assert restored.done and oracle.done
    keys = range(1, driver.next_key)
    assert [restored.outcome(k) for k in keys] == [oracle.outcome(k) for k in keys]
    assert [restored.rung_of(k) for k in keys] == [oracle.rung_of(k) for k in keys]


def test_a_new_config_handed_out_but_not_started_is_handed_out_again_after_restore() -> None:
    oracle = Hyperband(6, 3)
    first = oracle.next_job()
    restored = Hyperband.from_state(oracle.state())
    assert restored.next_job() == first
    asha = Asha(R=6, num_configs=1)
    asha.next_job()
    assert Asha.from_state(asha.state()).next_job() == NewConfig(1, None, 0)


@pytest.mark.parametrize(("method", "text", "kind"), [
    ("asha", "R=9", Asha), ("hyperband", None, Hyperband), ("hyperopt", None, RandomOrTpe),
])
def test_make_oracle_follows_the_method(method: str, text: str | None, kind: type) -> None:
    oracle = make_oracle(parse_automl_params(method, text))
    assert type(oracle) is kind
    assert oracle_from_state(oracle.state()).state() == oracle.state()


@pytest.mark.parametrize(("make", "message"), [
    (lambda: make_oracle(AutomlParams("asha", R=9, eta=1, min_r=1, num_configs=3)),
     "eta must be an integer >= 2"),
    (lambda: make_oracle(AutomlParams("asha", R=9, eta=3, min_r=10, num_configs=3)),
     "min_r must be <= R"),
    (lambda: make_oracle(AutomlParams("hyperband", R=9, eta=3, skip_last=3)),
     "skip_last must be between 0 and s_max"),
    (lambda: make_oracle(AutomlParams("hyperopt", num_configs=0, num_iterations=1)),
     "num_configs must be an integer >= 1"),
    (lambda: make_oracle(AutomlParams("bohb")), "automl_method must be one of"),
    (lambda: Asha(R=0), "R must be an integer >= 1"),
    (lambda: Asha(num_configs=True), "num_configs must be an integer >= 1"),
    (lambda: RandomOrTpe(num_iterations=2.5), "num_iterations must be an integer >= 1"),
    (lambda: oracle_from_state({"method": "bohb"}), "not the state of an AutoML oracle"),
    (lambda: Asha.from_state(Hyperband().state()),
     r"not an oracle state of method 'asha' \(got 'hyperband'\)"),
])
def test_bad_params_are_usage_errors(make: Callable[[], object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make()


def test_simulation_refuses_no_workers() -> None:
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        simulate_search(Asha(), 0, lambda key: 1.0, quality(0))
