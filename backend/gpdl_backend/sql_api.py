"""Bodies of gpdl's SQL API: MADlib's deep-learning functions in schema ``gpdl``.

Each function of ``sql/functions.sql`` that a user calls (``gpdl.load_keras_model``,
``gpdl.madlib_keras_fit_multiple_model``, ...) is one call here. It runs the same
driver a Python caller gets, beside the server: with a local DSN whose sessions act
as the calling role (:mod:`gpdl_backend.local`), progress as NOTICEs
(:mod:`gpdl_backend.notices`), and a gpdl error as a one-line SQL error
(``UsageError: ...``), raised before any table exists.

Those sessions are not the caller's transaction: what a call wrote stays when the
caller's transaction rolls back, and a table the caller made in a transaction not
yet committed is not visible to them. A cancel request (psql's Ctrl-C) cancels
them too (``call``).

Training runs in a driver process of its own on the database host
(:mod:`gpdl_backend.mop.runner`); a blocking call watches it, a background call
returns the job's name at once.

Runs inside the server's Python (a coordinator backend).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from psycopg2 import sql

from gpdl_backend import local
from gpdl_backend.client import TableName, cancel_scope, qualified, session, table_name
from gpdl_backend.errors import GpdlError, UsageError
from gpdl_backend.mop import registry, tables
from gpdl_backend.notices import progress_line

__all__ = [
    "as_json", "call", "evaluate", "fit_multiple_model", "gpu_configuration", "job_status",
    "load_images", "notify", "predict", "predict_byom", "resume_job", "sql_errors", "stop_job",
    "training_preprocessor_dl", "validation_preprocessor_dl",
]


def call(plpy: Any, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``operation(local_dsn, *args, **kwargs)``; a gpdl error becomes a SQL error.

    The operation runs in a thread while this one (the backend's own: only it
    may use ``plpy``) sends the NOTICEs the operation queued with ``notify`` and
    checks for a cancel request every 0.2 s; a cancel cancels the operation's
    sessions (``client.cancel_scope``), which clean up as after any error. The
    wait is a ``join``, not a ``pg_sleep``: a plpy call holds the GIL, which
    would starve the operation's thread.

    Example:
        >>> call(plpy, model_tables.delete_keras_model, "model_arch_library", 1)
    """
    dsn = local.local_dsn(plpy)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = operation(dsn, *args, **kwargs)
        except BaseException as error:  # handed to the backend's thread below
            outcome["error"] = error

    with cancel_scope() as cancel:
        worker = threading.Thread(target=work, name="gpdl-sql-api", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)  # waits without the GIL (plpy calls keep it)
                _send_notices(plpy)
                plpy.execute("SELECT pg_sleep(0)")  # where a cancel request lands
        except BaseException:  # Greenplum raises its cancel anywhere in Python
            cancel()
            worker.join()
            raise
        _send_notices(plpy)
    if "error" in outcome:
        with sql_errors():
            raise outcome["error"]
    return outcome.get("value")


@contextlib.contextmanager
def sql_errors() -> Iterator[None]:
    """A gpdl error leaves as one line, ``UsageError: ...``; anything else as it is."""
    try:
        yield
    except GpdlError as error:
        raise _sql_error(type(error).__name__)(str(error)) from None


@functools.cache
def _sql_error(name: str) -> type[Exception]:
    """An exception class PL/Python prints as ``<name>: <message>``, nothing more.

    PL/Python prefixes the module of any other class (``plpy.Error: ...``,
    ``gpdl_backend.errors.UsageError: ...``); ``__main__`` it leaves out.
    """
    return type(name, (Exception,), {"__module__": "__main__"})


_NOTICES: queue.Queue[str] = queue.Queue()


def notify(line: str) -> None:
    """Queue a progress line; ``call`` sends it as a NOTICE from the backend's thread."""
    _NOTICES.put(line)


def _send_notices(plpy: Any) -> None:
    while True:
        try:
            plpy.notice(_NOTICES.get_nowait())
        except queue.Empty:
            return


def as_json(value: Any) -> str:
    """A result dataclass (or a list of them) as JSON text."""
    if isinstance(value, list):
        return json.dumps([asdict(v) for v in value])
    return json.dumps(asdict(value))


# --- training jobs -----------------------------------------------------------------
def fit_multiple_model(plpy: Any, GD: dict, background: bool, **options: Any) -> str:
    """``gpdl.madlib_keras_fit_multiple_model``: check, create the tables, start the driver.

    Returns:
        The job's name (its output table, schema-qualified).
    """
    from gpdl_backend.mop.job import plan_new

    return _plan_and_launch(plpy, GD, background, lambda dsn: plan_new(dsn, **options))


def automl(plpy: Any, GD: dict, background: bool, **options: Any) -> str:
    """``gpdl.madlib_keras_automl``: check the search, create its tables, start its driver."""
    from gpdl_backend.mop.search_plan import plan_search

    return _plan_and_launch(plpy, GD, background, lambda dsn: plan_search(dsn, **options))


def _plan_and_launch(plpy: Any, GD: dict, background: bool,
                     planner: Callable[[str], Any], resumed: bool = False) -> str:
    """Plan a job (checks, tables) in ``call``, then start its driver process.

    Args:
        resumed: the job goes on (its count of retried units too). Defaults to False.
    """
    plan = call(plpy, planner)
    with sql_errors():  # from here on plpy is used: in this thread, not call's
        return _launch(plpy, GD, local.local_dsn(plpy), plan.output.model, background,
                       resumed)


def resume_job(plpy: Any, GD: dict, job: str, background: bool) -> str:
    """``gpdl.resume_job``: continue a stopped, failed or lost job from its last unit."""
    from gpdl_backend.mop.job import plan_resume

    return _plan_and_launch(plpy, GD, background, lambda dsn: plan_resume(dsn, job),
                            resumed=True)


def stop_job(plpy: Any, job: str, mst_key: int | None) -> str:
    """``gpdl.stop_job``: ask a job (or one configuration) to stop; returns what was asked."""
    from gpdl_backend.mop.job import TrainingJob

    def stop(dsn: str) -> str:
        handle = TrainingJob.attach(dsn, job)
        handle.stop(mst_key)
        what = f"mst_key {mst_key} of job" if mst_key is not None else "job"
        return f"stop requested for {what} {handle.output.model}"

    return call(plpy, stop)


def job_status(plpy: Any, job: str) -> str:
    """``gpdl.job_status``: a job's ``JobStatus`` as JSON (``lost`` when its driver died)."""
    from gpdl_backend.mop.job import TrainingJob

    return call(plpy, lambda dsn: json.dumps(asdict(TrainingJob.attach(dsn, job).status()),
                                             default=str))


def _launch(plpy: Any, GD: dict, dsn: str, output: TableName, background: bool,
            resumed: bool) -> str:
    from gpdl_backend.mop import runner

    with session(dsn) as conn, conn.cursor() as cur:
        job = qualified(cur, output)
    registry.register(dsn, job, resumed)
    settings = GD["gpdl.settings"]
    pid = runner.spawn(dsn, job, _server_python(), list(settings["site_paths"]),
                       Path(os.getcwd()) / "gpdl_jobs")
    registry.launched(dsn, job, pid)
    if background:
        plpy.notice(f"gpdl: job {job} trains in the background; follow it in gpdl.jobs, "
                    f"stop it with gpdl.stop_job('{job}')")
        return str(job)
    return _watch(plpy, dsn, job)


def _server_python() -> str:
    """The interpreter the server's Python is (plpython3u's sys.executable may not be one)."""
    if Path(sys.executable).name.startswith("python"):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(Path(sys.base_exec_prefix) / "bin" / version)


def _watch(plpy: Any, dsn: str, job: TableName) -> str:
    """Wait for the job, streaming its progress; a cancelled wait stops the job."""
    from gpdl_backend.mop.job import TrainingJob
    from gpdl_backend.mop.registry import LOST

    handle = TrainingJob(dsn, str(job))
    reported = (-1, 0)
    while True:
        try:
            plpy.execute("SELECT pg_sleep(1)")  # where a cancel request lands
        except BaseException:  # Greenplum raises its cancel anywhere in Python
            handle.stop()
            raise
        status = handle.status()
        if (status.units_done, status.iterations_done) != reported:
            plpy.notice(progress_line(
                f"training {job}", status.units_done, status.units_total,
                f"units, iteration {status.iterations_done} of {status.num_iterations}"))
            if status.iterations_done != reported[1]:
                _notice_metrics(plpy, status)
            reported = (status.units_done, status.iterations_done)
        if status.status == tables.RUNNING:
            continue
        if status.status == tables.FAILED:
            raise _sql_error("FatalError")(f"job {job} failed: {status.error}")
        if status.status == LOST:  # read three times over (TrainingJob.status)
            raise _sql_error("FatalError")(f"job {job} lost its driver; continue it with "
                                           f"SELECT gpdl.resume_job('{job}')")
        return str(job)


def _notice_metrics(plpy: Any, status: Any) -> None:
    """One NOTICE per configuration with its latest evaluated loss and metric."""
    for config in status.configs:
        if config["training_loss"] is None:
            continue
        line = (f"gpdl iteration {status.iterations_done}: mst_key {config['mst_key']} "
                f"training loss {config['training_loss']:.4f}, metric "
                f"{config['training_metric']:.4f}")
        if config["validation_loss"] is not None:
            line += (f"; validation loss {config['validation_loss']:.4f}, metric "
                     f"{config['validation_metric']:.4f}")
        plpy.notice(line)


# --- data ---------------------------------------------------------------------------
_IMAGE_COLUMNS = {"dependent_varname": "y", "independent_varname": "x"}


def training_preprocessor_dl(plpy: Any, source_table: str, output_table: str,
                             dependent_varname: str, independent_varname: str,
                             buffer_size: int | None, normalizing_const: float,
                             num_classes: int | None, distribution_rules: str | None,
                             seed: int, if_exists: str, num_segments: int | None) -> str:
    """``gpdl.training_preprocessor_dl`` over an image table; the ``PackResult`` as JSON."""
    from gpdl_backend.preprocess import training_preprocessor

    def pack(dsn: str) -> str:
        _check_image_columns(dependent_varname, independent_varname, distribution_rules)
        if num_classes is not None:
            raise UsageError("num_classes: gpdl counts the classes from the labels; "
                             "leave it NULL")
        return as_json(training_preprocessor(
            dsn, source_table, output_table, buffer_size=buffer_size,
            normalizing_const=normalizing_const, seed=seed, if_exists=if_exists,
            num_segments=num_segments, progress=notify))

    return call(plpy, pack)


def validation_preprocessor_dl(plpy: Any, source_table: str, output_table: str,
                               dependent_varname: str, independent_varname: str,
                               training_preprocessor_table: str, buffer_size: int | None,
                               distribution_rules: str | None, seed: int,
                               if_exists: str, num_segments: int | None) -> str:
    """``gpdl.validation_preprocessor_dl``: pack with the training table's classes."""
    from gpdl_backend.preprocess import validation_preprocessor

    def pack(dsn: str) -> str:
        _check_image_columns(dependent_varname, independent_varname, distribution_rules)
        if training_preprocessor_table is None:
            raise UsageError("training_preprocessor_table: name the packed training table")
        return as_json(validation_preprocessor(
            dsn, source_table, output_table, training_preprocessor_table,
            buffer_size=buffer_size, seed=seed, if_exists=if_exists, num_segments=num_segments,
            progress=notify))

    return call(plpy, pack)


def _check_image_columns(dependent_varname: str, independent_varname: str,
                         distribution_rules: str | None) -> None:
    given = {"dependent_varname": dependent_varname, "independent_varname": independent_varname}
    for argument, column in _IMAGE_COLUMNS.items():
        if given[argument] != column:
            raise UsageError(f"{argument} must be {column!r}: gpdl packs image tables "
                             f"(gpdl.load_images), whose labels are y and pixels x, "
                             f"not {given[argument]!r}")
    if distribution_rules not in (None, "all_segments"):
        raise UsageError(f"distribution_rules {distribution_rules!r}: gpdl packs onto "
                         "all segments; leave it NULL or 'all_segments'")


def load_images(plpy: Any, location: str, output_table: str, **options: Any) -> str:
    """``gpdl.load_images``: the ``LoadResult`` as JSON, a NOTICE per fragment read."""
    from gpdl_backend.images.loader import load_images as load

    if options.get("resize") is not None:
        options["resize"] = tuple(options["resize"])

    def progress(done: int, total: int, errors: int) -> None:
        notify(progress_line(f"load {output_table}", done, total, f"files, {errors} errors"))

    return call(plpy, lambda dsn: as_json(load(dsn, location, output_table,
                                               progress=progress, **options)))


# --- inference ------------------------------------------------------------------------
def predict(plpy: Any, model_table: str, test_table: str, id_col: str,
            independent_varname: str, output_table: str, pred_type: str, use_gpus: bool,
            mst_key: int | None, if_exists: str) -> str:
    """``gpdl.madlib_keras_predict``: the ``PredictResult`` as JSON."""
    from gpdl_backend.predict import predict as run

    def go(dsn: str) -> str:
        _check_prediction(independent_varname, use_gpus)
        return as_json(run(dsn, model_table, test_table, output_table, pred_type=pred_type,
                           mst_key=mst_key, id_col=id_col, if_exists=if_exists))

    return call(plpy, go)


def predict_byom(plpy: Any, model_arch_table: str, model_id: int | None, test_table: str,
                 id_col: str, independent_varname: str, output_table: str, pred_type: str,
                 use_gpus: bool, class_values: list[str] | None,
                 normalizing_const: float | None) -> str:
    """``gpdl.madlib_keras_predict_byom``: ``predict`` with a model architecture table's row."""
    from gpdl_backend.predict import predict_byom as run

    def go(dsn: str) -> str:
        _check_prediction(independent_varname, use_gpus)
        return as_json(run(dsn, model_arch_table, model_id, test_table, output_table,
                           pred_type=pred_type, class_values=class_values,
                           normalizing_const=normalizing_const, id_col=id_col))

    return call(plpy, go)


def _check_prediction(independent_varname: str, use_gpus: bool) -> None:
    if independent_varname != "x":
        raise UsageError(f"independent_varname must be 'x' (the image table's pixels), "
                         f"not {independent_varname!r}")
    if use_gpus:
        raise UsageError("use_gpus: predict runs where each segment's TensorFlow "
                         "places it; leave use_gpus false")


def gpu_configuration(plpy: Any, output_table: str, source: str) -> None:
    """``gpdl.gpu_configuration(output_table, source)``: MADlib's table of GPUs per host."""
    from gpdl_backend import engine as engines
    from gpdl_backend.gpu_monitor import gpu_configuration as gpus

    def write(dsn: str) -> None:
        if source not in ("tensorflow", "nvidia"):
            raise UsageError(f"source must be 'tensorflow' or 'nvidia', not {source!r}")
        target = table_name(output_table)
        rows = gpus(dsn)
        with session(dsn) as conn, conn.cursor() as cur:
            engine = engines.probe(conn, 1)
            cur.execute(sql.SQL(
                "CREATE TABLE {} (hostname text, gpu_descr text, device integer, "
                "memory_total_mb double precision, driver text){}").format(
                target.identifier, engine.distributed_randomly()))
            for row in rows:
                cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s)").format(
                    target.identifier), (row["host"], row["name"], row["device"],
                                         row["memory_total_mb"], row["driver"]))

    call(plpy, write)


# --- evaluation -----------------------------------------------------------------------
def evaluate(plpy: Any, model_table: str, test_table: str, output_table: str,
             use_gpus: bool, mst_key: int | None) -> str:
    """``gpdl.madlib_keras_evaluate``: the ``EvaluateResult`` as JSON (NaN as null)."""
    import math

    from gpdl_backend.evaluate import evaluate as run

    def finite(value: Any) -> Any:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    def go(dsn: str) -> str:
        result = asdict(run(dsn, model_table, test_table, output_table, use_gpus=use_gpus,
                            mst_key=mst_key))
        result.update(loss=finite(result["loss"]), metric=finite(result["metric"]),
                      metrics_all=[finite(v) for v in result["metrics_all"]])
        return json.dumps(result)

    return call(plpy, go)
