"""The job registry: one row per training job in ``gpdl.job``, read through ``gpdl.jobs``.

A job's driver runs on the database host in a process of its own
(:mod:`gpdl_backend.mop.runner`); it writes its host, pid, progress (units done,
units retried) and a heartbeat here. The view ``gpdl.jobs`` (``sql/functions.sql``)
shows a job whose driver is gone (on its host: the process ended without
recording an end; seen from another host: no heartbeat for 30 seconds) as
``lost``; ``gpdl.resume_job`` continues it.

Runs on the database host: in a backend (the SQL API functions) and in a driver.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from psycopg2 import sql

from gpdl_backend.client import TableName, session
from gpdl_backend.engine import Engine

__all__ = ["RUNNER_MODULE", "create", "driver_alive", "finished", "heartbeat", "launched",
           "record_of",
           "register", "started"]

HEARTBEAT_SECONDS = 5.0  # well inside the 30 s after which gpdl.jobs says lost
RUNNER_MODULE = "gpdl_backend.mop.runner"
STARTING = "starting"
RUNNING = "running"
LOST = "lost"  # gpdl.jobs' state of a job whose driver is gone


def create(cur, engine: Engine) -> None:
    """Create the registry table (kept across installs, like every table) and its rules.

    Every role that trains writes its jobs' rows (a job runs as its owner), so
    ``gpdl_user`` may write, and row-level security keeps each role to its own
    rows; every row is readable, as in ``pg_stat_activity``. A column newer
    than the table is added to it (only then: ALTER TABLE locks out the
    running jobs' heartbeats until the install commits).
    """
    cur.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS gpdl.job (job text PRIMARY KEY, owner name NOT NULL, "
        "state text NOT NULL, units_done integer NOT NULL DEFAULT 0, units_total integer, "
        "started timestamptz NOT NULL DEFAULT now(), ended timestamptz, driver_host text, "
        "driver_pid integer, heartbeat timestamptz, error text, "
        "unit_retries integer NOT NULL DEFAULT 0){}").format(engine.distributed_by("job")))
    cur.execute("SELECT 1 FROM pg_attribute WHERE attrelid = 'gpdl.job'::regclass "
                "AND attname = 'unit_retries' AND NOT attisdropped")
    if cur.fetchone() is None:  # a table made before gpdl counted retried units
        cur.execute("ALTER TABLE gpdl.job "
                    "ADD COLUMN IF NOT EXISTS unit_retries integer NOT NULL DEFAULT 0")
    cur.execute("ALTER TABLE gpdl.job ENABLE ROW LEVEL SECURITY")
    cur.execute("SELECT polname FROM pg_policy WHERE polrelid = 'gpdl.job'::regclass")
    policies = {row[0] for row in cur.fetchall()}
    if "job_read" not in policies:
        cur.execute("CREATE POLICY job_read ON gpdl.job FOR SELECT USING (true)")
    if "job_owner" not in policies:
        cur.execute("CREATE POLICY job_owner ON gpdl.job USING (owner = current_user) "
                    "WITH CHECK (owner = current_user)")
    cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON gpdl.job TO gpdl_user")


def register(dsn: str, job: TableName, resumed: bool = False) -> None:
    """Record a new or resumed job as starting, owned by the DSN's role.

    Args:
        resumed: the job goes on: it keeps the count of units it retried so
            far. Defaults to False (a new job counts from 0).
    """
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT unit_retries FROM gpdl.job WHERE job = %s", (str(job),))
        row = cur.fetchone()
        retries = row[0] if row and resumed else 0
        cur.execute("DELETE FROM gpdl.job WHERE job = %s", (str(job),))
        cur.execute("INSERT INTO gpdl.job (job, owner, state, heartbeat, unit_retries) "
                    "VALUES (%s, current_user, %s, now(), %s)", (str(job), STARTING, retries))


def launched(dsn: str, job: TableName, pid: int) -> None:
    """The driver process was started (on this host, as ``pid``); it has not reported yet.

    From here ``gpdl.jobs`` asks the process, not the clock, whether a
    ``starting`` job is lost: a driver slow to import TensorFlow on a busy
    host is not.
    """
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE gpdl.job SET driver_host = %s, driver_pid = %s WHERE job = %s",
                    (socket.gethostname(), pid, str(job)))


def started(dsn: str, job: TableName) -> int:
    """The driver process is up: its host and pid; returns the units the job retried so far."""
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE gpdl.job SET state = %s, driver_host = %s, driver_pid = %s, "
                    "heartbeat = now() WHERE job = %s",
                    (RUNNING, socket.gethostname(), os.getpid(), str(job)))
        cur.execute("SELECT unit_retries FROM gpdl.job WHERE job = %s", (str(job),))
        row = cur.fetchone()
    return row[0] if row else 0


def heartbeat(conn, job: TableName, units_done: int, units_total: int | None,
              unit_retries: int = 0) -> None:
    """The driver is alive; how far it got (on the driver's own autocommit connection).

    Args:
        unit_retries: the units the job ran again after a failure, in all. Defaults to 0.
    """
    with conn.cursor() as cur:
        cur.execute("UPDATE gpdl.job SET heartbeat = now(), units_done = %s, "
                    "units_total = coalesce(%s, units_total), unit_retries = %s "
                    "WHERE job = %s", (units_done, units_total, unit_retries, str(job)))


def finished(dsn: str, job: TableName, state: str, error: str | None, units_done: int,
             units_total: int | None, unit_retries: int = 0) -> None:
    """The driver ends: finished, stopped or failed (with the error)."""
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE gpdl.job SET state = %s, error = %s, ended = now(), "
                    "heartbeat = now(), units_done = %s, "
                    "units_total = coalesce(%s, units_total), unit_retries = %s "
                    "WHERE job = %s",
                    (state, error, units_done, units_total, unit_retries, str(job)))


def record_of(cur, job: TableName) -> dict | None:
    """A job's row of ``gpdl.jobs`` by column name (``state`` shows ``lost``); None if none.

    Every column the installed view has: a client newer than the database's
    install reads an older view (without ``unit_retries``) too.
    """
    cur.execute("SELECT * FROM gpdl.jobs WHERE job = %s", (str(job),))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([column[0] for column in cur.description], row, strict=True))


def driver_alive(host: str | None, pid: int | None, job: str) -> bool | None:
    """Whether the job's driver process still runs; None when this host cannot tell.

    None: the driver runs on another host, or no host and pid are recorded yet.

    The process's command line must name the runner and the job, so a pid the
    system gave to another process since does not count.
    """
    if host is None or pid is None:
        return None
    if host != socket.gethostname():
        return None
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return RUNNER_MODULE.encode() in words and job.encode() in words
