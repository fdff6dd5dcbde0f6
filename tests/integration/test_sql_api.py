"""The SQL API as a psql user calls it: MADlib's statements, refusals, jobs in the database.

Every statement here is plain SQL on a plain connection, as in psql; training
runs in a driver process on the database host, which these tests can see and
kill (it runs on this machine).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql

from gpdl_backend.datasets import write_synthetic_images
from gpdl_backend.mop.job import TrainingJob
from tests.integration import trainer_helpers as h
from tests.integration.plain_sql import refusal, run

pytestmark = pytest.mark.db

COMPILE_RMSPROP = ("loss='categorical_crossentropy',optimizer='rmsprop(lr=0.0001, "
                   "decay=1e-6)',metrics=['accuracy']")
COMPILE_ADAM = "loss='categorical_crossentropy',optimizer='adam(lr=0.0001)',metrics=['accuracy']"
ROLE = "gpdl_sql_api_tester"


def as_role(dsn: str, role: str) -> list[sql.Composable]:
    """Statements that make a session act as ``role``: its own schema first in the
    search path, then the schema holding the test data."""
    data_schema = run(dsn, "SELECT n.nspname FROM pg_class c JOIN pg_namespace n "
                           "ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
                      (h.TRAIN,))[0][0]
    return [sql.SQL("SET ROLE {}").format(sql.Identifier(role)),
            sql.SQL("SET search_path = {}, {}").format(sql.Identifier(role),
                                                       sql.Identifier(data_schema))]


def table_exists(dsn: str, name: str) -> bool:
    return run(dsn, "SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0]


def job_row(dsn: str, job: str) -> dict:
    rows = run(dsn, "SELECT state, units_done, units_total, owner, driver_pid, error "
                    "FROM gpdl.jobs WHERE job = %s", (job,))
    assert rows, f"no job {job} in gpdl.jobs"
    return dict(zip(("state", "units_done", "units_total", "owner", "driver_pid", "error"),
                    rows[0], strict=True))


def wait_for(dsn: str, job: str, states: tuple[str, ...], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        row = job_row(dsn, job)
        if row["state"] in states:
            return row
        assert time.monotonic() < deadline, f"job {job} still {row['state']}"
        time.sleep(0.5)


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def data(dsn: str, shared_tmp_factory) -> dict[str, int]:
    h.prepare_data(dsn, shared_tmp_factory("gpdl-sqlapi-"))
    return h.arch_table(dsn)


@pytest.fixture(scope="module")
def mst(dsn: str, data: dict[str, int]) -> str:
    """A selection table of two quick configurations, written through SQL."""
    name = unique("sqlapi_mst")
    run(dsn, "SELECT gpdl.load_model_selection_table(%s, %s, %s, %s, %s)",
        (h.ARCH, name, [data["good"]], [h.COMPILE, h.COMPILE_SLOW], [h.FIT]))
    return name


# ------------------------------------------------------------- the reference demo in SQL
def test_reference_demo_runs_as_printed(dsn: str, shared_tmp_factory) -> None:
    """Load, pack, models, selection, fit, predict: MADlib's statements with gpdl."""
    folder = shared_tmp_factory("gpdl-sqlapi-demo-")
    write_synthetic_images(folder / "train", 160, size=(8, 8), num_classes=4, seed=3,
                           processes=1)
    write_synthetic_images(folder / "val", 40, size=(8, 8), num_classes=4, seed=4,
                           processes=1)
    tag = secrets.token_hex(3)
    train, val, arch = f"cifar10_train_{tag}", f"cifar10_val_{tag}", f"model_arch_{tag}"
    mst, out, preds = f"mst_{tag}", f"cifar10_multi_model_{tag}", f"preds_{tag}"
    run(dsn, "SELECT gpdl.load_images(%s, %s, batch_size => 20)",
        (str(folder / "train"), train))
    run(dsn, "SELECT gpdl.load_images(%s, %s)", (str(folder / "val"), val))
    run(dsn, f"SELECT gpdl.training_preprocessor_dl('{train}', '{train}_packed', 'y', 'x', "
             "NULL, 255.0)")
    run(dsn, f"SELECT gpdl.validation_preprocessor_dl('{val}', '{val}_packed', 'y', 'x', "
             f"'{train}_packed')")
    for filters in (4, 8):
        run(dsn, "SELECT gpdl.load_keras_model(%s, %s)", (arch, h.model_json(filters=filters)))
    run(dsn, f"""
        SELECT gpdl.load_model_selection_table('{arch}', '{mst}', ARRAY[1,2],
          ARRAY[$${COMPILE_RMSPROP}$$, $${COMPILE_ADAM}$$],
          ARRAY[$$batch_size=64,epochs=5$$, $$batch_size=128,epochs=5$$])""")
    assert run(dsn, f"SELECT count(*) FROM {mst}")[0][0] == 8
    job = run(dsn, f"SELECT gpdl.madlib_keras_fit_multiple_model('{train}_packed', '{out}', "
                   f"'{mst}', 2, FALSE, '{val}_packed', 1)")[0][0]
    assert job.endswith("." + out)
    row = job_row(dsn, job)
    assert row["state"] == "finished" and row["units_done"] == row["units_total"] == 8 * 2 * 2
    info = run(dsn, f"SELECT count(*), count(*) FILTER (WHERE array_length(validation_loss, 1)"
                    f" = 2) FROM {out}_info")[0]
    assert info == (8, 8)
    assert run(dsn, f"SELECT metrics_iters FROM {out}_summary")[0][0] == [1, 2]
    run(dsn, f"SELECT gpdl.madlib_keras_predict('{out}', '{val}', 'fullpaths', 'x', "
             f"'{preds}', 'response', FALSE, 1)")
    assert run(dsn, f"SELECT count(*), max(rank) FROM {preds}")[0] == (40, 1)


def test_fit_alias_and_notices_report_progress(dsn: str, mst: str) -> None:
    out = unique("sqlapi_alias")
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT gpdl.fit_multiple_model(%s, %s, %s, 1)", (h.TRAIN, out, mst))
            job = cur.fetchone()[0]
        notices = [n.strip() for n in conn.notices]
    finally:
        conn.close()
    assert job_row(dsn, job)["state"] == "finished"
    assert any(f"gpdl training {job}: 4/4 units" in n for n in notices), notices
    assert any("iteration 1: mst_key 2 training loss" in n for n in notices), notices


# ------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(("arguments", "expected"), [
    (("trainer_train", "bad name!", "{mst}", 1), "unsafe table name 'bad name!'"),
    (("no_such_packed", "{out}", "{mst}", 1), "no_such_packed is not a packed table"),
    (("trainer_train", "{out}", "no_such_mst", 1), "model selection table no_such_mst"),
    (("trainer_train", "{out}", "{mst}", 0), "num_iterations must be a positive integer"),
    (("trainer_train", "nosuch_schema_q.{out}", "{mst}", 1),
     "schema nosuch_schema_q does not exist"),
    (("trainer_train", "pg_catalog.{out}", "{mst}", 1), "in the system schema pg_catalog"),
])
def test_fit_refusals_leave_no_table(dsn: str, mst: str, arguments: tuple,
                                     expected: str) -> None:
    out = unique("sqlapi_refused")
    values = tuple(a.format(mst=mst, out=out) if isinstance(a, str) else a for a in arguments)
    message = refusal(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, %s)",
                      values)
    assert message.startswith("UsageError: ") and expected in message
    assert not any(table_exists(dsn, out + s) for s in ("", "_info", "_summary", "_progress"))
    assert not run(dsn, "SELECT 1 FROM gpdl.jobs WHERE job LIKE %s", (f"%.{out}",))


def test_model_table_refusals(dsn: str, data: dict[str, int]) -> None:
    mst = unique("sqlapi_mst_bad")
    assert "not in" in refusal(
        dsn, "SELECT gpdl.load_model_selection_table(%s, %s, ARRAY[999], %s, %s)",
        (h.ARCH, mst, [h.COMPILE], [h.FIT]))
    assert not table_exists(dsn, mst)
    assert "compile" in refusal(
        dsn, "SELECT gpdl.load_model_selection_table(%s, %s, %s, ARRAY['loss=]'], %s)",
        (h.ARCH, mst, [data["good"]], [h.FIT])).lower()
    assert "Keras" in refusal(dsn, "SELECT gpdl.load_keras_model(%s, %s)",
                              (unique("sqlapi_arch"), '{"class_name": "Nope"}'))
    assert "in the system schema pg_catalog" in refusal(
        dsn, "SELECT gpdl.load_model_selection_table(%s, %s, %s, %s, %s)",
        (h.ARCH, f"pg_catalog.{mst}", [data["good"]], [h.COMPILE], [h.FIT]))
    assert "schema nosuch_schema_q does not exist" in refusal(
        dsn, "SELECT gpdl.training_preprocessor_dl('trainer_images', %s, 'y', 'x')",
        (f"nosuch_schema_q.{mst}",))
    assert "dependent_varname must be 'y'" in refusal(
        dsn, "SELECT gpdl.training_preprocessor_dl('trainer_images', %s, 'label', 'x')",
        (unique("sqlapi_packed"),))


# ------------------------------------------------------------- jobs in the database
def test_background_job_outlives_its_connection(dsn: str, mst: str) -> None:
    out = unique("sqlapi_bg")
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        started = time.monotonic()
        cur.execute("SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 2, "
                    "background => true)", (h.TRAIN, out, mst))
        job = cur.fetchone()[0]
    conn.close()  # the client goes away at once
    assert time.monotonic() - started < 60
    row = wait_for(dsn, job, ("finished", "failed", "lost", "stopped"))
    assert row["state"] == "finished", (row, h.driver_log(dsn, job))
    assert row["units_done"] == row["units_total"] == 2 * 2 * 2
    h.assert_exact_visits(dsn, out, [1, 2], 2, 2)


def test_a_starting_job_is_judged_by_its_process(dsn: str) -> None:
    """Not launched yet: the clock (2 minutes); launched: the process, however slow."""
    job = unique("public.sqlapi_starting")
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                               "gpdl_backend.mop.runner", job])  # names the runner and job
    try:
        run(dsn, "INSERT INTO gpdl.job (job, owner, state, heartbeat) "
                 "VALUES (%s, current_user, 'starting', now())", (job,))
        assert job_row(dsn, job)["state"] == "starting"  # no pid yet, just launched
        run(dsn, "UPDATE gpdl.job SET heartbeat = now() - interval '3 minutes' "
                 "WHERE job = %s", (job,))
        assert job_row(dsn, job)["state"] == "lost"  # no pid, never came up
        run(dsn, "UPDATE gpdl.job SET driver_host = %s, driver_pid = %s WHERE job = %s",
            (socket.gethostname(), runner.pid, job))
        assert job_row(dsn, job)["state"] == "starting"  # slow, but its process lives
        runner.kill()
        runner.wait()
        assert job_row(dsn, job)["state"] == "lost"  # died at start-up: lost at once
    finally:
        runner.kill()
        run(dsn, "DELETE FROM gpdl.job WHERE job = %s", (job,))


def test_killed_driver_shows_lost_and_resumes(dsn: str, mst: str) -> None:
    out = unique("sqlapi_lost")
    job = run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 6, "
                   "background => true)", (h.TRAIN, out, mst))[0][0]
    deadline = time.monotonic() + 120
    while not run(dsn, f"SELECT count(*) FROM {out}_progress")[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    row = job_row(dsn, job)
    assert row["state"] == "running"
    # A lagging heartbeat (a loaded host) does not make a live driver lost: a resume
    # would start a second driver beside it.
    run(dsn, "UPDATE gpdl.job SET heartbeat = now() - interval '1 hour' WHERE job = %s",
        (job,))
    assert job_row(dsn, job)["state"] == "running"
    # A driver read as gone for one moment (seen once on each engine, cause not
    # found) is not lost to the client, which would give up on a healthy job.
    handle = TrainingJob(dsn, job)
    run(dsn, "UPDATE gpdl.job SET driver_pid = 0 WHERE job = %s", (job,))
    back = threading.Timer(0.5, run, (dsn, "UPDATE gpdl.job SET driver_pid = %s "
                                            "WHERE job = %s", (row["driver_pid"], job)))
    back.start()
    assert handle.status().status == "running"
    back.join()
    os.kill(row["driver_pid"], signal.SIGKILL)
    assert wait_for(dsn, job, ("lost",), timeout=10)["state"] == "lost"
    assert handle.status().status == "lost"
    # As if the killed driver had retried two units: a resume goes on counting.
    run(dsn, "UPDATE gpdl.job SET unit_retries = 2 WHERE job = %s", (job,))
    run(dsn, "SELECT gpdl.resume_job(%s)", (job,))
    assert job_row(dsn, job)["state"] == "finished"
    assert run(dsn, "SELECT unit_retries FROM gpdl.jobs WHERE job = %s", (job,)) == [(2,)]
    h.assert_exact_visits(dsn, out, [1, 2], 2, 6)


def test_stop_job_then_resume(dsn: str, mst: str) -> None:
    out = unique("sqlapi_stop")
    job = run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 8, "
                   "background => true)", (h.TRAIN, out, mst))[0][0]
    wait_for(dsn, job, ("running",))
    message = run(dsn, "SELECT gpdl.stop_job(%s)", (job,))[0][0]
    assert message == f"stop requested for job {job}"
    row = wait_for(dsn, job, ("stopped", "finished", "failed"))
    assert row["state"] == "stopped", row
    assert row["units_done"] < 8 * 2 * 2
    run(dsn, "SELECT gpdl.resume_job(%s)", (job,))
    assert job_row(dsn, job)["state"] == "finished"
    h.assert_exact_visits(dsn, out, [1, 2], 2, 8)


# --------------------------------------------------------------- the caller's privileges
@pytest.fixture(scope="module")
def role(dsn: str, data: dict[str, int], mst: str) -> Iterator[str]:
    """A role without superuser that may use gpdl and read the packed data only."""
    schema = ROLE
    run(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    run(dsn, f"DROP ROLE IF EXISTS {ROLE}")
    run(dsn, f"CREATE ROLE {ROLE}")
    run(dsn, f"CREATE SCHEMA {schema}")  # AUTHORIZATION: Greenplum's segments refuse it
    run(dsn, f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {ROLE}")
    run(dsn, f"GRANT gpdl_user TO {ROLE}")
    tables_schema = run(dsn, "SELECT n.nspname FROM pg_class c JOIN pg_namespace n "
                             "ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
                        (h.TRAIN,))[0][0]
    run(dsn, f"GRANT USAGE ON SCHEMA {tables_schema} TO {ROLE}")
    for table in (h.TRAIN, h.TRAIN + "_summary", mst, mst + "_summary", h.ARCH):
        run(dsn, f"GRANT SELECT ON {table} TO {ROLE}")
    yield ROLE
    run(dsn, f"DROP SCHEMA {schema} CASCADE")
    run(dsn, "DELETE FROM gpdl.job WHERE owner = %s", (ROLE,))
    run(dsn, f"DROP OWNED BY {ROLE}")
    run(dsn, f"DROP ROLE {ROLE}")


def test_without_gpdl_user_a_role_may_not_call_the_api(dsn: str, role: str) -> None:
    outsider = role + "_outsider"
    run(dsn, f"DROP ROLE IF EXISTS {outsider}")
    run(dsn, f"CREATE ROLE {outsider}")
    try:
        run(dsn, f"GRANT USAGE ON SCHEMA gpdl TO {outsider}")
        with pytest.raises(psycopg2.Error, match="permission denied for function"):
            run(dsn, "SELECT gpdl.stop_job('public.anything')", setup=as_role(dsn, outsider))
        with pytest.raises(psycopg2.Error, match="permission denied for function"):
            run(dsn, "SELECT gpdl.count_files('/')", setup=as_role(dsn, outsider))
    finally:
        run(dsn, f"REVOKE USAGE ON SCHEMA gpdl FROM {outsider}")
        run(dsn, f"DROP ROLE {outsider}")


def test_job_runs_with_the_callers_privileges(dsn: str, mst: str, role: str) -> None:
    out = f"{role}.owned_job"
    job = run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 1)",
              (h.TRAIN, out, mst), setup=as_role(dsn, role))[0][0]
    assert job == out
    assert job_row(dsn, job)["owner"] == role
    # Each role writes only its own rows of the registry (row-level security).
    other = unique("public.someone_elses")
    run(dsn, "INSERT INTO gpdl.job (job, owner, state) VALUES (%s, current_user, 'running')",
        (other,))
    acting = as_role(dsn, role)
    try:
        assert run(dsn, "SELECT state FROM gpdl.job WHERE job = %s", (other,),
                   setup=acting) == [("running",)]  # everyone reads every job
        assert run(dsn, "UPDATE gpdl.job SET state = 'finished' WHERE owner <> current_user "
                        "RETURNING job", setup=acting) == []
        assert run(dsn, "DELETE FROM gpdl.job WHERE job = %s RETURNING job", (other,),
                   setup=acting) == []
    finally:
        run(dsn, "DELETE FROM gpdl.job WHERE job = %s", (other,))
    owners = run(dsn, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s",
                 (role,))
    assert owners == [(role,)]
    # Not allowed to read the validation data: refused as the caller, by the server.
    with pytest.raises(psycopg2.Error) as caught:
        run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 1, false, %s)",
            (h.TRAIN, f"{role}.denied_job", mst, h.VALIDATION), setup=as_role(dsn, role))
    assert "permission denied" in str(caught.value)
    assert not table_exists(dsn, f"{role}.denied_job")


# ------------------------------------------------------------ the client composes SQL
def test_show_sql_prints_the_statement_that_runs(dsn: str, mst: str, monkeypatch) -> None:
    from gpdl_jupyter import api
    from gpdl_jupyter.api import _common

    executed: list[str] = []
    original = _common.execute_on

    def recorded(conn, statement, *args, **kwargs):
        executed.append(statement)
        return original(conn, statement, *args, **kwargs)

    monkeypatch.setattr(_common, "execute_on", recorded)
    out = unique("sqlapi_shown")
    calls = [
        (api.fit, (h.TRAIN, out, mst), dict(num_iterations=8)),
        (api.stop, (out,), {}),
        (api.resume, (out,), dict(background=False)),
    ]
    for function, args, options in calls:
        shown = function(*args, **options, dsn=dsn, show_sql=True)
        executed.clear()
        function(*args, **options, dsn=dsn)
        assert executed == [shown.removesuffix(";")]  # no binary parameters here
    job = run(dsn, "SELECT job FROM gpdl.jobs WHERE job LIKE %s", (f"%.{out}",))[0][0]
    assert job_row(dsn, job)["state"] == "finished"


def test_jobs_are_listed_for_the_client(dsn: str, mst: str) -> None:
    from gpdl_jupyter import api

    out = unique("sqlapi_listed")
    run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 1)", (h.TRAIN, out, mst))
    row = next(r for r in api.jobs(dsn=dsn) if r["job"].endswith("." + out))
    assert row["state"] == "finished" and row["units_done"] == row["units_total"] == 4
    assert row["unit_retries"] == 0
    assert {r["state"] for r in api.jobs(state="finished", dsn=dsn)} == {"finished"}
    report = api.status(row["job"], dsn=dsn)
    assert report.status == "finished" and report.units_done == 4
    assert report.unit_retries == 0 and "4/4 units, 0 retried" in report.headline()


def test_client_evaluate_matches_the_fits_validation(dsn: str, mst: str) -> None:
    from gpdl_jupyter import api

    out = unique("sqlapi_eval")
    run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 1, false, %s)",
        (h.TRAIN, out, mst, h.VALIDATION))
    result = api.evaluate(out, h.VALIDATION, out + "_eval", mst_key=2, dsn=dsn)
    expected = run(dsn, f"SELECT validation_loss_final FROM {out}_info WHERE mst_key = 2")
    assert result.loss == pytest.approx(expected[0][0], rel=1e-5)
    assert result.images == h.VALIDATION_IMAGES and result.mst_key == 2
    assert run(dsn, f"SELECT count(*) FROM {out}_eval")[0][0] == 1


def test_resume_upgrades_a_job_made_by_an_older_gpdl(dsn: str, mst: str) -> None:
    out = unique("sqlapi_old")
    job = run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 8, "
                   "background => true)", (h.TRAIN, out, mst))[0][0]
    wait_for(dsn, job, ("running",))
    run(dsn, "SELECT gpdl.stop_job(%s)", (job,))
    wait_for(dsn, job, ("stopped", "finished"))
    # What an earlier gpdl created: no columns for several metrics.
    run(dsn, f"ALTER TABLE {out}_info DROP COLUMN training_metrics_all, "
             "DROP COLUMN training_metrics_all_history, DROP COLUMN validation_metrics_all, "
             "DROP COLUMN validation_metrics_all_history")
    run(dsn, f"ALTER TABLE {out}_progress DROP COLUMN metrics_all")
    run(dsn, "SELECT gpdl.resume_job(%s)", (job,))
    assert job_row(dsn, job)["state"] == "finished"
    assert run(dsn, f"SELECT count(*) FROM {out}_info WHERE training_metrics_all IS NOT NULL"
               )[0][0] == 2
    h.assert_exact_visits(dsn, out, [1, 2], 2, 8)


def test_model_and_gpu_tables_in_sql(dsn: str, data: dict[str, int]) -> None:
    arch, mst, gpus = unique("sqlapi_arch"), unique("sqlapi_grid"), unique("sqlapi_gpus")
    first = run(dsn, "SELECT gpdl.load_keras_model(%s, %s, name => 'tiny')",
                (arch, h.model_json()))[0][0]
    second = run(dsn, "SELECT gpdl.load_keras_model(%s, %s)", (arch, h.model_json(filters=8)))
    assert (first, second[0][0]) == (1, 2)
    configs = run(dsn, """
        SELECT gpdl.generate_model_configs(%s, %s, ARRAY[1, 2],
          $${'loss': ['categorical_crossentropy'], 'optimizer_params_list': [
              {'optimizer': ['Adam'], 'lr': [0.001, 0.01]}], 'metrics': ['accuracy']}$$,
          $${'batch_size': [8, 16]}$$)""", (arch, mst))[0][0]
    assert len(configs) == 2 * 2 * 2 == run(dsn, f"SELECT count(*) FROM {mst}")[0][0]
    run(dsn, "SELECT gpdl.delete_keras_model(%s, 2)", (arch,))
    assert run(dsn, f"SELECT model_id FROM {arch}") == [(1,)]
    assert "model_id 2 is not in" in refusal(
        dsn, "SELECT gpdl.delete_keras_model(%s, 2)", (arch,))
    run(dsn, "SELECT gpdl.gpu_configuration(%s)", (gpus,))
    found = run(dsn, "SELECT count(*), count(*) FILTER (WHERE hostname IS NOT NULL) "
                     f"FROM {gpus}")[0]
    assert found[0] == found[1]  # one row per GPU (none on a machine without)
    assert "source must be 'tensorflow' or 'nvidia'" in refusal(
        dsn, "SELECT gpdl.gpu_configuration(%s, 'cuda')", (unique("sqlapi_gpus"),))


def test_a_cancelled_call_cancels_its_sessions(dsn: str) -> None:
    """psql's Ctrl-C on a SQL API call reaches the driver's own sessions at once."""
    run(dsn, """
        CREATE OR REPLACE FUNCTION public.gpdl_test_slow_call(seconds integer)
        RETURNS void AS $$
        from gpdl_backend import sql_api
        from gpdl_backend.client import session

        def slow(dsn):
            with session(dsn) as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(%s) /* gpdl_test_slow */", (seconds,))

        sql_api.call(plpy, slow)
        $$ LANGUAGE plpython3u""")
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    outcome: dict = {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT gpdl.version(), pg_backend_pid()")  # puts gpdl on sys.path
            pid = cur.fetchone()[1]

            def call() -> None:
                try:
                    cur.execute("SELECT public.gpdl_test_slow_call(120)")
                except psycopg2.Error as error:
                    outcome["error"] = error

            caller = threading.Thread(target=call)
            caller.start()
            inner = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                     "AND query LIKE %s AND pid <> %s AND pid <> pg_backend_pid()")
            deadline = time.monotonic() + 30
            while not run(dsn, inner, ("%pg_sleep(120) /* gpdl_test_slow */%", pid))[0][0]:
                assert time.monotonic() < deadline, "the inner session never started"
                time.sleep(0.1)
            cancelled = time.monotonic()
            run(dsn, "SELECT pg_cancel_backend(%s)", (pid,))
            caller.join(timeout=30)
            assert not caller.is_alive() and time.monotonic() - cancelled < 10
            assert isinstance(outcome.get("error"), psycopg2.errors.QueryCanceled)
            deadline = time.monotonic() + 10
            while run(dsn, inner, ("%pg_sleep(120) /* gpdl_test_slow */%", pid))[0][0]:
                assert time.monotonic() < deadline, "the inner session still sleeps"
                time.sleep(0.1)
    finally:
        conn.close()
        run(dsn, "DROP FUNCTION IF EXISTS public.gpdl_test_slow_call(integer)")
