"""The MOP driver: runs a job's units over one connection per segment.

The driver lives in the client and never touches pixels or weights: each
unit is one SQL statement, sent on segment k's own session, that trains on
the rows ``WHERE __dist_key__ = k`` inside the database and, in the same
statement, saves the new weights and a progress row. A unit is therefore
committed whole or not at all; a dropped connection or a restarted server
costs only the units in flight, which the scheduler hands out again.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from gpdl_backend.client import raise_from_server, server_error, session, tracked
from gpdl_backend.errors import FatalError, GpdlError, UnitFailedError, UsageError
from gpdl_backend.local import without_role
from gpdl_backend.mop import tables
from gpdl_backend.mop.scheduler import MopScheduler, Unit
from gpdl_backend.server.worker import CACHE_MISS

MAX_UNIT_ATTEMPTS = 4
RECONNECT_SECONDS = 60.0
LOCK_WAIT_SECONDS = 10.0  # a killed driver's control backend needs a moment to go


@dataclass(frozen=True)
class Config:
    """One configuration (MADlib's mst) as the driver needs it."""

    mst_key: int
    compile_params: str
    fit_params: str


@dataclass(frozen=True)
class Segment:
    """One segment: its index, ``__dist_key__`` and buffer counts per table."""

    index: int
    dist_key: int
    train_buffers: int
    validation_buffers: int


@dataclass
class JobPlan:
    """Everything a driver needs to run (or resume) a job."""

    dsn: str
    output: tables.OutputTables
    source: Any  # TableName of the packed training table
    validation: Any | None  # TableName of the packed validation table
    source_oid: int
    validation_oid: int | None
    configs: list[Config]
    segments: list[Segment]
    num_iterations: int
    metrics_compute_frequency: int
    num_classes: int
    normalizing_const: float
    seed: int
    threads: int
    use_gpus: bool
    use_caching: bool
    start_iteration: int = 0
    completed: list[Unit] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    search: Any | None = None  # an AutoML search's SearchPlan (mop.search_plan)


@dataclass(frozen=True)
class Evaluation:
    """Loss and metrics of one model on one packed table, over all its segments.

    Attributes:
        loss: the mean loss per image.
        metrics: each compiled metric's mean per image, in the compile
            parameters' order (None where a segment reported none); ``()``
            without metrics.
        images: the images evaluated.
    """

    loss: float
    metrics: tuple[float | None, ...]
    images: int

    @property
    def metric(self) -> float | None:
        """The first metric (MADlib's one), or None without metrics."""
        return self.metrics[0] if self.metrics else None


def combine(parts: Iterable[tuple[float, Sequence[float | None], int]]) -> Evaluation:
    """The evaluation of a whole table from its segments' ``(loss, metrics, images)``.

    Each segment's values are means over its images, so they are weighted by
    image count: the result is the mean over every image, as one Keras
    ``evaluate`` over all rows would give. Segments without images count for
    nothing.

    Example:
        >>> combine([(1.0, [0.5], 10), (2.0, [1.0], 30), (0.0, [], 0)])
        Evaluation(loss=1.75, metrics=(0.875,), images=40)
    """
    loss, images = 0.0, 0
    sums: list[float | None] | None = None
    for part_loss, part_metrics, part_images in parts:
        if not part_images:
            continue
        loss += part_loss * part_images
        images += part_images
        weighted = [None if value is None else value * part_images for value in part_metrics]
        sums = weighted if sums is None else [
            None if total is None or value is None else total + value
            for total, value in zip(sums, weighted, strict=True)]
    if sums is None:
        return Evaluation(float("nan"), (), 0)
    return Evaluation(loss / images,
                      tuple(None if total is None else total / images for total in sums),
                      images)


@dataclass(frozen=True)
class Event:
    """What the driver reports to its listener (CLI bar, job handle)."""

    kind: str  # "unit", "iteration", "finished", "stopped", "retry", "steered" (a search)
    units_done: int
    units_total: int
    iteration: int
    detail: str = ""
    unit_retries: int = 0
    """On a unit's ``retry``: the units this driver has run again so far (else 0)."""


class _Session:
    """One segment's database session, reconnected when it drops.

    Args:
        on_connect: called with each new connection (the control session
            takes the job's lock there). Defaults to None.
    """

    def __init__(self, dsn: str, name: str,
                 on_connect: Callable[[Any], None] | None = None) -> None:
        self.dsn, self.name = dsn, name
        self.on_connect = on_connect
        self.conn: Any = None
        self.warm: set[str] = set()  # cache keys this backend holds

    def connection(self) -> Any:
        if self.conn is None or self.conn.closed:
            deadline = time.monotonic() + RECONNECT_SECONDS
            while True:
                try:
                    self.conn = tracked(psycopg2.connect(self.dsn, application_name=self.name))
                    self.conn.autocommit = True
                    break
                except psycopg2.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            self.warm.clear()  # a new backend has no cache
            if self.on_connect is not None:
                try:
                    self.on_connect(self.conn)
                except BaseException:
                    self.drop()
                    raise
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.close()
        self.conn = None
        self.warm.clear()

    def cancel(self) -> None:
        conn = self.conn
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg2.Error):
                conn.cancel()


def application_name(output: tables.OutputTables, segment: int) -> str:
    """The ``application_name`` of a job's segment session (for orphan clean-up)."""
    return f"gpdl:{output.model}:seg{segment}"[:63]


def lock_job(conn: Any, output: tables.OutputTables, hold: bool = True,
             wait_seconds: float | None = None) -> None:
    """Take the job's session-level advisory lock: one driver per job at a time.

    Args:
        conn: an autocommit connection; the lock lives as long as its session.
        hold: keep the lock (a driver) or release it at once (a check before
            planning). Defaults to True.
        wait_seconds: how long to retry. Defaults to ``LOCK_WAIT_SECONDS``.

    Raises:
        UsageError: another driver holds the lock.
    """
    key = f"gpdl:{output.model}"
    deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds)
    with conn.cursor() as cur:
        while True:
            cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            if cur.fetchone()[0]:
                if not hold:
                    cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
                return
            if time.monotonic() > deadline:
                raise UsageError(f"job {output.model} is being trained by another driver; "
                                 "stop it (or wait for it) before resuming or restarting it")
            time.sleep(0.25)


class Driver:
    """Runs a ``JobPlan`` to the end, a stop request, or a fatal error.

    Args:
        plan: the job.
        listener: called with an ``Event`` after each unit and iteration, and
            when a failed unit is run again (``retry``, counted in ``unit_retries``).
    """

    def __init__(self, plan: JobPlan, listener: Callable[[Event], None] | None = None) -> None:
        self.plan = plan
        self.listener = listener or (lambda _event: None)
        self.sessions = [_Session(plan.dsn, application_name(plan.output, s.index))
                         for s in plan.segments]
        self.control = _Session(plan.dsn, f"gpdl:{plan.output.model}:control"[:63],
                                on_connect=lambda conn: lock_job(conn, plan.output))
        self.results: queue.Queue = queue.Queue()
        self.stop_event = threading.Event()
        self.attempts: dict[Unit, int] = {}
        self.unit_retries = 0  # units run again after a retryable failure (a lost session too)
        self.units_done = len(plan.completed)
        # Per configuration, the segments it visited this iteration, in order: a
        # unit starts from the weights of the hop before it (or <out> at hop 0).
        self.visits: dict[int, list[int]] = {}
        for unit in plan.completed:  # in hop order
            self.visits.setdefault(unit.config, []).append(unit.segment)

    # --- public --------------------------------------------------------------
    def run(self) -> str:
        """Train until done; returns the final job status (finished / stopped)."""
        scheduler = self._scheduler()
        self._terminate_orphans()
        threads = [threading.Thread(target=self._segment_loop, args=(k,), daemon=True,
                                    name=f"gpdl-seg{k}") for k in range(len(self.sessions))]
        self.inbox = [queue.Queue() for _ in self.sessions]
        for thread in threads:
            thread.start()
        try:
            status = self._main_loop(scheduler)
        finally:
            for box in self.inbox:
                box.put(None)
            if self.stop_event.is_set():
                for session in self.sessions:
                    session.cancel()
            for thread in threads:
                thread.join(timeout=30)
            for session in [*self.sessions, self.control]:
                session.drop()
        return status

    # --- main loop -----------------------------------------------------------
    def _scheduler(self) -> Any:
        """The scheduler, where the plan left off (a search's driver has its own)."""
        plan = self.plan
        return MopScheduler.resume(
            [c.mst_key for c in plan.configs], [s.index for s in plan.segments],
            plan.num_iterations, plan.seed, plan.start_iteration, plan.completed,
            plan.stopped)

    def _main_loop(self, scheduler: MopScheduler) -> str:
        total = self._units_total(scheduler)
        in_flight: set[Unit] = set()
        if scheduler.iteration_complete and not scheduler.finished:
            self._end_iteration(scheduler)  # died between the last unit and evaluation
        last_poll = 0.0
        while not scheduler.finished:
            if time.monotonic() - last_poll > 1.0:
                last_poll = time.monotonic()
                if self._poll_stops(scheduler, in_flight):
                    return tables.STOPPED
            for unit in scheduler.assign_all_idle():
                in_flight.add(unit)
                self.inbox[unit.segment].put(("train", unit))
            try:
                unit, error = self.results.get(timeout=0.5)
            except queue.Empty:
                continue
            in_flight.discard(unit)
            if error is None:
                scheduler.complete(unit)
                self.visits.setdefault(unit.config, []).append(unit.segment)
                self.units_done += 1
                self.listener(Event("unit", self.units_done, total, scheduler.iteration,
                                    f"mst {unit.config} on segment {unit.segment}"))
            else:
                self._handle_failure(scheduler, unit, error)
            if scheduler.iteration_complete:
                self._end_iteration(scheduler)
                total = self._units_total(scheduler)
        self.listener(Event("finished", self.units_done, total, scheduler.iteration))
        return tables.FINISHED

    def _units_total(self, scheduler: MopScheduler) -> int:
        """Units of the whole job given the configurations still active."""
        per_iteration = len(scheduler.active_configs) * len(self.plan.segments)
        remaining = scheduler.num_iterations - scheduler.iteration
        done_now = sum(1 for c in scheduler.active_configs for s in self.plan.segments
                       if scheduler.unit_status(c, s.index).value == "done")
        return self.units_done - done_now + per_iteration * remaining

    def _handle_failure(self, scheduler: MopScheduler, unit: Unit, error: BaseException) -> None:
        if isinstance(error, UnitFailedError) and error.retryable:
            attempts = self.attempts.get(unit, 0) + 1
            self.attempts[unit] = attempts
            if attempts < MAX_UNIT_ATTEMPTS:
                scheduler.fail(unit)
                self.unit_retries += 1
                self.listener(Event("retry", self.units_done, 0, unit.iteration,
                                    f"mst {unit.config} on segment {unit.segment}: {error}",
                                    self.unit_retries))
                return
            raise FatalError(f"mst {unit.config} on segment {unit.segment} failed "
                             f"{attempts} times, last: {error}") from error
        raise error

    def _end_iteration(self, scheduler: MopScheduler) -> None:
        """Evaluate (when due) and commit the iteration, then move on."""
        iteration = scheduler.iteration + 1  # 1-based, as MADlib's metrics_iters
        plan = self.plan
        due = iteration % plan.metrics_compute_frequency == 0 or \
            iteration == plan.num_iterations
        metrics: dict[int, dict[str, tuple[float, float | None]]] = {}
        self._on_control(f"fold iteration {iteration}",
                         lambda: self._fold_iteration(scheduler.iteration,
                                                      list(scheduler.active_configs)))
        if due:
            metrics = self._evaluate(list(scheduler.active_configs))
        self._on_control(f"record iteration {iteration}",
                         lambda: self._commit_iteration(iteration, metrics, scheduler))
        scheduler.advance()
        self.visits.clear()
        self.listener(Event("iteration", self.units_done, 0, scheduler.iteration,
                            f"iteration {iteration} of {plan.num_iterations}"))

    def _on_control(self, what: str, work: Callable[[], None]) -> None:
        """Run ``work`` on the control session, reconnecting after a lost connection."""
        for attempt in range(1, MAX_UNIT_ATTEMPTS + 1):
            try:
                work()
                return
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                self.control.drop()  # server restarted or connection lost: reconnect
                if attempt == MAX_UNIT_ATTEMPTS:
                    raise FatalError(f"cannot {what}: {error}") from error

    def _fold_iteration(self, iteration: int, mst_keys: list[int]) -> None:
        """Move the iteration's last weights of ``mst_keys`` into ``<out>`` (idempotent),
        then reclaim space.

        Nothing trains meanwhile (the iteration is complete), so the UPDATEs
        wait for no unit; VACUUM keeps the hops' dead weights from piling up
        (Greenplum does not autovacuum user tables).
        """
        out = self.plan.output
        params = dict(iteration=iteration, last_hop=len(self.plan.segments) - 1,
                      msts=mst_keys)
        conn = self.control.connection()
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            for statement in out.fold_sql():
                cur.execute(statement, params)
            cur.execute("COMMIT")
            cur.execute(sql.SQL("VACUUM {}, {}").format(out.progress.identifier,
                                                         out.model.identifier))

    # --- evaluation ------------------------------------------------------------
    def _evaluate(self, mst_keys: list[int]) -> dict[int, dict[str, Evaluation]]:
        """Weighted loss and metrics per configuration on training (and validation) data."""
        plan = self.plan
        targets = ["train"] + (["validation"] if plan.validation is not None else [])
        expected = 0
        for segment in plan.segments:
            for mst in mst_keys:
                for target in targets:
                    self.inbox[segment.index].put(("evaluate", (mst, segment.index, target)))
                    expected += 1
        parts: dict[tuple[int, str], list[tuple[float, tuple, int]]] = {}
        attempts: dict[tuple[int, int, str], int] = {}
        while expected:
            task, result = self.results.get()
            if isinstance(result, BaseException):
                attempts[task] = attempts.get(task, 0) + 1
                if isinstance(result, UnitFailedError) and result.retryable and \
                        attempts[task] < MAX_UNIT_ATTEMPTS:
                    self.inbox[task[1]].put(("evaluate", task))
                    continue
                raise result
            mst, _, target = task
            expected -= 1
            parts.setdefault((mst, target), []).append(result)
        out: dict[int, dict[str, Evaluation]] = {}
        for (mst, target), results in parts.items():
            out.setdefault(mst, {})[target] = combine(results)
        return out

    def _commit_iteration(self, iteration: int, metrics: dict, scheduler: MopScheduler) -> None:
        out = self.plan.output
        conn = self.control.connection()
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(sql.SQL("SELECT iterations_done FROM {}").format(out.summary.identifier))
            if cur.fetchone()[0] >= iteration:  # an earlier attempt committed, its reply lost
                cur.execute("ROLLBACK")
                return
            elapsed = elapsed_seconds(cur, out)
            for mst, values in metrics.items():
                append_metrics(cur, out, mst, values, elapsed)
            finished = iteration == self.plan.num_iterations
            if finished:
                cur.execute(sql.SQL("UPDATE {} SET status = %s WHERE status = %s").format(
                    out.info.identifier), (tables.FINISHED, tables.TRAINING))
            cur.execute(sql.SQL(
                "UPDATE {} SET iterations_done = %s, end_training_time = now(), "
                "metrics_iters = CASE WHEN %s THEN metrics_iters || %s ELSE metrics_iters END, "
                "status = %s").format(out.summary.identifier),
                (iteration, bool(metrics), iteration,
                 tables.FINISHED if finished else tables.RUNNING))
            cur.execute("COMMIT")

    # --- stop requests -----------------------------------------------------------
    def _poll_stops(self, scheduler: MopScheduler, in_flight: set[Unit]) -> bool:
        """Apply stop requests from the tables; True when the whole job stops."""
        out = self.plan.output
        try:
            conn = self.control.connection()
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT stop_requested FROM {}").format(
                    out.summary.identifier))
                job_stop = bool(cur.fetchone()[0])
                cur.execute(sql.SQL(
                    "SELECT mst_key FROM {} WHERE stop_requested AND status NOT IN (%s, %s)"
                    ).format(out.info.identifier), (tables.STOPPED, tables.FAILED))
                configs = [row[0] for row in cur.fetchall()]
                for mst in configs:
                    if mst in scheduler.active_configs:
                        scheduler.stop(mst)
                    cur.execute(sql.SQL("UPDATE {} SET status = %s WHERE mst_key = %s").format(
                        out.info.identifier), (tables.STOPPED, mst))
        except psycopg2.OperationalError:
            self.control.drop()
            return False
        if job_stop or self.stop_event.is_set():
            self.stop_event.set()
            for unit in in_flight:
                self.sessions[unit.segment].cancel()
            return True
        return False

    def _terminate_orphans(self) -> None:
        """End sessions of an earlier driver of this job still running a unit.

        Taking the job's lock first (the control session's ``on_connect``)
        makes sure that driver is gone, not merely slow.
        """
        names = [s.name for s in self.sessions]
        conn = self.control.connection()
        statement = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = ANY(%s) AND pid <> pg_backend_pid()")
        admin = without_role(self.plan.dsn)
        if admin != self.plan.dsn:
            # A job run through the SQL API acts as its owner, but its sessions log in
            # as the superuser (gpdl_backend.local), whose processes only it may end.
            with session(admin, autocommit=True) as housekeeping, \
                    housekeeping.cursor() as cur:
                cur.execute(statement, (names,))
            return
        with conn.cursor() as cur:
            cur.execute(statement, (names,))

    # --- segment threads ---------------------------------------------------------
    def _segment_loop(self, index: int) -> None:
        session = self.sessions[index]
        while True:
            task = self.inbox[index].get()
            if task is None:
                return
            kind, payload = task
            try:
                if kind == "train":
                    self._train(session, payload)
                    self.results.put((payload, None))
                else:
                    self.results.put((payload, self._evaluate_one(session, *payload)))
            except BaseException as error:  # reported to the main loop, never lost
                self.results.put((payload, _classify(error, session)))

    def _train(self, session: _Session, unit: Unit) -> None:
        plan = self.plan
        cache_key = f"{plan.source_oid}:{plan.segments[unit.segment].dist_key}"
        statement, params = self.train_statement(
            unit, cached=plan.use_caching and cache_key in session.warm)
        with session.connection().cursor() as cur:
            try:
                cur.execute(statement, params)
            except psycopg2.errors.UniqueViolation:
                return  # an earlier driver's orphan committed this very unit
            if cur.rowcount != 1:
                raise UnitFailedError(f"unit returned {cur.rowcount} rows")
        if plan.use_caching:
            session.warm.add(cache_key)

    def train_statement(self, unit: Unit, cached: bool) -> tuple[sql.Composable, dict]:
        """The statement and parameters of one unit (``cached``: send no pixels)."""
        plan = self.plan
        segment = plan.segments[unit.segment]
        config = next(c for c in plan.configs if c.mst_key == unit.config)
        cache_key = f"{plan.source_oid}:{segment.dist_key}"
        visited = self.visits.get(unit.config, [])
        call = UNIT_CALL_SQL.format(
            packed=plan.source.identifier, rows=sql.SQL(""),
            weights=(_HOP_WEIGHTS if visited else _START_WEIGHTS).format(
                out=plan.output.model.identifier, progress=plan.output.progress.identifier),
            x=sql.SQL("NULL::bytea AS x, NULL::bytea AS y" if cached else "x, y"))
        statement = _TRAIN_SQL.format(progress=plan.output.progress.identifier, call=call)
        params = dict(
            hop=len(visited),
            previous_key=plan.segments[visited[-1]].dist_key if visited else None,
            key=segment.dist_key, mst=unit.config, token=uuid.uuid4().hex,
            cache_key=cache_key, num_buffers=segment.train_buffers,
            compile=config.compile_params, fit=config.fit_params,
            num_classes=plan.num_classes, norm=plan.normalizing_const,
            seed=plan.seed * 1_000_003 + unit.iteration * 10_007 + unit.config * 101
            + unit.segment, threads=plan.threads, use_gpus=plan.use_gpus,
            segment=unit.segment, use_caching=plan.use_caching, iteration=unit.iteration)
        return statement, params

    def _evaluate_one(self, session: _Session, mst: int, index: int,
                      target: str) -> tuple[float, tuple[float | None, ...], int]:
        """``(loss, metrics, images)`` of one configuration on one segment's partition."""
        plan = self.plan
        segment = plan.segments[index]
        table, oid, buffers = (plan.source, plan.source_oid, segment.train_buffers) \
            if target == "train" else \
            (plan.validation, plan.validation_oid, segment.validation_buffers)
        if buffers == 0:
            return 0.0, (), 0
        config = next(c for c in plan.configs if c.mst_key == mst)
        cache_key = f"{oid}:{segment.dist_key}"
        cached = plan.use_caching and cache_key in session.warm
        statement = evaluation_sql(table, plan.output.model, cached)
        params = dict(key=segment.dist_key, mst=mst, token=uuid.uuid4().hex,
                      cache_key=cache_key, num_buffers=buffers,
                      compile=config.compile_params, num_classes=plan.num_classes,
                      norm=plan.normalizing_const, threads=plan.threads,
                      use_gpus=plan.use_gpus, segment=index, use_caching=plan.use_caching)
        with session.connection().cursor() as cur:
            cur.execute(statement, params)
            row = cur.fetchone()
        if plan.use_caching:
            session.warm.add(cache_key)
        return evaluation_row(row)


def elapsed_seconds(cur: Any, out: tables.OutputTables) -> float:
    """Seconds since the job started training (it goes on counting across resumes)."""
    cur.execute(sql.SQL("SELECT extract(epoch FROM clock_timestamp() - start_training_time)"
                        " FROM {}").format(out.summary.identifier))
    return float(cur.fetchone()[0])


def append_metrics(cur: Any, out: tables.OutputTables, mst: int,
                   values: dict[str, Evaluation], elapsed: float) -> None:
    """Append one evaluation (``train``, maybe ``validation``) to a configuration's ``_info``."""
    train, validation = values["train"], values.get("validation")
    cur.execute(_APPEND_METRICS_SQL.format(out.info.identifier),
                dict(tl=train.loss, tm=train.metric, tma=list(train.metrics),
                     vl=validation.loss if validation else None,
                     vm=validation.metric if validation else None,
                     vma=list(validation.metrics) if validation else None,
                     el=elapsed, mst=mst, val=validation is not None))


_APPEND_METRICS_SQL = sql.SQL(
    # array_append keeps a NULL (no metric) in its place, where `|| NULL` would drop
    # it and misalign the arrays with metrics_iters; without a validation table
    # those arrays stay empty.
    "UPDATE {} SET "
    "training_loss = array_append(training_loss, %(tl)s::float8), "
    "training_metrics = array_append(training_metrics, %(tm)s::float8), "
    "validation_loss = CASE WHEN %(val)s THEN "
    " array_append(validation_loss, %(vl)s::float8) ELSE validation_loss END, "
    "validation_metrics = CASE WHEN %(val)s THEN "
    " array_append(validation_metrics, %(vm)s::float8) "
    " ELSE validation_metrics END, "
    "metrics_elapsed_time = array_append(metrics_elapsed_time, %(el)s::float8), "
    "training_loss_final = %(tl)s, training_metrics_final = %(tm)s, "
    "validation_loss_final = %(vl)s, validation_metrics_final = %(vm)s, "
    # Every metric: the latest values, and one more row of the 2-D history
    # (ARRAY[row] of a 1-D array is a 1×n array).
    "training_metrics_all = %(tma)s::float8[], "
    "training_metrics_all_history = array_cat(training_metrics_all_history,"
    " ARRAY[%(tma)s::float8[]]), "
    "validation_metrics_all = %(vma)s::float8[], "
    "validation_metrics_all_history = CASE WHEN %(val)s THEN "
    " array_cat(validation_metrics_all_history, ARRAY[%(vma)s::float8[]])"
    " ELSE validation_metrics_all_history END "
    "WHERE mst_key = %(mst)s")


def evaluation_sql(packed: Any, model: Any, cached: bool) -> sql.Composable:
    """The statement evaluating one model row on one segment's rows of a packed table.

    Args:
        packed: the packed table (``TableName``).
        model: a table with ``mst_key, model_arch, model_weights`` (``<out>``).
        cached: send no pixels (the segment's backend holds the partition).

    Parameters: ``key`` (the ``__dist_key__``), ``mst``, ``token``, ``cache_key``,
    ``num_buffers``, ``compile``, ``num_classes``, ``norm``, ``threads``,
    ``use_gpus``, ``segment``, ``use_caching``. Its one row reads with
    ``evaluation_row``.
    """
    return _EVALUATE_SQL.format(
        packed=packed.identifier, out=model.identifier,
        x=sql.SQL("NULL::bytea AS x, NULL::bytea AS y" if cached else "x, y"))


def evaluation_row(row: Sequence[Any]) -> tuple[float, tuple[float | None, ...], int]:
    """``(loss, metrics, images)`` from the row ``evaluation_sql`` returns."""
    loss, _, images, metrics = row
    values = tuple(None if v is None else float(v) for v in metrics or ())
    return float(loss), values, int(images)


def _classify(error: BaseException, session: _Session) -> BaseException:
    """Turn what a unit raised into a retryable or fatal gpdl error."""
    if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
        session.drop()  # connection lost or server restarted: reconnect, retry
        return UnitFailedError(f"connection lost: {str(error).strip()}", retryable=True)
    if isinstance(error, psycopg2.errors.QueryCanceled):
        return UnitFailedError("unit cancelled", retryable=True)
    if isinstance(error, psycopg2.Error):
        mapped = server_error(error)
        if isinstance(mapped, UnitFailedError) and CACHE_MISS in str(mapped):
            session.warm.clear()
            return UnitFailedError(CACHE_MISS, retryable=True)
        if isinstance(mapped, UsageError | FatalError):
            return mapped
        if error.pgcode in ("57P01", "57P02", "57P03"):  # admin shutdown, crash, starting
            session.drop()
            return UnitFailedError(f"server went away: {str(error).strip()}", retryable=True)
        try:
            raise_from_server(error)
        except GpdlError as converted:
            return UnitFailedError(str(converted), retryable=True)
    return error


# Calls of the unit functions stand in a select list over the segment's own rows
# (``WHERE __dist_key__ = k``), never in FROM: Greenplum runs a FROM-clause function
# on the coordinator, above the Gather Motion. The progress row lands on the same
# segment (distributed by the same key), so only the starting weights travel to it.
UNIT_CALL_SQL = sql.SQL(
    "SELECT p.__dist_key__, gpdl.train_unit(%(token)s, %(cache_key)s, p.buffer_id,"
    "  %(num_buffers)s, p.x, p.y, p.x_shape, w.model_arch, %(compile)s, %(fit)s,"
    "  w.model_weights, w.optimizer_state, %(num_classes)s, %(norm)s, %(seed)s, %(threads)s,"
    "  %(use_gpus)s, %(segment)s, %(use_caching)s) AS r"
    "  FROM (SELECT __dist_key__, buffer_id, {x}, x_shape FROM {packed}"
    "   WHERE __dist_key__ = %(key)s{rows}) p"
    "  CROSS JOIN ({weights}) w"
)
"""A unit's call of ``gpdl.train_unit`` (row ``r``) over one segment's packed rows
(``{rows}``: more conditions on them, or nothing) with the starting weights
``{weights}`` (``model_arch, model_weights, optimizer_state``)."""

_TRAIN_SQL = sql.SQL(
    "INSERT INTO {progress} (iteration, mst_key, segment, __dist_key__, hop, loss, metric,"
    " images, seconds, model_weights, optimizer_state, metrics_all)"
    " SELECT %(iteration)s, %(mst)s, %(segment)s, s.__dist_key__, %(hop)s, (r).loss,"
    " (r).metric, (r).images, (r).seconds, (r).weights, (r).optimizer_state, (r).metrics"
    " FROM ({call}) s"
)

# Where a unit's starting weights come from: <out> at the first hop of an iteration,
# else the row of the configuration's previous hop (found by its primary key).
_START_WEIGHTS = sql.SQL(
    "SELECT model_arch, model_weights, optimizer_state FROM {out} WHERE mst_key = %(mst)s")
_HOP_WEIGHTS = sql.SQL(
    "SELECT o.model_arch, h.model_weights, h.optimizer_state FROM {progress} h"
    " JOIN {out} o ON o.mst_key = h.mst_key WHERE h.iteration = %(iteration)s"
    " AND h.mst_key = %(mst)s AND h.__dist_key__ = %(previous_key)s")

_EVALUATE_SQL = sql.SQL(
    "SELECT (r).loss, (r).metric, (r).images, (r).metrics"
    " FROM (SELECT gpdl.evaluate_unit(%(token)s, %(cache_key)s, p.buffer_id, %(num_buffers)s,"
    "  p.x, p.y, p.x_shape, m.model_arch, %(compile)s, m.model_weights, %(num_classes)s,"
    "  %(norm)s, %(threads)s, %(use_gpus)s, %(segment)s, %(use_caching)s) AS r"
    "  FROM (SELECT buffer_id, {x}, x_shape FROM {packed} WHERE __dist_key__ = %(key)s) p"
    "  CROSS JOIN (SELECT model_arch, model_weights FROM {out} WHERE mst_key = %(mst)s) m) s"
)
