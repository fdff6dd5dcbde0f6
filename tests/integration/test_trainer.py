"""The MOP trainer against the real server: outputs, schedule, stop, warm start, bad inputs.

Tiny data (320 + 80 learnable 8×8 RGB images, 4 classes, 2 segments) and tiny
CNNs keep each training job to a few seconds, most of it TensorFlow's import
in fresh segment backends.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend.errors import UsageError
from gpdl_backend.model_tables import load_model_selection_table
from gpdl_backend.mop import driver as mop_driver
from gpdl_backend.mop import tables
from gpdl_backend.mop.job import TrainingJob, fit_multiple_model, resume
from gpdl_backend.server.worker import init_weights
from tests.integration import trainer_helpers as h

pytestmark = pytest.mark.db

SEGMENTS = 2
STOP_ITERATIONS = 8  # enough work that the stop lands while the job runs
MADLIB_OUTPUT = {"mst_key", "model_weights", "model_arch"}
MADLIB_INFO = {
    "mst_key", "model_id", "compile_params", "fit_params", "model_type", "model_size",
    "metrics_elapsed_time", "metrics_type", "loss_type", "training_metrics_final",
    "training_loss_final", "training_metrics", "training_loss", "validation_metrics_final",
    "validation_loss_final", "validation_metrics", "validation_loss",
}
MADLIB_SUMMARY = {
    "source_table", "validation_table", "model", "model_info", "dependent_varname",
    "independent_varname", "model_arch_table", "model_selection_table", "object_table",
    "num_iterations", "metrics_compute_frequency", "warm_start", "name", "description",
    "start_training_time", "end_training_time", "madlib_version", "num_classes",
    "class_values", "dependent_vartype", "normalizing_const", "metrics_iters",
}


@pytest.fixture(scope="module")
def ids(dsn: str, shared_tmp_factory) -> dict[str, int]:
    """Packed data and the architecture table; the model ids by name."""
    h.prepare_data(dsn, shared_tmp_factory("gpdl-trainer-"))
    return h.arch_table(dsn)


# --------------------------------------------------------------------- a full run
@pytest.fixture(scope="module")
def main_run(dsn: str, ids: dict[str, int]) -> Iterator[dict]:
    """3 configurations (not a multiple of 2 segments) × 3 iterations, validation, freq 1.

    Times every unit as the driver sees it, for the overhead report.
    """
    configs = load_model_selection_table(
        dsn, h.ARCH, "tr_main_mst", [ids["good"], ids["big"]], [h.COMPILE_SLOW],
        [h.FIT], if_exists="replace")
    configs += load_model_selection_table(
        dsn, h.ARCH, "tr_main_mst", [ids["good"]], [h.COMPILE], [h.FIT], if_exists="append")
    h.drop_output(dsn, "tr_main")
    walls: dict[tuple[int, int, int], float] = {}
    original = mop_driver.Driver._train

    def timed(self, session, unit) -> None:
        started = time.perf_counter()
        original(self, session, unit)
        walls[(unit.iteration, unit.config, unit.segment)] = time.perf_counter() - started

    events: list[mop_driver.Event] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mop_driver.Driver, "_train", timed)
        started = time.monotonic()
        job = fit_multiple_model(dsn, h.TRAIN, "tr_main", "tr_main_mst", 3,
                                 validation_table=h.VALIDATION, metrics_compute_frequency=1,
                                 name="main", description="three configs", seed=5,
                                 listener=events.append)
        elapsed = time.monotonic() - started
    yield {"job": job, "configs": configs, "walls": walls, "events": events,
           "elapsed": elapsed}


def test_job_finishes_with_madlib_columns(dsn: str, main_run: dict) -> None:
    status = main_run["job"].status()
    assert status.status == tables.FINISHED
    assert (status.iterations_done, status.num_iterations) == (3, 3)
    assert status.units_done == status.units_total == 3 * SEGMENTS * 3
    assert set(h.columns(dsn, "tr_main")) >= MADLIB_OUTPUT
    assert set(h.columns(dsn, "tr_main_info")) >= MADLIB_INFO
    assert set(h.columns(dsn, "tr_main_summary")) >= MADLIB_SUMMARY
    summary = h.summary(dsn, "tr_main")
    assert summary["source_table"] == h.TRAIN
    assert summary["validation_table"] == h.VALIDATION
    assert summary["model_arch_table"] == h.ARCH
    assert summary["model_selection_table"] == "tr_main_mst"
    assert summary["num_classes"] == h.NUM_CLASSES
    assert summary["class_values"] == [f"class_{k}" for k in range(h.NUM_CLASSES)]
    assert (summary["name"], summary["description"]) == ("main", "three configs")
    assert summary["end_training_time"] >= summary["start_training_time"]
    kinds = [event.kind for event in main_run["events"]]
    assert kinds.count("unit") == 3 * SEGMENTS * 3
    assert kinds.count("iteration") == 3 and kinds[-1] == "finished"


def test_loss_falls_and_metrics_per_iteration(dsn: str, main_run: dict) -> None:
    summary = h.summary(dsn, "tr_main")
    assert summary["metrics_iters"] == [1, 2, 3]
    for mst, row in h.info(dsn, "tr_main").items():
        assert row["status"] == tables.FINISHED
        for name in ("training_loss", "training_metrics", "validation_loss",
                     "validation_metrics", "metrics_elapsed_time"):
            assert len(row[name]) == 3, (mst, name, row[name])
        assert row["training_loss"][-1] < row["training_loss"][0], row
        assert row["validation_loss"][-1] < row["validation_loss"][0], row
        assert row["validation_metrics"][-1] > 1.5 / h.NUM_CLASSES, row
        assert row["training_loss_final"] == row["training_loss"][-1]
        assert row["validation_metrics_final"] == row["validation_metrics"][-1]
        assert row["metrics_elapsed_time"] == sorted(row["metrics_elapsed_time"])
        assert row["metrics_type"] == ["accuracy"]
        assert row["loss_type"] == "categorical_crossentropy"


def test_every_config_visits_every_segment_once_per_iteration(dsn: str, main_run: dict) -> None:
    keys = [c.mst_key for c in main_run["configs"]]
    h.assert_exact_visits(dsn, "tr_main", keys, SEGMENTS, 3)
    # A configuration never trains on two segments at once: its units' training
    # intervals (finished_at - seconds, finished_at) never overlap.
    rows = h.fetch(dsn, "SELECT mst_key, extract(epoch FROM finished_at), seconds "
                        "FROM tr_main_progress ORDER BY 1, 2")
    by_config: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for mst, end, seconds in rows:
        by_config[mst].append((float(end) - seconds, float(end)))
    for mst, spans in by_config.items():
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 1e-3, f"mst {mst} ran on two segments at once: {spans}"


def test_weights_changed_and_model_size(dsn: str, main_run: dict) -> None:
    trained = h.weights(dsn, "tr_main")
    info = h.info(dsn, "tr_main")
    arches = dict(h.fetch(dsn, "SELECT mst_key, model_arch::text FROM tr_main"))
    for config in main_run["configs"]:
        mst = config.mst_key
        initial = init_weights({}, arches[mst], config.compile_params, 5 * 7919 + mst)
        assert len(trained[mst]) == len(initial) == 4 * info[mst]["num_params"]
        assert trained[mst] != initial
        assert info[mst]["model_size"] == pytest.approx(len(trained[mst]) / 1024)
    sizes = {info[c.mst_key]["model_id"]: info[c.mst_key]["model_size"]
             for c in main_run["configs"]}
    assert len(sizes) == 2 and len(set(sizes.values())) == 2


def test_per_hop_overhead_report(dsn: str, main_run: dict) -> None:
    """Driver-side unit wall time vs the worker's training seconds (printed, not asserted)."""
    seconds = {(i, m, s): sec for i, m, s, sec in h.fetch(
        dsn, "SELECT iteration, mst_key, segment, seconds FROM tr_main_progress")}
    walls = main_run["walls"]
    assert set(walls) == set(seconds)
    warm = [k for k in walls if k[0] > 0]  # iteration 0 pays imports, cache fills
    wall, work = sum(walls[k] for k in warm), sum(seconds[k] for k in warm)
    print(f"\nper-hop overhead (iterations 2-3, {len(warm)} units): driver wall "
          f"{wall / len(warm) * 1000:.0f} ms/unit, worker training "
          f"{work / len(warm) * 1000:.0f} ms/unit, overhead {(wall - work) / len(warm) * 1000:.0f}"
          f" ms/unit = {(wall - work) / wall:.1%} of unit time; whole job "
          f"{main_run['elapsed']:.1f} s")
    assert wall >= work


# ------------------------------------------------------ frequency, default, determinism
@pytest.fixture(scope="module")
def twin_runs(dsn: str, ids: dict[str, int]) -> dict[str, TrainingJob]:
    """Two runs of the same 2 configurations, same seed: every 2nd iteration vs default.

    2 configurations on 2 segments leave the scheduler no choice after its seeded
    first assignment, so both runs visit the segments in the same order.
    """
    no_metric = h.COMPILE_SLOW.replace(", metrics=['accuracy']", "")
    h.mst_table(dsn, "tr_twin_mst", [(ids["good"], no_metric, h.FIT),
                                     (ids["good"], h.COMPILE, h.FIT)])
    jobs = {}
    for output, frequency, validation in (("tr_freq2", 2, h.VALIDATION),
                                          ("tr_default", None, None)):
        h.drop_output(dsn, output)
        jobs[output] = fit_multiple_model(dsn, h.TRAIN, output, "tr_twin_mst", 3,
                                          validation_table=validation,
                                          metrics_compute_frequency=frequency, seed=11)
    return jobs


def test_metrics_every_second_iteration_and_after_the_last(dsn: str, twin_runs) -> None:
    assert h.summary(dsn, "tr_freq2")["metrics_iters"] == [2, 3]
    for mst, row in h.info(dsn, "tr_freq2").items():
        for name in ("training_loss", "training_metrics", "validation_loss",
                     "validation_metrics", "metrics_elapsed_time"):
            assert len(row[name]) == 2, (name, row[name])
        if mst == 1:  # compiled without a metric: NULLs, not zeros
            assert row["metrics_type"] == []
            assert row["training_metrics"] == row["validation_metrics"] == [None, None]
            assert row["training_metrics_final"] is None
        else:
            assert all(0 < v <= 1 for v in row["training_metrics"])


def test_default_frequency_evaluates_once_without_validation(dsn: str, twin_runs) -> None:
    summary = h.summary(dsn, "tr_default")
    assert summary["metrics_iters"] == [3]
    assert summary["metrics_compute_frequency"] == 3
    assert summary["validation_table"] is None
    for row in h.info(dsn, "tr_default").values():
        assert len(row["training_loss"]) == len(row["training_metrics"]) == 1
        assert row["validation_loss"] == row["validation_metrics"] == []
        assert row["validation_loss_final"] is None
    assert h.info(dsn, "tr_default")[1]["training_metrics"] == [None]


def test_same_seed_same_schedule_and_weights(dsn: str, twin_runs) -> None:
    """TensorFlow on 1 thread per segment is deterministic here: same seed, same weights."""
    order = {}
    for output in twin_runs:
        h.assert_exact_visits(dsn, output, [1, 2], SEGMENTS, 3)
        rows = h.fetch(dsn, sql.SQL("SELECT iteration, mst_key, segment FROM {} "
                                    "ORDER BY iteration, mst_key, finished_at").format(
            sql.Identifier(output + "_progress")))
        order[output] = [(i, m, s) for i, m, s in rows]
    assert order["tr_freq2"] == order["tr_default"]
    assert h.weights(dsn, "tr_freq2") == h.weights(dsn, "tr_default")


# ----------------------------------------------------------------------- bad inputs
def _bad_cases(ids: dict[str, int]) -> dict[str, tuple[list, dict, str]]:
    """case → (mst rows or None, fit_multiple_model overrides, expected message)."""
    good = [(ids["good"], h.COMPILE, h.FIT)]
    return {
        "unknown source": (good, {"source_table": "no_such_packed"}, "not a packed table"),
        "unknown mst table": (None, {"model_selection_table": "no_such_mst"},
                              "no_such_mst does not exist"),
        "bad optimizer": ([*good, (ids["good"], h.COMPILE.replace("Adam(", "Adamm("), h.FIT)],
                          {}, r"mst_key 2 .*Adamm"),
        "input shape": ([(ids["wrong_shape"], h.COMPILE, h.FIT)], {}, "input shape"),
        "class count": ([(ids["wrong_classes"], h.COMPILE, h.FIT)], {}, "classes"),
        "unbuildable model": ([(ids["broken"], h.COMPILE, h.FIT)], {}, "Keras cannot build"),
        "unknown model id": ([(9999, h.COMPILE, h.FIT)], {}, "model_id 9999"),
        "zero iterations": (good, {"num_iterations": 0}, "num_iterations"),
        "bad frequency": (good, {"metrics_compute_frequency": -1}, "metrics_compute_frequency"),
        "warm start from nothing": (good, {"warm_start": True}, "no weights"),
        "gpus on a GPU-less server": (good, {"use_gpus": True}, "GPU"),
    }


@pytest.mark.parametrize("case", list(_bad_cases({k: 0 for k in (
    "good", "big", "wrong_shape", "wrong_classes", "broken")})))
def test_bad_input_refused_before_any_table(dsn: str, ids: dict[str, int], case: str) -> None:
    rows, overrides, message = _bad_cases(ids)[case]
    if rows is not None:
        h.mst_table(dsn, "tr_bad_mst", rows)
    h.drop_output(dsn, "tr_bad")
    args = dict(dsn=dsn, source_table=h.TRAIN, model_output_table="tr_bad",
                model_selection_table="tr_bad_mst", num_iterations=1)
    args.update(overrides)
    started = time.monotonic()
    with pytest.raises(UsageError, match=message):
        fit_multiple_model(**args)
    assert time.monotonic() - started < 30  # refused while planning, not after training
    assert h.output_tables_exist(dsn, "tr_bad") == []


def test_existing_output_refused_and_left_alone(dsn: str, ids: dict[str, int]) -> None:
    h.mst_table(dsn, "tr_bad_mst", [(ids["good"], h.COMPILE, h.FIT)])
    h.drop_output(dsn, "tr_taken")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE tr_taken (mine integer)")
        cur.execute("INSERT INTO tr_taken VALUES (42)")
    with pytest.raises(UsageError, match=r"already exists.*warm_start"):
        fit_multiple_model(dsn, h.TRAIN, "tr_taken", "tr_bad_mst", 1)
    assert h.output_tables_exist(dsn, "tr_taken") == ["tr_taken"]
    assert h.fetch(dsn, "SELECT mine FROM tr_taken") == [(42,)]


# ---------------------------------------------------------------------------- stop
def _wait_for(condition, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _units_of(dsn: str, output: str, mst: int | None = None) -> int:
    return h.fetch(dsn, sql.SQL("SELECT count(*) FROM {} WHERE %s IS NULL OR mst_key = %s")
                   .format(sql.Identifier(output + "_progress")), (mst, mst))[0][0]


def _last_hop_running(dsn: str, output: str, mst: int) -> bool:
    """Whether a unit of ``mst``'s last hop, iteration 1 or later, is in flight."""
    # The driver's INSERT names the unit's iteration, mst, segment and hop as literals.
    unit = (rf'^INSERT INTO "{output}_progress" .* SELECT [1-9][0-9]*, {mst}, [0-9]+,'
            rf' s\.__dist_key__, {SEGMENTS - 1},')
    return h.fetch(dsn, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                   "AND pid <> pg_backend_pid() AND query ~ %s", (unit,))[0][0] > 0


@pytest.fixture(scope="module")
def stopped_run(dsn: str, ids: dict[str, int]) -> dict:
    """3 configurations × 8 iterations: stop mst 2, later the whole job, then resume."""
    fit = "batch_size=16, epochs=3"
    # mst 2's units outlast the driver's stop poll (1 s), so the stop lands mid-unit.
    h.mst_table(dsn, "tr_stop_mst", [(ids["good"], h.COMPILE_SLOW, fit),
                                     (ids["good"], h.COMPILE, "batch_size=16, epochs=15"),
                                     (ids["big"], h.COMPILE_SLOW, fit)])
    h.drop_output(dsn, "tr_stop")
    job = fit_multiple_model(dsn, h.TRAIN, "tr_stop", "tr_stop_mst", STOP_ITERATIONS,
                             metrics_compute_frequency=1, background=True)
    # While mst 2's last hop of a measured iteration runs, so that the hop lands
    # after the stop and completes an iteration that is never evaluated.
    _wait_for(lambda: _last_hop_running(dsn, "tr_stop", 2),
              what="mst 2's last hop of its second iteration or later")
    job.stop(2)
    _wait_for(lambda: h.info(dsn, "tr_stop")[2]["status"] == tables.STOPPED,
              what="mst 2 stopped")
    mst2_units = _units_of(dsn, "tr_stop", 2)
    others = _units_of(dsn, "tr_stop")
    _wait_for(lambda: _units_of(dsn, "tr_stop") >= others + 2, what="2 more units")
    assert job.running(), "the job ended before it could be stopped: give it more work"
    with pytest.MonkeyPatch.context() as patch:  # one driver per job at a time
        patch.setattr(mop_driver, "LOCK_WAIT_SECONDS", 0.5)
        with pytest.raises(UsageError, match="being trained by another driver"):
            resume(dsn, "tr_stop")
    job.stop()
    stopped = job.wait(timeout=60)
    before = set(h.progress(dsn, "tr_stop"))
    attached = TrainingJob.attach(dsn, "tr_stop").status()
    resumed = resume(dsn, "tr_stop").status()
    return {"stopped": stopped, "attached": attached, "resumed": resumed, "before": before,
            "mst2_units": mst2_units, "mst2_after_stop": _units_of(dsn, "tr_stop", 2)}


def test_stop_one_configuration_others_go_on(dsn: str, stopped_run: dict) -> None:
    configs = {c["mst_key"]: c for c in stopped_run["resumed"].configs}
    assert configs[2]["status"] == tables.STOPPED
    # at most the unit in flight when the stop came lands after it
    assert stopped_run["mst2_after_stop"] <= stopped_run["mst2_units"] + 1
    assert 1 <= configs[2]["units_done"] < SEGMENTS * STOP_ITERATIONS
    rows = h.progress(dsn, "tr_stop")
    assert len(rows) == len(set(rows))
    for mst in (1, 3):
        assert configs[mst]["status"] == tables.FINISHED
        mine = {(i, s) for i, m, s in rows if m == mst}
        assert mine == {(i, s) for i in range(STOP_ITERATIONS) for s in range(SEGMENTS)}
    info = h.info(dsn, "tr_stop")
    assert len(info[1]["training_loss"]) == len(info[3]["training_loss"]) == STOP_ITERATIONS
    assert len(info[2]["training_loss"]) < STOP_ITERATIONS
    with pytest.raises(UsageError, match="no mst_key 99"):
        TrainingJob.attach(dsn, "tr_stop").stop(99)


def test_a_configuration_stopped_mid_iteration_keeps_the_weights_it_was_measured_with(
        dsn: str, stopped_run: dict) -> None:
    """Its ``<out>`` weights give its last recorded training loss, not a later hop's."""
    out = "tr_stop_eval2"
    h.drop_output(dsn, out)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT gpdl.madlib_keras_evaluate('tr_stop', %s, %s, false, 2)",
                    (h.TRAIN, out))
        cur.execute(sql.SQL("SELECT loss FROM {}").format(sql.Identifier(out)))
        (loss,), = cur.fetchall()
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(out)))
    recorded = h.info(dsn, "tr_stop")[2]
    assert recorded["status"] == tables.STOPPED and recorded["training_loss"]
    assert loss == pytest.approx(recorded["training_loss_final"], rel=1e-6)


def test_stop_job_then_resume_finishes(dsn: str, stopped_run: dict) -> None:
    stopped, resumed = stopped_run["stopped"], stopped_run["resumed"]
    assert stopped.status == stopped_run["attached"].status == tables.STOPPED
    assert stopped.units_done < stopped.units_total
    assert resumed.status == tables.FINISHED
    assert resumed.iterations_done == STOP_ITERATIONS
    assert resumed.units_done == resumed.units_total
    assert stopped_run["before"] <= set(h.progress(dsn, "tr_stop"))
    assert h.summary(dsn, "tr_stop")["metrics_iters"] == list(range(1, STOP_ITERATIONS + 1))
    with pytest.raises(UsageError, match="already finished"):
        resume(dsn, "tr_stop")


# ----------------------------------------------------------------------- warm start
def test_warm_start_continues_from_previous_weights(dsn: str, ids: dict[str, int],
                                                    main_run: dict) -> None:
    """One more iteration from ``tr_main``'s weights (copied, so ``tr_main`` stays)."""
    h.drop_output(dsn, "tr_warm")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE tr_warm AS SELECT * FROM tr_main")
    fit_multiple_model(dsn, h.TRAIN, "tr_warm", "tr_main_mst", 1, warm_start=True, seed=3)
    assert h.summary(dsn, "tr_warm")["warm_start"] is True
    first, warm = h.info(dsn, "tr_main"), h.info(dsn, "tr_warm")
    sgd = [c.mst_key for c in main_run["configs"] if "SGD" in c.compile_params]
    assert sgd
    for mst, row in first.items():
        losses, again = row["training_loss"], warm[mst]["training_loss"]
        assert len(again) == 1
        # far below a fresh start's first iteration...
        assert again[0] < losses[0] * 0.9, (mst, losses, again)
        if mst in sgd:  # ...and (no optimizer state to lose) about where it ended
            assert again[0] < losses[-1] * 1.25, (mst, losses, again)
    h.assert_exact_visits(dsn, "tr_warm", list(first), SEGMENTS, 1)
    # Weights that do not fit the configuration's model: refused, nothing dropped.
    kept = h.weights(dsn, "tr_warm")
    h.mst_table(dsn, "tr_warm_bad_mst", [(ids["big"], h.COMPILE_SLOW, h.FIT)])
    with pytest.raises(UsageError, match=r"mst_key 1 .*warm_start weights hold"):
        fit_multiple_model(dsn, h.TRAIN, "tr_warm", "tr_warm_bad_mst", 1, warm_start=True)
    assert h.weights(dsn, "tr_warm") == kept
    assert len(h.output_tables_exist(dsn, "tr_warm")) == 4


def test_resume_unknown_job_refused(dsn: str) -> None:
    with pytest.raises(UsageError, match="no training job"):
        resume(dsn, "tr_never_ran")
    with pytest.raises(UsageError, match="no training job"):
        TrainingJob.attach(dsn, "tr_never_ran")
