"""AutoML before a search: MADlib's ``hyperband_schedule`` table and the plan preview."""

from __future__ import annotations

import uuid

from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.automl.hyperband import hyperband_schedule
from gpdl_backend.automl.params import parse_automl_params
from gpdl_backend.automl.preview import plan_rows, plan_total
from gpdl_backend.automl.space import SearchSpace
from gpdl_backend.client import TableName, session, table_exists, table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.model_tables import check_arch_table, check_model_ids
from gpdl_backend.mop.driver import UNIT_CALL_SQL
from gpdl_backend.mop.job import config_problem
from gpdl_backend.mop.tables import OutputTables
from gpdl_backend.preprocess import read_summary

__all__ = ["automl_plan", "probe_unit_seconds", "write_hyperband_schedule"]


def write_hyperband_schedule(dsn: str, schedule_table: str, r: int, eta: int = 3,
                             skip_last: int = 0) -> int:
    """Write Hyperband's schedule (columns ``s, i, n_i, r_i``) into a new table.

    Returns:
        The number of rungs written.

    Raises:
        UsageError: bad ``r``, ``eta`` or ``skip_last``, or an existing table.

    Example:
        >>> write_hyperband_schedule(dsn, "hb_schedule", 9, 3)
        6
    """
    rungs = hyperband_schedule(r, eta, skip_last)
    target = table_name(schedule_table)
    with session(dsn) as conn:
        engine = engines.probe(conn)
        with conn.cursor() as cur:
            if table_exists(cur, target):
                raise UsageError(f"table {target} already exists")
            cur.execute(sql.SQL("CREATE TABLE {} (s integer, i integer, n_i integer, "
                                "r_i integer){}").format(
                target.identifier, engine.distributed_replicated()))
            cur.executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(
                target.identifier), [(x.s, x.i, x.n_i, x.r_i) for x in rungs])
    return len(rungs)


def automl_plan(dsn: str, automl_method: str | None, automl_params: str | None,
                source_table: str | None = None, unit_seconds: float | None = None,
                model_arch_table: str | None = None, model_id_list: list[int] | None = None,
                compile_params_grid: str | None = None,
                fit_params_grid: str | None = None) -> list[dict]:
    """A search's plan before it starts: one row per bracket and rung, then the total.

    Args:
        source_table: the packed training table: its segments count the units,
            and the latest job of this role on it gives the unit time.
        unit_seconds: seconds one unit takes (overrides the measured one).
        model_arch_table, model_id_list, compile_params_grid, fit_params_grid:
            the search space, as ``madlib_keras_automl`` takes it: with no
            earlier job on ``source_table``, a probe trains its first
            configuration on one buffer for the unit time (``probe_unit_seconds``).

    Returns:
        ``preview.plan_rows`` (``s, i, n_i, r_i, iterations, units, seconds``), then
        the total: ``i`` None, ``n_i`` the configurations, ``seconds`` the ETA.

    Raises:
        UsageError: a bad method, parameter or search space, or a table that is
            not packed.
    """
    params = parse_automl_params(automl_method, automl_params)
    space = None
    if (model_arch_table, model_id_list, compile_params_grid) != (None, None, None):
        if None in (model_arch_table, model_id_list, compile_params_grid):
            raise UsageError("a probe of the unit time needs model_arch_table, model_id_list "
                             "and compile_params_grid together")
        space = SearchSpace.from_grids(model_id_list, compile_params_grid,
                                       fit_params_grid or "")
    segments = 1
    if source_table is not None:
        source = table_name(source_table)
        with session(dsn) as conn:
            with conn.cursor() as cur:
                segments = len(read_summary(cur, source)["dist_keys"])
                if unit_seconds is None:
                    unit_seconds = _measured_unit_seconds(cur, source)
            if unit_seconds is None and space is not None:
                unit_seconds = probe_unit_seconds(conn, source, table_name(model_arch_table),
                                                  space)
    rows = plan_rows(params, segments, unit_seconds)
    total = plan_total(rows, segments, unit_seconds)
    return [*rows, dict(s=None, i=None, n_i=total["configs"], r_i=None,
                        iterations=total["iterations"], units=total["units"],
                        seconds=total["eta_seconds"])]


def _measured_unit_seconds(cur, source: TableName) -> float | None:
    """The mean unit time of this role's latest job on ``source`` (None: no such job)."""
    cur.execute("SELECT to_regclass('gpdl.job') IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute("SELECT job FROM gpdl.job WHERE owner = current_user ORDER BY started DESC "
                "LIMIT 20")
    for (job,) in cur.fetchall():
        output = OutputTables(table_name(job))
        if not table_exists(cur, output.summary) or not table_exists(cur, output.progress):
            continue
        cur.execute(sql.SQL("SELECT to_regclass(source_table) = to_regclass(%s) FROM {}")
                    .format(output.summary.identifier), (source.identifier.as_string(cur),))
        if not cur.fetchone()[0]:
            continue
        cur.execute(sql.SQL("SELECT avg(seconds) FROM {}").format(output.progress.identifier))
        seconds = cur.fetchone()[0]
        if seconds is not None:
            return float(seconds)
    return None


PROBE_RUNS = 2
"""Runs of the probe's buffer; the last is timed (the first pays the model's build and
Keras' first trace of its train step, which a job pays once per segment)."""


def probe_unit_seconds(conn, source: TableName, arch: TableName,
                       space: SearchSpace) -> float | None:
    """Seconds of one unit of ``space``'s first configuration, estimated from one buffer.

    In the server, as a unit trains (the same ``gpdl.train_unit`` call), one
    buffer of the first segment holding rows is trained ``PROBE_RUNS`` times;
    the last run's seconds times the mean buffers per segment are the estimate
    (on the CPU: ``use_gpus`` is a search's option). Nothing is written. None
    when the table holds no rows.

    Raises:
        UsageError: no such architecture table or model id, or a configuration
            Keras refuses.
    """
    with conn.cursor() as cur:
        packed = read_summary(cur, source)
    dist_keys = list(packed["dist_keys"])
    engine = engines.probe(conn, len(dist_keys))
    with conn.cursor() as cur:
        check_arch_table(cur, arch)
        model_id, compile_params, fit_params = space.first_configuration()
        check_model_ids(cur, arch, [model_id])
        cur.execute(sql.SQL("SELECT model_arch::text FROM {} WHERE model_id = %s").format(
            arch.identifier), (model_id,))
        model_arch = cur.fetchone()[0]
        cur.execute(sql.SQL("SELECT __dist_key__, min(buffer_id), count(*) FROM {} "
                            "GROUP BY 1").format(source.identifier))
        buffers = {key: (first, count) for key, first, count in cur.fetchall()}
        key = next((k for k in dist_keys if k in buffers), None)
        if key is None:
            return None
        _, problem = config_problem(cur, model_arch, compile_params, fit_params,
                                    list(packed["image_shape"]), int(packed["num_classes"]),
                                    None, "initial weights")
        if problem:
            raise UsageError(f"model_id {model_id} ({compile_params}; {fit_params}): {problem}")
        statement = sql.SQL("SELECT (r).seconds FROM ({}) s").format(
            UNIT_CALL_SQL.format(
                packed=source.identifier, rows=sql.SQL(" AND buffer_id = %(buffer)s"),
                weights=sql.SQL("SELECT %(arch)s::json AS model_arch, "
                                "NULL::bytea AS model_weights, NULL::bytea AS optimizer_state"),
                x=sql.SQL("x, y")))
        args = dict(cache_key=f"probe:{key}", buffer=buffers[key][0], num_buffers=1,
                    arch=model_arch, compile=compile_params, fit=fit_params,
                    num_classes=int(packed["num_classes"]),
                    norm=float(packed["normalizing_const"]), seed=0,
                    threads=engines.threads_per_segment(cur, engine), use_gpus=False,
                    segment=dist_keys.index(key), use_caching=False, key=key)
        for _ in range(PROBE_RUNS):
            cur.execute(statement, dict(args, token=uuid.uuid4().hex))
            (seconds,) = cur.fetchone()
    total_buffers = sum(count for _, count in buffers.values())
    return seconds * total_buffers / len(dist_keys)  # a segment's mean share of buffers
