"""AutoML before a search: MADlib's ``hyperband_schedule`` table and the plan preview."""

from __future__ import annotations

from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.automl.hyperband import hyperband_schedule
from gpdl_backend.automl.params import parse_automl_params
from gpdl_backend.automl.preview import plan_rows, plan_total
from gpdl_backend.client import TableName, session, table_exists, table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.mop.tables import OutputTables
from gpdl_backend.preprocess import read_summary

__all__ = ["automl_plan", "write_hyperband_schedule"]


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
                source_table: str | None = None,
                unit_seconds: float | None = None) -> list[dict]:
    """A search's plan before it starts: one row per bracket and rung, then the total.

    Args:
        source_table: the packed training table: its segments count the units,
            and the latest job of this role on it gives the unit time.
        unit_seconds: seconds one unit takes (overrides the measured one).

    Returns:
        ``preview.plan_rows`` (``s, i, n_i, r_i, iterations, units, seconds``), then
        the total: ``i`` None, ``n_i`` the configurations, ``seconds`` the ETA.

    Raises:
        UsageError: a bad method or parameter, or a table that is not packed.
    """
    params = parse_automl_params(automl_method, automl_params)
    segments = 1
    if source_table is not None:
        source = table_name(source_table)
        with session(dsn) as conn, conn.cursor() as cur:
            segments = len(read_summary(cur, source)["dist_keys"])
            if unit_seconds is None:
                unit_seconds = _measured_unit_seconds(cur, source)
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
