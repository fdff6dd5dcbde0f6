"""The MOP trainer survives faults: a killed segment backend, a killed driver, a restart.

After each fault the job ends (by itself or through ``resume``) with every
configuration having visited every segment exactly once per iteration, and no
unit committed before the fault lost or redone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpdl_backend.errors import GpdlError
from gpdl_backend.mop import tables
from gpdl_backend.mop.driver import Event
from gpdl_backend.mop.job import fit_multiple_model, resume
from gpdl_jupyter import api
from gpdl_jupyter.cli import main
from tests.integration import trainer_helpers as h

pytestmark = pytest.mark.db

SEGMENTS = 2
ITERATIONS = 3
SLOW_FIT = "batch_size=16, epochs=3"  # units of ~0.5 s: long enough to hit one mid-hop
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ids(dsn: str, shared_tmp_factory) -> dict[str, int]:
    h.prepare_data(dsn, shared_tmp_factory("gpdl-trainer-"))
    return h.arch_table(dsn)


def _two_configs(dsn: str, ids: dict[str, int], name: str) -> str:
    return h.mst_table(dsn, name, [(ids["good"], h.COMPILE_SLOW, SLOW_FIT),
                                   (ids["big"], h.COMPILE_SLOW, SLOW_FIT)])


def _wait_for(condition: Callable[[], bool], timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _assert_complete(dsn: str, output: str, before: set[tuple]) -> None:
    """Exact visits, nothing committed earlier lost or redone, one metric per iteration."""
    h.assert_exact_visits(dsn, output, [1, 2], SEGMENTS, ITERATIONS)
    after = {(i, m, s, t) for i, m, s, t in h.fetch(
        dsn, f"SELECT iteration, mst_key, segment, finished_at FROM {output}_progress")}
    assert before <= after, f"committed units lost or redone: {before - after}"
    summary = h.summary(dsn, output)
    assert summary["status"] == tables.FINISHED
    assert summary["metrics_iters"] == list(range(1, ITERATIONS + 1))
    for row in h.info(dsn, output).values():
        assert row["status"] == tables.FINISHED
        assert len(row["training_loss"]) == ITERATIONS, row["training_loss"]


def _committed(dsn: str, output: str) -> set[tuple]:
    return set(h.fetch(dsn, f"SELECT iteration, mst_key, segment, finished_at "
                            f"FROM {output}_progress"))


def _unit_process_once(dsn: str, output: str, ready: Callable[[], bool]) -> int:
    """A server process running one of the job's units, once ``ready()`` holds.

    The pid is the one seen with the condition: looked up again, the unit may be done.
    """
    seen: list[int] = []

    def found() -> bool:
        if not ready():
            return False
        seen[:] = h.unit_processes(dsn, output)
        return bool(seen)

    _wait_for(found, what="a unit in flight")
    return seen[0]


def test_terminated_segment_backend_is_retried(dsn: str, ids: dict[str, int]) -> None:
    mst = _two_configs(dsn, ids, "tf_term_mst")
    h.drop_output(dsn, "tf_term")
    events: list[Event] = []
    job = fit_multiple_model(dsn, h.TRAIN, "tf_term", mst, ITERATIONS,
                             metrics_compute_frequency=1, background=True,
                             listener=events.append)
    # Mid-hop: a unit committed already (TensorFlow is up), another one running.
    # The process that trains: the backend (PostgreSQL) or the segment's own (Greenplum).
    pid = _unit_process_once(dsn, "tf_term", lambda: h.progress_count(dsn, "tf_term") >= 1)
    before = _committed(dsn, "tf_term")
    os.kill(pid, signal.SIGTERM)
    killed = h.fetch(dsn, "SELECT clock_timestamp()")[0][0]
    final = job.wait(timeout=180)
    assert final.status == tables.FINISHED
    retries = [e for e in events if e.kind == "retry"]
    assert retries, "the killed unit was not retried"
    segment = int(re.search(r"on segment (\d+)", retries[0].detail).group(1))
    again = h.fetch(dsn, "SELECT min(finished_at) FROM tf_term_progress "
                         "WHERE segment = %s AND finished_at > %s", (segment, killed))[0][0]
    print(f"\nafter a terminated server process its segment committed a unit again "
          f"{(again - killed).total_seconds():.1f} s later; retried: {retries[0].detail}")
    _assert_complete(dsn, "tf_term", before)


def test_a_retried_unit_is_counted_in_gpdl_jobs_and_shown_by_the_cli(
        dsn: str, ids: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    """``gpdl fit`` follows a job of the database's driver process: a unit whose server
    process is terminated runs again, and the bar and ``gpdl status`` say so."""
    mst = _two_configs(dsn, ids, "tf_retry_mst")
    h.drop_output(dsn, "tf_retry")
    exit_code: list[int] = []
    fit = threading.Thread(target=lambda: exit_code.append(main(
        ["fit", h.TRAIN, "tf_retry", mst, "--iterations", str(ITERATIONS),
         "--metrics-frequency", "1", "--dsn", dsn])), daemon=True)
    fit.start()
    try:
        # The runner's sessions are named after the schema-qualified job.
        os.kill(_unit_process_once(dsn, "%.tf_retry", lambda: len(
            h.output_tables_exist(dsn, "tf_retry")) == 4 and
            h.progress_count(dsn, "tf_retry") >= 1), signal.SIGTERM)
    finally:
        fit.join(timeout=240)
    assert exit_code == [0], (capsys.readouterr(), h.driver_log(dsn, h.fetch(
        dsn, "SELECT job FROM gpdl.job WHERE job LIKE '%.tf_retry'")[0][0]))
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    _wait_for(lambda: h.fetch(dsn, "SELECT ended IS NOT NULL FROM gpdl.jobs "
                                   "WHERE job LIKE '%.tf_retry'")[0][0], what="its end")
    (job, state, retries), = h.fetch(
        dsn, "SELECT job, state, unit_retries FROM gpdl.jobs WHERE job LIKE '%.tf_retry'")
    assert state == tables.FINISHED and retries >= 1
    assert f"retries={retries}" in bar and "errors" not in bar, bar
    assert main(["status", "tf_retry", "--dsn", dsn]) == 0
    assert f"{2 * SEGMENTS * ITERATIONS} units, {retries} retried" in \
        capsys.readouterr().out.splitlines()[0]
    assert api.status("tf_retry", dsn=dsn).unit_retries == retries  # gpdl.job_status
    print(f"\n{job}: {retries} retried unit(s); the bar's last line: {bar}")
    _assert_complete(dsn, "tf_retry", set())


_DRIVER = """
import sys
from gpdl_backend.mop.job import fit_multiple_model
dsn, source, output, mst, iterations = sys.argv[1:]
fit_multiple_model(dsn, source, output, mst, int(iterations), metrics_compute_frequency=1)
"""


def test_killed_driver_resumes_without_losing_units(dsn: str, ids: dict[str, int]) -> None:
    mst = _two_configs(dsn, ids, "tf_kill_mst")
    h.drop_output(dsn, "tf_kill")
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, dsn, h.TRAIN, "tf_kill", mst, str(ITERATIONS)],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def progressed() -> bool:
            assert driver.poll() is None, driver.communicate()[0].decode()[-2000:]
            tables_made = h.output_tables_exist(dsn, "tf_kill")
            return len(tables_made) == 4 and h.progress_count(dsn, "tf_kill") >= 3

        _wait_for(progressed, timeout=120, what="3 committed units")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        if driver.stdout is not None:
            driver.stdout.close()
    before = _committed(dsn, "tf_kill")
    assert 3 <= len(before) < 2 * SEGMENTS * ITERATIONS
    assert h.summary(dsn, "tf_kill")["status"] == tables.RUNNING  # nobody marked it
    job = resume(dsn, "tf_kill")
    assert job.status().status == tables.FINISHED
    _assert_complete(dsn, "tf_kill", before)
    orphans = h.fetch(dsn, "SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name LIKE 'gpdl:tf_kill:%'")
    assert orphans == [(0,)]


def test_server_restart_mid_job(dsn: str, ids: dict[str, int], restart_server) -> None:
    mst = _two_configs(dsn, ids, "tf_restart_mst")
    h.drop_output(dsn, "tf_restart")
    job = fit_multiple_model(dsn, h.TRAIN, "tf_restart", mst, ITERATIONS,
                             metrics_compute_frequency=1, background=True)
    _wait_for(lambda: h.progress_count(dsn, "tf_restart") >= 2, what="2 committed units")
    restart_server()  # the embedded server's stop/start, or Greenplum's gpstop -ar
    back = h.fetch(dsn, "SELECT clock_timestamp()")[0][0]
    before = _committed(dsn, "tf_restart")
    try:
        outcome = job.wait(timeout=180).status
    except GpdlError as error:
        outcome = f"failed ({error})"
    if outcome != tables.FINISHED:
        resume(dsn, "tf_restart")
    survived = outcome == tables.FINISHED
    first = h.fetch(dsn, "SELECT min(finished_at) FROM tf_restart_progress "
                         "WHERE finished_at > %s", (back,))[0][0]
    print(f"\nafter a server restart the job {'survived' if survived else 'was resumed'}"
          f"{'' if survived else ': ' + outcome}; first new unit committed "
          f"{(first - back).total_seconds():.1f} s after the server was back")
    _assert_complete(dsn, "tf_restart", before)
