"""AutoML in SQL: MADlib's ``madlib_keras_automl`` and ``hyperband_schedule``, and gpdl's ASHA.

Each search trains real Keras models on the test images in a driver process on
the database host, as a fit does; the tests check what MADlib's tables record
and the rules each method promises (Hyperband's barrier and its top-k, ASHA's
top 1/eta), exact visits per configuration, stops and a resume after a kill.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from gpdl_backend.mop.progress import read_progress
from tests.integration import trainer_helpers as h
from tests.integration.plain_sql import refusal, run
from tests.integration.test_sql_api import job_row, table_exists, unique, wait_for

pytestmark = pytest.mark.db

SEGMENTS = 2
COMPILE_GRID = ("{'loss': ['categorical_crossentropy'], 'optimizer_params_list': "
                "[{'optimizer': ['Adam'], 'lr': [0.0005, 0.05, 'log']}], "
                "'metrics': ['accuracy']}")
FIT_GRID = "{'batch_size': [16, 32], 'epochs': [1]}"


@pytest.fixture(scope="module")
def data(dsn: str, shared_tmp_factory) -> dict[str, int]:
    h.prepare_data(dsn, shared_tmp_factory("gpdl-automl-"))
    return h.arch_table(dsn)


def automl(dsn: str, out: str, method: str, params: str, model_ids: list[int],
           background: bool = False, seed: int = 1) -> str:
    return run(dsn, "SELECT gpdl.madlib_keras_automl(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, validation_table => %s, background => %s)",
               (h.TRAIN, out, h.ARCH, out + "_mst", model_ids, COMPILE_GRID, FIT_GRID,
                method, params, seed, h.VALIDATION, background))[0][0]


def configs(dsn: str, out: str) -> dict[int, dict]:
    names = ("status", "iterations_done", "budget", "s", "i", "metrics_iters",
             "validation_loss", "compile_params", "fit_params")
    rows = run(dsn, f"SELECT mst_key, {', '.join(names)} FROM {out}_info ORDER BY mst_key")
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


def assert_exact_visits(dsn: str, out: str, found: dict[int, dict]) -> None:
    """Each configuration visited every segment once in each iteration it did, no more
    (one stopped by hand may have begun one more)."""
    rows = Counter(run(dsn, f"SELECT iteration, mst_key, segment FROM {out}_progress"))
    assert max(rows.values()) == 1, "a unit committed twice"
    expected = {(i, mst, s) for mst, c in found.items() for i in range(c["iterations_done"])
                for s in range(SEGMENTS)}
    begun = {(i, mst, s) for i, mst, s in rows if found[mst]["status"] == "stopped"
             and i == found[mst]["iterations_done"]}
    assert set(rows) - begun == expected


_PLAN = ("SELECT units, seconds FROM gpdl.automl_plan('asha', 'R=3, eta=3, num_configs=3', "
         "%s, unit_seconds => %s{}) WHERE i IS NULL")
_SPACE = (", model_arch_table => %s, model_id_list => %s, compile_params_grid => %s, "
          "fit_params_grid => %s")


def _relations(dsn: str) -> set[str]:
    return {name for name, in run(dsn, "SELECT oid::regclass::text FROM pg_class "
                                       "WHERE relkind IN ('r', 'v', 'p')")}


def test_plan_probes_the_unit_time_where_no_job_trained(dsn: str, data: dict[str, int]) -> None:
    """A table no job trained on: the ETA comes from a probe of the space, writing nothing."""
    from gpdl_backend.preprocess import training_preprocessor

    fresh = "am_probe_packed"
    training_preprocessor(dsn, "trainer_images", fresh, buffer_size=40, if_exists="replace")
    before = _relations(dsn)
    (units, seconds), = run(dsn, _PLAN.format(""), (fresh, None))
    assert units > 0 and seconds is None  # nothing to measure it from
    space = (h.ARCH, [data["good"]], COMPILE_GRID, FIT_GRID)
    (probed_units, probed), = run(dsn, _PLAN.format(_SPACE), (fresh, None, *space))
    assert probed_units == units and 0 < probed < 600
    print(f"\nprobed ETA of {units} units on {SEGMENTS} segments: {probed:.1f} s")
    assert _relations(dsn) == before
    # The probe trains the space's first configuration: one Keras refuses, in one line.
    wrong = (h.ARCH, [data["wrong_shape"]], COMPILE_GRID, FIT_GRID)
    assert f"model_id {data['wrong_shape']}" in refusal(dsn, _PLAN.format(_SPACE),
                                                        (fresh, None, *wrong))
    # A unit time given (or measured) is used as it is: no probe runs.
    (_, given), = run(dsn, _PLAN.format(_SPACE), (fresh, 2.0, *wrong))
    assert given == pytest.approx(units * 2.0 / SEGMENTS)
    assert "together" in refusal(dsn, _PLAN.format(", model_arch_table => %s"),
                                 (fresh, None, h.ARCH))
    assert _relations(dsn) == before


def test_hyperband_schedule_is_madlibs_table(dsn: str) -> None:
    table = unique("hb_schedule")
    run(dsn, "SELECT gpdl.hyperband_schedule(%s, 9, 3)", (table,))
    rows = run(dsn, f"SELECT s, i, n_i, r_i FROM {table} ORDER BY s DESC, i")
    # Hyperband with R = 9, eta = 3: brackets of 9, 5 and 3 configurations.
    assert rows == [(2, 0, 9, 1), (2, 1, 3, 3), (2, 2, 1, 9),
                    (1, 0, 5, 3), (1, 1, 1, 9), (0, 0, 3, 9)]
    assert "already exists" in refusal(dsn, "SELECT gpdl.hyperband_schedule(%s, 9)", (table,))
    assert "eta" in refusal(dsn, "SELECT gpdl.hyperband_schedule(%s, 9, 1)",
                            (unique("hb_bad"),))


def test_hyperband_keeps_the_best_of_each_rung(dsn: str, data: dict[str, int]) -> None:
    """R=3, eta=3: bracket 1 trains 3 configurations 1 iteration, the best goes on to 3;
    bracket 0 trains 2 configurations 3 iterations."""
    out = unique("automl_hb")
    job = automl(dsn, out, "hyperband", "R=3, eta=3, skip_last=0", [data["good"]])
    assert job_row(dsn, job)["state"] == "finished"
    found = configs(dsn, out)
    assert sorted(Counter(c["s"] for c in found.values()).items()) == [(0, 2), (1, 3)]
    bracket = {mst: c for mst, c in found.items() if c["s"] == 1}
    first_loss = {mst: c["validation_loss"][0] for mst, c in bracket.items()}
    best = min(first_loss, key=first_loss.get)
    assert bracket[best]["iterations_done"] == 3 and bracket[best]["status"] == "finished"
    assert bracket[best]["metrics_iters"] == [1, 3]
    for mst, c in bracket.items():
        if mst != best:
            assert (c["iterations_done"], c["status"], c["metrics_iters"]) == \
                (1, "early_stopped", [1])
    for c in found.values():
        if c["s"] == 0:
            assert (c["iterations_done"], c["status"]) == (3, "finished")
        assert len(c["validation_loss"]) == len(c["metrics_iters"])
    assert_exact_visits(dsn, out, found)
    units = run(dsn, f"SELECT count(*) FROM {out}_progress")[0][0]
    assert units == (3 * 1 + 1 * 2 + 2 * 3) * SEGMENTS
    selection = run(dsn, f"SELECT mst_key, compile_params, fit_params FROM {out}_mst "
                         "ORDER BY mst_key")
    assert selection == [(k, c["compile_params"], c["fit_params"]) for k, c in found.items()]
    summary = run(dsn, f"SELECT automl_method, automl_params, status FROM {out}_summary")[0]
    assert summary == ("hyperband", "R=3, eta=3, skip_last=0", "finished")
    assert run(dsn, f"SELECT count(*) FROM {out}_progress WHERE model_weights IS NOT NULL"
               )[0][0] == 0  # a finished search keeps only <out>
    # What the learning-curve widget reads: each configuration on its own clock.
    progress = read_progress(dsn, out)
    for config in progress.configs:
        record = found[config.mst_key]
        curve = config.series("validation", "loss")
        assert curve.x == tuple(float(i) for i in record["metrics_iters"])
        assert curve.y == pytest.approx(record["validation_loss"])
        assert (config.budget, config.rung) == (record["budget"], record["i"])
    assert progress.best("loss").mst_key == min(
        found, key=lambda mst: min(found[mst]["validation_loss"]))


def test_asha_promotes_the_top_third_without_a_barrier(dsn: str, data: dict[str, int]) -> None:
    out = unique("automl_asha")
    job = automl(dsn, out, "asha", "R=3, eta=3, min_r=1, num_configs=6, algorithm=rand",
                 [data["good"]])
    row = job_row(dsn, job)
    assert row["state"] == "finished", row
    found = configs(dsn, out)
    assert len(found) == 6
    promoted = {mst for mst, c in found.items() if c["iterations_done"] == 3}
    first_loss = {mst: c["validation_loss"][0] for mst, c in found.items()}
    # The best at rung 0 is always promoted; at most one promotion beyond the final top 2
    # (one made when only 3 had reported).
    assert min(first_loss, key=first_loss.get) in promoted
    assert 2 <= len(promoted) <= 3
    for mst, c in found.items():
        expected = ("finished", [1, 3]) if mst in promoted else ("early_stopped", [1])
        assert (c["status"], c["metrics_iters"]) == expected
    assert_exact_visits(dsn, out, found)
    assert row["units_done"] == (6 + 2 * len(promoted)) * SEGMENTS


def test_hyperopt_tpe_trains_each_configuration_its_iterations(
        dsn: str, data: dict[str, int]) -> None:
    out = unique("automl_tpe")
    automl(dsn, out, "hyperopt", "num_configs=3, num_iterations=2, algorithm=tpe",
           [data["good"]])
    found = configs(dsn, out)
    assert [(c["iterations_done"], c["status"]) for c in found.values()] == \
        [(2, "finished")] * 3
    assert_exact_visits(dsn, out, found)


def test_bad_searches_are_refused_before_any_table(dsn: str, data: dict[str, int]) -> None:
    out = unique("automl_bad")
    cases = [
        ("gridsearch", "R=3", "automl_method"),
        ("hyperband", "R=3, eta=1", "eta"),
        ("hyperband", "R=3, num_configs=2", "num_configs"),
        ("asha", "R=3, min_r=5", "min_r"),
    ]
    for method, params, word in cases:
        message = refusal(dsn, "SELECT gpdl.madlib_keras_automl(%s, %s, %s, %s, %s, %s, %s, "
                               "%s, %s)", (h.TRAIN, out, h.ARCH, out + "_mst",
                                           [data["good"]], COMPILE_GRID, FIT_GRID, method,
                                           params))
        assert word in message, message
    message = refusal(dsn, "SELECT gpdl.madlib_keras_automl(%s, %s, %s, %s, %s, %s, %s)",
                      (h.TRAIN, out, h.ARCH, out + "_mst", [data["good"]],
                       "{'loss': ['categorical_crossentropy'], 'optimizer': 'x'}", FIT_GRID))
    assert "optimizer" in message, message
    message = refusal(dsn, "SELECT gpdl.madlib_keras_automl(%s, %s, %s, %s, %s, %s, %s)",
                      (h.TRAIN, out, h.ARCH, out + "_mst", [data["wrong_shape"]],
                       COMPILE_GRID, FIT_GRID))
    assert f"model_id {data['wrong_shape']}" in message, message
    for suffix in ("", "_info", "_summary", "_progress", "_mst", "_mst_summary"):
        assert not table_exists(dsn, out + suffix)


def test_killed_search_resumes_with_exact_visits(dsn: str, data: dict[str, int]) -> None:
    out = unique("automl_lost")
    job = automl(dsn, out, "asha", "R=3, eta=3, min_r=1, num_configs=6", [data["good"]],
                 background=True)
    deadline = time.monotonic() + 180
    while run(dsn, f"SELECT count(*) FROM {out}_progress")[0][0] < 5:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(job_row(dsn, job)["driver_pid"], signal.SIGKILL)
    assert wait_for(dsn, job, ("lost",), timeout=10)["state"] == "lost"
    run(dsn, "SELECT gpdl.resume_job(%s)", (job,))
    assert job_row(dsn, job)["state"] == "finished"
    found = configs(dsn, out)
    assert len(found) == 6
    assert {c["status"] for c in found.values()} <= {"finished", "early_stopped"}
    assert_exact_visits(dsn, out, found)


def test_stopping_a_configuration_mid_search(dsn: str, data: dict[str, int]) -> None:
    out = unique("automl_stop")
    job = automl(dsn, out, "hyperopt", "num_configs=3, num_iterations=4, algorithm=rand",
                 [data["good"]], background=True)
    deadline = time.monotonic() + 120
    while not run(dsn, f"SELECT count(*) FROM {out}_progress")[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first = run(dsn, f"SELECT min(mst_key) FROM {out}_info")[0][0]
    run(dsn, "SELECT gpdl.stop_job(%s, %s)", (job, first))
    assert wait_for(dsn, job, ("finished", "failed", "lost"))["state"] == "finished"
    found = configs(dsn, out)
    assert found[first]["status"] == "stopped" and found[first]["iterations_done"] < 4
    assert all(c["iterations_done"] == 4 for mst, c in found.items() if mst != first)


def test_a_stopped_search_resumes_where_it_stopped(dsn: str, data: dict[str, int]) -> None:
    out = unique("automl_pause")
    job = automl(dsn, out, "asha", "R=3, eta=3, min_r=1, num_configs=4", [data["good"]],
                 background=True)
    deadline = time.monotonic() + 180
    while run(dsn, f"SELECT count(*) FROM {out}_progress")[0][0] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    run(dsn, "SELECT gpdl.stop_job(%s)", (job,))
    assert wait_for(dsn, job, ("stopped", "finished", "failed", "lost"))["state"] == "stopped"
    stopped = configs(dsn, out)
    assert "training" not in {c["status"] for c in stopped.values()}
    run(dsn, "SELECT gpdl.resume_job(%s)", (job,))
    assert job_row(dsn, job)["state"] == "finished"
    found = configs(dsn, out)
    assert len(found) == 4 and "finished" in {c["status"] for c in found.values()}
    assert {c["status"] for c in found.values()} <= {"finished", "early_stopped"}
    for mst, before in stopped.items():  # nothing trained before the stop is lost
        assert found[mst]["metrics_iters"][:len(before["metrics_iters"])] == \
            before["metrics_iters"]
    assert_exact_visits(dsn, out, found)


def test_a_person_clones_and_extends_configurations_of_a_running_search(
        dsn: str, data: dict[str, int]) -> None:
    out = unique("automl_steer")
    job = automl(dsn, out, "hyperopt", "num_configs=2, num_iterations=500, algorithm=rand",
                 [data["good"]], background=True)
    deadline = time.monotonic() + 180
    while run(dsn, f"SELECT coalesce(max(iterations_done), 0) FROM {out}_info")[0][0] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    source = run(dsn, f"SELECT mst_key FROM {out}_info WHERE iterations_done >= 1 "
                      "ORDER BY mst_key LIMIT 1")[0][0]
    # Refused up front, one line each: the search still decides about a training one.
    assert "still in the search (training)" in refusal(
        dsn, "SELECT gpdl.extend_config(%s, %s, 2)", (out, source))
    assert "iterations must be an integer >= 1" in refusal(
        dsn, "SELECT gpdl.extend_config(%s, %s, 0)", (out, source))
    assert f"job {out} has no mst_key 99" in refusal(
        dsn, "SELECT gpdl.clone_config(%s, 99)", (out,))
    bad = ("loss='categorical_crossentropy',optimizer='SGD(momentum=5.0)',"
           "metrics=['accuracy']")
    assert f"cannot clone mst_key {source}" in refusal(
        dsn, "SELECT gpdl.clone_config(%s, %s, %s)", (out, source, bad))
    clone = run(dsn, "SELECT gpdl.clone_config(%s, %s, fit_params => %s, iterations => 1)",
                (out, source, "batch_size=8,epochs=1"))[0][0]
    assert clone == 3  # after the search's own two
    # A hand-made configuration can be extended at any time: 1 + 2 iterations.
    assert run(dsn, "SELECT gpdl.extend_config(%s, %s, 2)", (out, clone))[0][0] == 3
    deadline = time.monotonic() + 180
    while configs(dsn, out)[clone]["status"] != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    run(dsn, "SELECT gpdl.stop_job(%s)", (job,))
    assert wait_for(dsn, job, ("stopped", "finished", "failed", "lost"))["state"] == "stopped"
    found = configs(dsn, out)
    assert (found[clone]["iterations_done"], found[clone]["status"]) == (3, "finished")
    assert found[clone]["metrics_iters"][-1] == 3  # evaluated at its new budget
    assert found[clone]["fit_params"] == "batch_size=8,epochs=1"
    assert found[clone]["compile_params"] == found[source]["compile_params"]
    assert [c["status"] for k, c in found.items() if k != clone] == ["stopped", "stopped"]
    assert run(dsn, f"SELECT params::text, hand_made FROM {out}_info WHERE mst_key = %s",
               (clone,))[0] == (f'{{"clone_of": {source}}}', True)
    assert run(dsn, f"SELECT count(*) FROM {out}_mst WHERE mst_key = %s", (clone,))[0][0] == 1
    assert_exact_visits(dsn, out, found)
    assert "is stopped, not running" in refusal(
        dsn, "SELECT gpdl.extend_config(%s, %s, 1)", (out, source))
