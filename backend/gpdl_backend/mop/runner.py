"""A training job's driver process on the database host: ``python -m gpdl_backend.mop.runner``.

``gpdl.madlib_keras_fit_multiple_model`` and ``gpdl.resume_job`` create or mark
the job's tables, then start this process detached from the backend (its own
session, standard streams to a log file), so the job outlives the statement, the
client's connection and the server's restart (the driver reconnects). It runs
the job as its tables record it, writes a heartbeat and its progress (units
done, units retried) to ``gpdl.job`` and, at the end, the job's state. SIGTERM
stops the job as ``gpdl.stop_job`` would: running units finish, ``resume_job``
continues.

Example (what the SQL functions run)::

    python3 -m gpdl_backend.mop.runner public.models 'host=/tmp port=5432 ...'
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg2

from gpdl_backend.client import TableName, table_name
from gpdl_backend.errors import FatalError
from gpdl_backend.mop import registry, tables
from gpdl_backend.mop.driver import Event
from gpdl_backend.mop.job import driver_for, plan_current, set_job_status

__all__ = ["main", "spawn"]

REGISTRY_PATIENCE_SECONDS = 60.0
T = TypeVar("T")


def spawn(dsn: str, job: TableName, python: str, paths: list[str], log_dir: Path) -> int:
    """Start the driver of ``job`` as a process of its own, detached from the caller.

    Args:
        dsn: a local DSN (``gpdl_backend.local``): no secret in it.
        job: the job's output table, schema-qualified.
        python: the interpreter (the server's Python).
        paths: what it puts on ``PYTHONPATH`` (the installed site paths).
        log_dir: where its log goes (``<job>.log``).

    Returns:
        The driver's pid (the interpreter itself: no shell between).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_dir / f"{job}.log", "ab") as log:
        # The parent does not wait: a zombie until the backend exits, never a live orphan.
        process = subprocess.Popen([python, "-m", registry.RUNNER_MODULE, str(job), dsn],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, env=env, cwd=str(log_dir))
    return process.pid


def main(job_name: str, dsn: str) -> int:
    """Run the job to its end; returns the exit status (0 unless the driver failed)."""
    job = table_name(job_name)
    output = tables.OutputTables(job)
    retried_before = _retried(lambda: registry.started(dsn, job))  # by earlier drivers
    progress: dict = {"done": 0, "total": None, "retries": retried_before}
    beating, wake = threading.Event(), threading.Event()

    def listener(event: Event) -> None:
        progress["done"] = event.units_done
        if event.units_total:
            progress["total"] = event.units_total
        if event.unit_retries:
            progress["retries"] = retried_before + event.unit_retries
            wake.set()  # recorded now, not at the next beat: a job may end before it

    pulse = threading.Thread(target=_beat, args=(dsn, job, progress, beating, wake),
                             daemon=True)
    pulse.start()
    try:
        plan = plan_current(dsn, job_name)
        progress["done"] = len(plan.completed)
        driver = driver_for(plan, listener)
        signal.signal(signal.SIGTERM, lambda *_: driver.stop_event.set())
        status = driver.run()
        error = None
    except BaseException as failure:  # recorded for gpdl.jobs, then the process ends
        status, error = tables.FAILED, f"{type(failure).__name__}: {failure}"
        print(f"gpdl job {job}: {error}", file=sys.stderr, flush=True)
    finally:
        beating.set()
        wake.set()
    with contextlib.suppress(Exception):
        set_job_status(dsn, output, status, error)
    _retried(lambda: registry.finished(dsn, job, status, error, progress["done"],
                                       progress["total"], progress["retries"]))
    return 1 if status == tables.FAILED else 0


def _retried(write: Callable[[], T]) -> T:
    """A registry write, retried for a minute: a restarting or busy server is not an end.

    Without its start or its end recorded, ``gpdl.jobs`` would call a healthy job lost.
    """
    deadline = time.monotonic() + REGISTRY_PATIENCE_SECONDS
    while True:
        try:
            return write()
        except (psycopg2.OperationalError, FatalError) as error:
            if time.monotonic() > deadline:
                raise
            print(f"gpdl: registry write failed, retrying: {error}", file=sys.stderr,
                  flush=True)
            time.sleep(2)


def _beat(dsn: str, job: TableName, progress: dict, done: threading.Event,
          wake: threading.Event) -> None:
    """Write heartbeat and progress every ``HEARTBEAT_SECONDS``, and at once when woken."""
    conn = None
    while True:
        wake.wait(registry.HEARTBEAT_SECONDS)
        wake.clear()
        if done.is_set():
            break
        try:
            if conn is None or conn.closed:
                conn = psycopg2.connect(dsn, application_name=f"gpdl:{job}:heartbeat"[:63])
                conn.autocommit = True
            registry.heartbeat(conn, job, progress["done"], progress["total"],
                               progress["retries"])
        except psycopg2.Error:  # a server restart: the next beat reconnects
            with contextlib.suppress(Exception):
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
