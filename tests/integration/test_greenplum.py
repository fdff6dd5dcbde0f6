"""Greenplum's own behaviour: where the work runs, segments in parallel, lost segment caches.

These check what only a Greenplum cluster has (segments, motions, recycled
segment processes); the engine-neutral behaviour is tested everywhere else.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend import predict
from gpdl_backend.client import TableName, connect
from gpdl_backend.images import loader
from gpdl_backend.images.loader import load_images
from gpdl_backend.mop import driver as mop_driver
from gpdl_backend.mop import job as mop_job
from gpdl_backend.mop import tables
from gpdl_backend.mop.driver import Driver, Event
from gpdl_backend.mop.job import fit_multiple_model
from gpdl_backend.mop.scheduler import Unit
from tests.imagefiles import write_class_tree
from tests.integration import trainer_helpers as h

pytestmark = [pytest.mark.db,
              pytest.mark.greenplum_only(reason="segments, motions and segment processes")]

FIT = "batch_size=16, epochs=3"


@pytest.fixture(scope="module")
def ids(dsn: str, shared_tmp_factory) -> dict[str, int]:
    h.prepare_data(dsn, shared_tmp_factory("gpdl-greenplum-"))
    return h.arch_table(dsn)


@pytest.fixture(scope="module")
def finished_job(dsn: str, ids: dict[str, int]) -> str:
    """2 configurations × 2 iterations, trained to the end."""
    mst = h.mst_table(dsn, "gp_par_mst", [(ids["good"], h.COMPILE_SLOW, FIT),
                                          (ids["big"], h.COMPILE_SLOW, FIT)])
    h.drop_output(dsn, "gp_par")
    fit_multiple_model(dsn, h.TRAIN, "gp_par", mst, 2, metrics_compute_frequency=1)
    return "gp_par"


def _plan_lines(dsn: str, statement: sql.Composable, params: dict | None = None) -> list[str]:
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("EXPLAIN VERBOSE ") + statement, params)
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def _assert_runs_on_segments(lines: list[str], function: str) -> None:
    """The function is evaluated below every Gather Motion (on segments), not above it."""
    calls = [i for i, line in enumerate(lines) if function in line]
    assert calls, f"{function} is not in the plan:\n" + "\n".join(lines)
    gathers = [i for i, line in enumerate(lines) if "Gather Motion" in line]
    assert all(i > g for i in calls for g in gathers), "\n".join(lines)
    if gathers:  # the node computing it is a child of the gather, never its parent
        indent = len(lines[gathers[0]]) - len(lines[gathers[0]].lstrip())
        first = next(i for i in range(gathers[0] + 1, len(lines)) if "->" in lines[i])
        assert len(lines[first]) - len(lines[first].lstrip()) > indent


def test_units_evaluation_and_predict_run_on_the_segments(dsn: str, finished_job: str) -> None:
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            engine = engines.probe(conn)
            plan = mop_job._plan_from_tables(
                cur, dsn, tables.OutputTables(TableName(None, finished_job)), engine)
    finally:
        conn.close()
    unit_driver = Driver(plan)
    first = _plan_lines(dsn, *unit_driver.train_statement(Unit(0, 1, 0), cached=False))
    _assert_runs_on_segments(first, "train_unit")
    # the unit's rows stay where they are: only the weights row moves, and the
    # progress row is written on the segment that trained
    assert not any("Gather Motion" in line for line in first), "\n".join(first)
    assert sum("Motion" in line for line in first) == 1, "\n".join(first)
    unit_driver.visits[1] = [0]  # the second hop starts from the first hop's row
    second = _plan_lines(dsn, *unit_driver.train_statement(Unit(0, 1, 1), cached=True))
    _assert_runs_on_segments(second, "train_unit")
    assert not any("Gather Motion" in line for line in second), "\n".join(second)

    evaluate = mop_driver._EVALUATE_SQL.format(
        packed=plan.source.identifier, out=plan.output.model.identifier, x=sql.SQL("x, y"))
    params = dict(key=plan.segments[1].dist_key, mst=1, token="t", cache_key="c",
                  num_buffers=1, compile=h.COMPILE, num_classes=h.NUM_CLASSES, norm=255.0,
                  threads=1, use_gpus=False, segment=1, use_caching=False)
    _assert_runs_on_segments(_plan_lines(dsn, evaluate, params), "evaluate_unit")

    statement = predict._predict_statement(
        TableName(None, "gp_predict_staging"), plan.output.model, TableName(None, "gp_images"),
        "fullpaths", 1, "response", None, None, sql.SQL("true"))
    with connect(dsn) as setup, setup.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS gp_predict_staging, gp_images")
        cur.execute("CREATE TABLE gp_images (fullpaths text[], dims integer[], x bytea) "
                    "DISTRIBUTED RANDOMLY")
        cur.execute("CREATE TABLE gp_predict_staging (id text, class_name text, "
                    "class_value integer, prob double precision, rank integer) "
                    "DISTRIBUTED RANDOMLY")
    lines = _plan_lines(dsn, statement)
    _assert_runs_on_segments(lines, "predict_rows")
    # every segment predicts its own images; only the model row is sent to all
    assert not any("Gather Motion" in line for line in lines), "\n".join(lines)
    assert any("Broadcast Motion" in line for line in lines), "\n".join(lines)


def test_segments_train_at_the_same_time(dsn: str, finished_job: str) -> None:
    """Units of different segments overlap in time (each row says when it trained)."""
    rows = h.fetch(dsn, sql.SQL(
        "SELECT segment, extract(epoch FROM finished_at) - seconds, "
        "extract(epoch FROM finished_at), gp_segment_id, __dist_key__ FROM {}").format(
        sql.Identifier(f"{finished_job}_progress")))
    keys = {segment: key for segment, _, _, _, key in rows}
    assert len(keys) == 2
    # each progress row was written on its own segment, where the unit ran
    assert {(gp, segment) for segment, _, _, gp, _ in rows} == {(0, 0), (1, 1)}
    overlaps = [(a, b) for a in rows if a[0] == 0 for b in rows if b[0] == 1
                if a[1] < b[2] and b[1] < a[2]]
    assert overlaps, f"no two units of different segments trained at once: {rows}"


def _segment_processes(dsn: str, application_name: str) -> list[int]:
    """The segment processes (QEs) of the session named ``application_name``."""
    return [r[0] for r in h.fetch(
        dsn, "SELECT s.pid FROM gp_stat_activity s JOIN pg_stat_activity c "
        "ON c.sess_id = s.sess_id WHERE c.application_name = %s AND s.gp_segment_id >= 0",
        (application_name,))]


def test_a_lost_segment_process_means_a_new_session_and_the_data_sent_again(
        dsn: str, ids: dict[str, int]) -> None:
    """A session's segment process that goes away between units takes ``GD`` with it.

    Greenplum 7 keeps a session's writer processes across
    ``gp_vmem_idle_resource_timeout`` (only reader gangs are cleaned), so
    the cache is lost when such a process ends: killed, or its segment
    restarted. Greenplum then ends the whole session; the driver reconnects
    and, knowing the new processes hold nothing, sends the data again
    (a unit that sent no pixels would answer with a cache miss instead).
    """
    mst = h.mst_table(dsn, "gp_lost_mst", [(ids["good"], h.COMPILE_SLOW, FIT)])
    h.drop_output(dsn, "gp_lost")
    events: list[Event] = []
    # one configuration on two segments: each session idles while the other trains
    job = fit_multiple_model(dsn, h.TRAIN, "gp_lost", mst, 3, metrics_compute_frequency=3,
                             use_caching=True, background=True, listener=events.append)
    session = mop_driver.application_name(tables.OutputTables(TableName(None, "gp_lost")), 0)
    deadline = time.monotonic() + 120
    while not any(e.kind == "unit" and e.detail.endswith("segment 0") for e in events):
        assert time.monotonic() < deadline, "no unit on segment 0"
        time.sleep(0.02)
    victims = _segment_processes(dsn, session)  # idle now: segment 1 trains the config
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGTERM)
    assert job.wait(timeout=180).status == tables.FINISHED
    retries = [e.detail for e in events if e.kind == "retry"]
    assert len(retries) == 1 and "connection lost" in retries[0], retries
    assert "segment 0" in retries[0]
    h.assert_exact_visits(dsn, "gp_lost", [1], 2, 3)


def test_every_segment_reads_its_own_fragments(dsn: str, conn, shared_tmp) -> None:
    """A load runs on every segment; each keeps the rows it read (no motion, no coordinator)."""
    written = write_class_tree(shared_tmp / "images", {"a": 12, "b": 12}, size=(4, 4))
    table = "gp_loaded"
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS gp_loaded, gp_loaded_errors")
    conn.commit()
    try:
        result = load_images(dsn, str(shared_tmp / "images"), table, batch_size=2)
        assert result.images == len(written)
        with conn.cursor() as cur:
            cur.execute("SELECT gp_segment_id, sum(dims[1]) FROM gp_loaded GROUP BY 1 ORDER BY 1")
            per_segment = dict(cur.fetchall())
        conn.commit()
        assert sorted(per_segment) == [0, 1] and sum(per_segment.values()) == len(written)
        engine = engines.probe(conn)
        staging = TableName(None, "gp_loaded")  # the same shape as the staging table
        args = loader._read_args(str(shared_tmp / "images"), {"batch_size": 2})
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE gp_loaded ADD COLUMN error_paths text[], "
                        "ADD COLUMN error_reasons text[]")
        [statement] = engine.read_images_statements(staging.identifier, args)
        conn.commit()
        lines = _plan_lines(dsn, statement)
        _assert_runs_on_segments(lines, "read_images")
        assert not any("Motion" in line for line in lines), "\n".join(lines)
    finally:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS gp_loaded, gp_loaded_errors")
        conn.commit()
