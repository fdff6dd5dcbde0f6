"""``fit_multiple_model`` / ``resume``: plan a MOP job, run it, hand back a job handle.

Example::

    job = fit_multiple_model(dsn, "train_packed", "models", "mst", num_iterations=5,
                             validation_table="test_packed", background=True)
    job.wait()
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import AsIs

import gpdl_backend
from gpdl_backend import engine as engines
from gpdl_backend.client import (
    TableName,
    check_writable,
    qualified,
    session,
    table_exists,
    table_name,
)
from gpdl_backend.errors import GpdlError, UsageError
from gpdl_backend.mop import registry, tables
from gpdl_backend.mop.driver import Config, Driver, Event, JobPlan, Segment, lock_job
from gpdl_backend.mop.scheduler import Unit
from gpdl_backend.preprocess import read_summary


def fit_multiple_model(
    dsn: str,
    source_table: str,
    model_output_table: str,
    model_selection_table: str,
    num_iterations: int,
    use_gpus: bool = False,
    validation_table: str | None = None,
    metrics_compute_frequency: int | None = None,
    warm_start: bool = False,
    name: str | None = None,
    description: str | None = None,
    use_caching: bool = True,
    seed: int = 0,
    num_segments: int | None = None,
    background: bool = False,
    listener: Callable[[Event], None] | None = None,
) -> TrainingJob:
    """Train every configuration of ``model_selection_table`` with model hopper parallelism.

    Args:
        dsn: where the database is.
        source_table: packed training table (``training_preprocessor``).
        model_output_table: name of the output; creates it, ``_info``,
            ``_summary`` and ``_progress``.
        model_selection_table: MADlib model selection table (mst_key, model_id,
            compile_params, fit_params) whose ``_summary`` names the architecture table.
        num_iterations: passes of every configuration over every segment.
        use_gpus: one GPU per segment; refused where a host has none. Defaults to False.
        validation_table: packed validation table. Defaults to None.
        metrics_compute_frequency: evaluate every this many iterations (and
            after the last). Defaults to num_iterations (only at the end).
        warm_start: start from the weights in an existing ``model_output_table``.
        name, description: free text kept in the summary.
        use_caching: keep each segment's partition in its backend's memory.
            Defaults to True.
        seed: seeds the schedule and weight initialisation. Defaults to 0.
        num_segments: PostgreSQL virtual segments. Defaults to the packed table's.
        background: return at once, training in a thread. Defaults to False.
        listener: called with an ``Event`` after each unit and iteration.

    Returns:
        A ``TrainingJob`` (finished unless ``background``).

    Raises:
        UsageError: a bad table, option or configuration, before any training.
    """
    plan = plan_new(dsn, source_table, model_output_table, model_selection_table,
                    num_iterations, use_gpus, validation_table, metrics_compute_frequency,
                    warm_start, name, description, use_caching, seed, num_segments)
    return TrainingJob.run(plan, background, listener)


def plan_new(
    dsn: str,
    source_table: str,
    model_output_table: str,
    model_selection_table: str,
    num_iterations: int,
    use_gpus: bool = False,
    validation_table: str | None = None,
    metrics_compute_frequency: int | None = None,
    warm_start: bool = False,
    name: str | None = None,
    description: str | None = None,
    use_caching: bool = True,
    seed: int = 0,
    num_segments: int | None = None,
) -> JobPlan:
    """Check a new job and create its tables; the plan a driver runs.

    Arguments as ``fit_multiple_model``; nothing is created when a check fails.

    Raises:
        UsageError: a bad table, option or configuration.
    """
    if not isinstance(num_iterations, int) or isinstance(num_iterations, bool) \
            or num_iterations < 1:
        raise UsageError(f"num_iterations must be a positive integer, not {num_iterations!r}")
    frequency = metrics_frequency(metrics_compute_frequency, num_iterations)
    # Every name is checked before connecting; an empty validation_table is an error,
    # not "no validation".
    output = tables.OutputTables(table_name(model_output_table))
    source, mst_table = table_name(source_table), table_name(model_selection_table)
    validation = table_name(validation_table) if validation_table is not None else None
    with session(dsn) as conn:
        return _new_plan(conn, dsn, output, source, mst_table, validation,
                         num_iterations, frequency, warm_start, name, description,
                         use_caching, use_gpus, seed, num_segments)


def metrics_frequency(metrics_compute_frequency: int | None, num_iterations: int) -> int:
    """Evaluate every this many iterations: the given count, else ``num_iterations``.

    Raises:
        UsageError: the count is not a positive integer (0 included: it is not
            "the default").

    Example:
        >>> metrics_frequency(None, 10), metrics_frequency(2, 10)
        (10, 2)
    """
    frequency = num_iterations if metrics_compute_frequency is None \
        else metrics_compute_frequency
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
        raise UsageError(f"metrics_compute_frequency must be a positive integer, not "
                         f"{frequency!r}")
    return frequency


def resume(dsn: str, model_output_table: str, background: bool = False,
           listener: Callable[[Event], None] | None = None) -> TrainingJob:
    """Continue a job from its last committed unit (killed driver, server restart, stop).

    Raises:
        UsageError: no such job, it already finished, or another driver runs it.
    """
    return TrainingJob.run(plan_resume(dsn, model_output_table), background, listener)


def plan_resume(dsn: str, model_output_table: str) -> JobPlan:
    """Mark a stopped, failed or interrupted job running again; the plan that continues it.

    Raises:
        UsageError: no such job, it already finished, or another driver runs it.
    """
    output = tables.OutputTables(table_name(model_output_table))
    with session(dsn) as conn:
        return _resumed_plan(conn, dsn, output)


def plan_current(dsn: str, model_output_table: str) -> JobPlan:
    """The plan of a job as its tables record it now (a job's driver process starts here)."""
    output = tables.OutputTables(table_name(model_output_table))
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT num_segments FROM {}").format(output.summary.identifier))
        engine = engines.probe(conn, cur.fetchone()[0])
        return _plan_from_tables(cur, dsn, output, engine)


# --- the job handle -------------------------------------------------------------------
@dataclass
class JobStatus:
    """A snapshot of a job, read from its tables."""

    status: str
    iterations_done: int
    num_iterations: int
    units_done: int
    units_total: int
    error: str | None
    configs: list[dict]
    unit_retries: int = 0
    """Units run again after a failure (a lost session, a cancel...), all drivers of
    the job together; a unit that failed for good fails the job instead."""


LOST_READINGS = 3  # a lost job is believed on this many readings in a row


class TrainingJob:
    """A handle on a training job: status, wait, stop (also for jobs run elsewhere)."""

    def __init__(self, dsn: str, output: str, thread: threading.Thread | None = None) -> None:
        self.dsn = dsn
        self.output = tables.OutputTables(table_name(output))
        self.thread = thread
        self.exception: BaseException | None = None
        self.driver: Driver | None = None  # when this process drives the job

    @classmethod
    def attach(cls, dsn: str, output: str) -> TrainingJob:
        """A handle on an existing job (running anywhere, or finished)."""
        job = cls(dsn, output)
        job.status()  # refuses unknown jobs now
        return job

    @classmethod
    def run(cls, plan: JobPlan, background: bool,
            listener: Callable[[Event], None] | None) -> TrainingJob:
        job = cls(plan.dsn, str(plan.output.model))
        if background:
            job.thread = threading.Thread(target=job._drive, args=(plan, listener),
                                          daemon=True, name="gpdl-driver")
            job.thread.start()
        else:
            job._drive(plan, listener)
            if job.exception is not None:
                raise job.exception
        return job

    def _drive(self, plan: JobPlan, listener: Callable[[Event], None] | None) -> None:
        try:
            self.driver = driver_for(plan, listener)
            status = self.driver.run()
            set_job_status(plan.dsn, plan.output, status, None)
        except BaseException as error:  # recorded in the summary, re-raised by wait()
            self.exception = error
            with contextlib.suppress(GpdlError):
                set_job_status(plan.dsn, plan.output, tables.FAILED, str(error))

    def status(self) -> JobStatus:
        """Read the job's state from its tables; ``lost`` only when read three times.

        A driver was once read as gone for one moment while it ran (on both
        engines, cause not found); a lost job takes two seconds longer to say so.
        """
        for _ in range(LOST_READINGS - 1):
            current = self._read_status()
            if current.status != registry.LOST:
                return current
            time.sleep(1.0)
        return self._read_status()

    def _read_status(self) -> JobStatus:
        with session(self.dsn) as conn, conn.cursor() as cur:
            if not table_exists(cur, self.output.summary):
                raise UsageError(f"no training job {self.output.model}")
            cur.execute(sql.SQL("SELECT status, iterations_done, num_iterations, error, "
                                "num_segments FROM {}").format(
                self.output.summary.identifier))
            status, done, total_iterations, error, segments = cur.fetchone()
            registered = _registered(cur, self.output.model)
            # Running, unless its driver process is gone (one still starting says nothing).
            if status == tables.RUNNING and registered.get("state") not in \
                    (None, registry.STARTING):
                status, error = registered["state"], registered["error"]
            unit_retries = registered.get("unit_retries") or 0  # 0 before an upgrade
            if self.driver is not None:  # driven in this process, not recorded in gpdl.job
                unit_retries = self.driver.unit_retries
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(
                self.output.progress.identifier))
            units_done = cur.fetchone()[0]
            search_plan_units = _units_planned(cur, self.output)
            cur.execute(sql.SQL(
                "SELECT i.mst_key, i.model_id, i.compile_params, i.fit_params, i.status, "
                "i.training_loss_final, i.training_metrics_final, i.validation_loss_final, "
                "i.validation_metrics_final, "
                "(SELECT count(*) FROM {p} p WHERE p.mst_key = i.mst_key), "
                "i.stop_requested FROM {i} i ORDER BY i.mst_key").format(
                i=self.output.info.identifier, p=self.output.progress.identifier))
            names = ["mst_key", "model_id", "compile_params", "fit_params", "status",
                     "training_loss", "training_metric", "validation_loss",
                     "validation_metric", "units_done"]
            rows = cur.fetchall()
        configs = [dict(zip(names, row[:-1], strict=True)) for row in rows]
        # Configurations stopped one by one train no more; a whole-job stop can resume.
        stopped_alone = [row[-1] for row in rows]
        stopped_units = sum(c["units_done"] for c, stopped in
                            zip(configs, stopped_alone, strict=True) if stopped)
        active = stopped_alone.count(False)
        units_total = active * segments * total_iterations + stopped_units
        if search_plan_units is not None:  # a search plans as it goes
            units_total = max(units_done, search_plan_units)
        return JobStatus(status, done, total_iterations, units_done, units_total, error, configs,
                         unit_retries)

    def running(self) -> bool:
        if self.thread is not None:
            return self.thread.is_alive()
        return self.status().status == tables.RUNNING

    def wait(self, timeout: float | None = None, poll_seconds: float = 1.0) -> JobStatus:
        """Block until the job ends (or ``timeout``); re-raises a local driver's error."""
        if self.thread is not None:
            self.thread.join(timeout)
            if self.exception is not None:
                raise self.exception
            return self.status()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.status()
            if current.status != tables.RUNNING:
                return current
            if deadline is not None and time.monotonic() > deadline:
                return current
            time.sleep(poll_seconds)

    def stop(self, mst_key: int | None = None) -> None:
        """Ask the driver to stop the whole job, or one configuration (the rest go on)."""
        with session(self.dsn) as conn, conn.cursor() as cur:
            if mst_key is None:
                cur.execute(sql.SQL("UPDATE {} SET stop_requested = true").format(
                    self.output.summary.identifier))
            else:
                cur.execute(sql.SQL(
                    "UPDATE {} SET stop_requested = true WHERE mst_key = %s").format(
                    self.output.info.identifier), (mst_key,))
                if cur.rowcount == 0:
                    raise UsageError(f"job {self.output.model} has no mst_key {mst_key}")


def driver_for(plan: JobPlan, listener: Callable[[Event], None] | None) -> Driver:
    """The driver of a plan: a search's, or the fit's."""
    if plan.search is None:
        return Driver(plan, listener)
    from gpdl_backend.mop.search_driver import SearchDriver  # it builds on this module

    return SearchDriver(plan, listener)


def _registered(cur, job: TableName) -> dict:
    """The ``gpdl.jobs`` row of a job run by a driver process (``state``: ``lost``...,
    ``unit_retries``); empty where it has none (a job driven by a client)."""
    cur.execute("SELECT to_regclass('gpdl.jobs') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    return registry.record_of(cur, qualified(cur, job)) or {}


def _units_planned(cur, output: tables.OutputTables) -> int | None:
    """A search's planned units (None for a fit, whose total follows from its tables)."""
    if not tables.is_search(cur, output):
        return None
    cur.execute(sql.SQL("SELECT units_planned FROM {}").format(output.summary.identifier))
    return cur.fetchone()[0] or 0


def set_job_status(dsn: str, output: tables.OutputTables, status: str,
                   error: str | None) -> None:
    """Record a job's end (or failure) in its summary; stopped configurations stay."""
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET status = %s, error = %s, "
                            "end_training_time = now()").format(
            output.summary.identifier), (status, error))
        if status in (tables.FAILED, tables.STOPPED):  # no configuration trains on
            cur.execute(sql.SQL("UPDATE {} SET status = %s WHERE status = %s").format(
                output.info.identifier), (status, tables.TRAINING))


# --- planning ----------------------------------------------------------------------
def _segments(cur, engine: engines.Engine, source: TableName,
              validation: TableName | None) -> list[Segment]:
    def counts(table: TableName | None) -> dict[int, int]:
        if table is None:
            return {}
        cur.execute(sql.SQL("SELECT __dist_key__, count(*) FROM {} GROUP BY 1").format(
            table.identifier))
        return dict(cur.fetchall())

    train, val = counts(source), counts(validation)
    return [Segment(i, key, train.get(key, 0), val.get(key, 0))
            for i, key in enumerate(engine.dist_keys)]


def _new_plan(conn, dsn, output, source, mst_table, validation, num_iterations, frequency,
              warm_start, name, description, use_caching, use_gpus, seed,
              num_segments) -> JobPlan:
    summary, engine = check_sources(conn, source, validation, num_segments)
    with conn.cursor() as cur:
        if not table_exists(cur, mst_table):
            raise UsageError(f"model selection table {mst_table} does not exist")
        mst_summary = mst_table.with_suffix("_summary")
        if not table_exists(cur, mst_summary):
            raise UsageError(f"{mst_summary} does not exist: load the selection table with "
                             "load_model_selection_table")
        cur.execute(sql.SQL("SELECT model_arch_table FROM {}").format(mst_summary.identifier))
        arch_table = table_name(cur.fetchone()[0])
        cur.execute(sql.SQL(
            "SELECT s.mst_key, s.model_id, s.compile_params, s.fit_params, a.model_arch::text, "
            "a.model_weights FROM {} s LEFT JOIN {} a ON a.model_id = s.model_id "
            "ORDER BY s.mst_key").format(mst_table.identifier, arch_table.identifier))
        rows = cur.fetchall()
        if not rows:
            raise UsageError(f"{mst_table} holds no configurations")
        image_shape = list(summary["image_shape"])
        num_classes = int(summary["num_classes"])
        for mst, model_id, _, _, arch, _ in rows:
            if arch is None:
                raise UsageError(f"mst_key {mst}: model_id {model_id} is not in {arch_table}")
        # The cheap checks first; the ones below import TensorFlow in the server.
        previous = _previous_weights(cur, output) if warm_start else {}
        if warm_start and not previous:
            raise UsageError(f"warm_start: {output.model} holds no weights to start from")
        check_writable(cur, output.model)
        if not warm_start and any(table_exists(cur, t) for t in output.all()):
            raise UsageError(f"table {output.model} (or its _info/_summary/_progress) already "
                             "exists; drop it or pass warm_start=True")
        if warm_start:
            lock_job(conn, output, hold=False)  # never drop a running job's tables
        if use_gpus:
            _check_gpus(cur, engine)
        infos: dict[int, dict] = {}
        for mst, model_id, compile_params, fit_params, arch, initial in rows:
            weights = previous.get(mst) or initial
            infos[mst], problem = config_problem(
                cur, arch, compile_params, fit_params, image_shape, num_classes, weights,
                "warm_start weights" if mst in previous else "initial weights")
            if problem:
                raise UsageError(f"configuration mst_key {mst} (model_id {model_id}, "
                                 f"{compile_params}; {fit_params}): {problem}")
        cur.execute(output.drop_sql())
        for statement in output.create_sql(engine):
            cur.execute(statement)
        for mst, model_id, compile_params, fit_params, arch, initial in rows:
            insert_config(cur, output, ModelRow(mst, model_id, compile_params, fit_params, arch),
                          previous.get(mst) or initial, infos[mst], seed)
        insert_row(cur, output.summary, summary_row(
            output, source, validation, summary, engine, model_arch_table=str(arch_table),
            model_selection_table=str(mst_table), num_iterations=num_iterations,
            metrics_compute_frequency=frequency, warm_start=warm_start, name=name,
            description=description, seed=seed, use_gpus=use_gpus, use_caching=use_caching))
        plan = _plan_from_tables(cur, dsn, output, engine)
    conn.commit()
    return plan


def check_sources(conn, source: TableName, validation: TableName | None,
                  num_segments: int | None) -> tuple[dict, engines.Engine]:
    """Check the packed tables a job trains on; their summary and the engine.

    ``engines.probe`` ends the transaction it opened: call this before any write.

    Raises:
        UsageError: a table that is not packed, packed for other segments, or a
            validation table of other class values or image shape.
    """
    with conn.cursor() as cur:
        summary = read_summary(cur, source)
        dist_keys = tuple(summary["dist_keys"])
        engine = engines.probe(conn, num_segments or len(dist_keys))
        if engine.dist_keys != dist_keys:
            raise UsageError(f"{source} was packed for segments {list(dist_keys)}, the "
                             f"database has {list(engine.dist_keys)}: preprocess it again")
        if validation is not None:
            val_summary = read_summary(cur, validation)
            if list(val_summary["class_values"]) != list(summary["class_values"]):
                raise UsageError(f"{validation} has other class values than {source}")
            shape, val_shape = list(summary["image_shape"]), list(val_summary["image_shape"])
            if val_shape != shape:
                raise UsageError(f"{validation} holds images of shape {val_shape}, {source} "
                                 f"of shape {shape}: preprocess both with the same size")
    return summary, engine


def summary_row(output: tables.OutputTables, source: TableName, validation: TableName | None,
                packed: dict, engine: engines.Engine, **options: object) -> dict:
    """A new job's ``<out>_summary`` row: what its inputs say, then ``options``."""
    return dict(
        source_table=str(source), validation_table=str(validation) if validation else None,
        model=str(output.model), model_info=str(output.info), dependent_varname="y",
        independent_varname="x", start_training_time=AsIs("now()"),
        madlib_version=f"gpdl {gpdl_backend.__version__}",
        num_classes=int(packed["num_classes"]), class_values=list(packed["class_values"]),
        dependent_vartype="text", normalizing_const=float(packed["normalizing_const"]),
        metrics_iters=[], status=tables.RUNNING, iterations_done=0,
        num_segments=engine.num_segments, image_shape=list(packed["image_shape"]),
        stop_requested=False, **options)


def insert_row(cur, table: TableName, values: dict) -> None:
    """INSERT one row of ``values`` (column name to value) into ``table``."""
    cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table.identifier, sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder(name) for name in values)), values)


@dataclass(frozen=True)
class ModelRow:
    """A configuration as a job's tables record it: its key, model and parameters."""

    mst_key: int
    model_id: int
    compile_params: str
    fit_params: str
    model_arch: str


def config_problem(cur, arch: str, compile_params: str, fit_params: str,
                   image_shape: list[int], num_classes: int, weights: bytes | None,
                   weights_source: str) -> tuple[dict, str | None]:
    """The model's info and what is wrong with a configuration (None: nothing).

    Runs in the server (TensorFlow builds and compiles the model there).
    """
    cur.execute("SELECT gpdl.check_config(%s, %s, %s, %s, %s)",
                (arch, compile_params, fit_params, image_shape, num_classes))
    problem = cur.fetchone()[0]
    info = _model_info(cur, arch)
    expected = 4 * int(info["num_params"])
    if not problem and weights is not None and len(weights) != expected:
        problem = (f"its {weights_source} hold {len(weights)} bytes, the model's "
                   f"{info['num_params']} float32 parameters take {expected}")
    return info, problem


def insert_config(cur, output: tables.OutputTables, row: ModelRow, weights: bytes | None,
                  info: dict, seed: int, status: str = tables.TRAINING,
                  extra: dict | None = None) -> None:
    """Write a configuration's ``<out>`` and ``<out>_info`` rows (weights initialised if None).

    Args:
        extra: more ``_info`` columns and their values (a search's budget, rung...).
    """
    if weights is None:
        cur.execute("SELECT gpdl.init_weights(%s, %s, %s)",
                    (row.model_arch, row.compile_params, seed * 7919 + row.mst_key))
        weights = cur.fetchone()[0]
    cur.execute(sql.SQL("INSERT INTO {} (mst_key, model_weights, model_arch) "
                        "VALUES (%s, %s, %s)").format(output.model.identifier),
                (row.mst_key, weights, row.model_arch))
    insert_row(cur, output.info, dict(
        mst_key=row.mst_key, model_id=row.model_id, compile_params=row.compile_params,
        fit_params=row.fit_params, model_type="madlib_keras",
        model_size=len(weights) / 1024.0, metrics_elapsed_time=[],
        metrics_type=_metrics_of(row.compile_params), loss_type=_loss_of(row.compile_params),
        training_metrics=[], training_loss=[], validation_metrics=[], validation_loss=[],
        status=status, num_params=info["num_params"], **(extra or {})))


def _check_gpus(cur, engine: engines.Engine) -> None:
    """Refuse ``use_gpus`` before any table is made when a segment's host has no GPU.

    Raises:
        UsageError: naming the first segment (host) where TensorFlow sees no GPU.
    """
    cur.execute(engine.on_every_segment(sql.SQL("gpdl.server_info(true)")))
    for segment, value in cur.fetchall():
        info = value if isinstance(value, dict) else json.loads(value)
        if not info.get("gpus"):
            where = f"segment {segment} on host" if segment >= 0 else "host"
            raise UsageError(f"use_gpus=True but {where} {info.get('host')} has no GPU "
                             "visible to TensorFlow; train with use_gpus=False")


def _resumed_plan(conn, dsn: str, output: tables.OutputTables) -> JobPlan:
    with conn.cursor() as cur:
        if not table_exists(cur, output.summary):
            raise UsageError(f"no training job {output.model} to resume")
        cur.execute(sql.SQL("SELECT status, num_segments FROM {}").format(
            output.summary.identifier))
        status, segments = cur.fetchone()
        if status == tables.FINISHED:
            raise UsageError(f"job {output.model} already finished")
        lock_job(conn, output, hold=False)
        engine = engines.probe(conn, segments)  # first: it ends the transaction it opened
        for statement in output.upgrade_sql():
            cur.execute(statement)
        cur.execute(sql.SQL("UPDATE {} SET status = %s, stop_requested = false, error = NULL")
                    .format(output.summary.identifier), (tables.RUNNING,))
        # A whole-job stop or failure marked the configurations; those not stopped
        # one by one (stop_requested) train on.
        cur.execute(sql.SQL("UPDATE {} SET status = %s WHERE status IN (%s, %s) "
                            "AND NOT stop_requested").format(output.info.identifier),
                    (tables.TRAINING, tables.STOPPED, tables.FAILED))
        plan = _plan_from_tables(cur, dsn, output, engine)
    conn.commit()
    return plan


def _plan_from_tables(cur, dsn: str, output: tables.OutputTables,
                      engine: engines.Engine) -> JobPlan:
    """The plan as the tables record it: new jobs and resumed ones alike."""
    cur.execute(sql.SQL(
        "SELECT source_table, validation_table, num_iterations, metrics_compute_frequency, "
        "num_classes, normalizing_const, seed, use_gpus, use_caching, iterations_done "
        "FROM {}").format(output.summary.identifier))
    (source_name, validation_name, num_iterations, frequency, num_classes, norm, seed,
     use_gpus, use_caching, done) = cur.fetchone()
    source = table_name(source_name)
    validation = table_name(validation_name) if validation_name else None
    cur.execute(sql.SQL("SELECT mst_key, compile_params, fit_params, status FROM {} "
                        "ORDER BY mst_key").format(output.info.identifier))
    rows = cur.fetchall()
    configs = [Config(mst, compile_params, fit) for mst, compile_params, fit, _ in rows]
    stopped = [mst for mst, _, _, status in rows if status == tables.STOPPED]
    cur.execute(sql.SQL("SELECT mst_key, segment FROM {} WHERE iteration = %s "
                        "ORDER BY mst_key, hop").format(output.progress.identifier), (done,))
    completed = [Unit(done, mst, segment) for mst, segment in cur.fetchall()]
    cur.execute("SELECT %s::regclass::oid, %s::regclass::oid",
                (source.identifier.as_string(cur),
                 validation.identifier.as_string(cur) if validation else None))
    source_oid, validation_oid = cur.fetchone()
    plan = JobPlan(
        dsn=dsn, output=output, source=source, validation=validation, source_oid=source_oid,
        validation_oid=validation_oid, configs=configs,
        segments=_segments(cur, engine, source, validation), num_iterations=num_iterations,
        metrics_compute_frequency=frequency, num_classes=num_classes,
        normalizing_const=float(norm), seed=int(seed),
        threads=engines.threads_per_segment(cur, engine), use_gpus=use_gpus,
        use_caching=use_caching, start_iteration=done, completed=completed, stopped=stopped)
    from gpdl_backend.mop import search_plan  # it builds on this module

    return search_plan.read_search(cur, plan) if tables.is_search(cur, output) else plan


def _previous_weights(cur, output: tables.OutputTables) -> dict[int, bytes]:
    if not table_exists(cur, output.model):
        return {}
    cur.execute(sql.SQL("SELECT mst_key, model_weights FROM {}").format(
        output.model.identifier))
    return {mst: bytes(w) for mst, w in cur.fetchall() if w is not None}


def _model_info(cur, arch: str) -> dict:
    cur.execute("SELECT gpdl.model_info(%s)", (arch,))
    value = cur.fetchone()[0]
    return value if isinstance(value, dict) else json.loads(value)


def _metrics_of(compile_params: str) -> list[str]:
    from gpdl_backend.selection import parse_compile_params

    return list(parse_compile_params(compile_params).metrics)


def _loss_of(compile_params: str) -> str:
    from gpdl_backend.selection import parse_compile_params

    return parse_compile_params(compile_params).loss
