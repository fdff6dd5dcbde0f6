"""Evaluate a trained model on a packed table, in parallel over the segments (runs in the client).

``evaluate`` is MADlib's ``madlib_keras_evaluate``: the loss and metrics of one
configuration of a ``fit_multiple_model`` output on a packed table
(``training_preprocessor_dl`` / ``validation_preprocessor_dl`` output), written
to a one-row table ``(loss, metric, metrics_type, loss_type, metrics_all)``.
The client only sends SQL: each segment runs the trainer's own
``gpdl.evaluate_unit`` over its rows (``WHERE __dist_key__ = k``) on a session
of its own, as the training driver's evaluation does, and the segments' means
are weighted by their image counts, so the result is the mean over every image
(what the job's last validation row shows for the same weights and table).

Example::

    evaluate(dsn, "cifar_model", "cifar_test_packed", "cifar_eval", mst_key=2)
"""

from __future__ import annotations

import contextlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import (
    TableName,
    check_writable,
    columns_of,
    connect,
    raise_from_server,
    session,
    table_exists,
    table_name,
)
from gpdl_backend.errors import UsageError
from gpdl_backend.mop.driver import Evaluation, combine, evaluation_row, evaluation_sql
from gpdl_backend.preprocess import read_summary

__all__ = ["OUTPUT_COLUMNS", "EvaluateResult", "evaluate"]

OUTPUT_COLUMNS = (
    ("loss", "double precision"), ("metric", "double precision"),
    ("metrics_type", "text[]"), ("loss_type", "text"),
    # gpdl's own: every compiled metric, in metrics_type order (metric is the first).
    ("metrics_all", "double precision[]"),
)
"""The output table's columns: MADlib's four, then gpdl's ``metrics_all``."""

_PACKED_COLUMNS = ("__dist_key__", "buffer_id", "x", "y", "x_shape")


@dataclass(frozen=True)
class EvaluateResult:
    """What ``evaluate`` measured and wrote (``table``)."""

    table: str
    mst_key: int
    loss: float
    metric: float | None
    metrics_type: list[str]
    metrics_all: list[float | None]
    loss_type: str
    images: int
    seconds: float


@dataclass(frozen=True)
class _Plan:
    """Everything the segments' statements need, found before anything runs."""

    mst_key: int
    compile_params: str
    metrics_type: list[str]
    loss_type: str
    num_classes: int
    normalizing_const: float
    test_oid: int
    buffers: dict[int, int]  # __dist_key__ -> rows of the packed table


def evaluate(
    dsn: str,
    model_table: str,
    test_table: str,
    output_table: str,
    use_gpus: bool = False,
    mst_key: int | None = None,
) -> EvaluateResult:
    """Loss and metrics of a trained configuration on a packed table, into ``output_table``.

    Args:
        dsn: where the database is.
        model_table: a ``fit_multiple_model`` output (``mst_key, model_weights,
            model_arch``) with its ``_summary`` (class values) and ``_info``
            (each configuration's compile parameters: loss and metrics).
        test_table: a packed table (``training_preprocessor_dl`` or
            ``validation_preprocessor_dl``) with the model's class values.
        output_table: the one-row table to create: ``loss``, ``metric`` (the
            first compiled metric), ``metrics_type``, ``loss_type`` and
            ``metrics_all`` (every metric, in ``metrics_type`` order).
        use_gpus: one GPU per segment; refused where a host has none.
            Defaults to False.
        mst_key: the configuration. Defaults to None: the table must then hold
            exactly one.

    Returns:
        An ``EvaluateResult``.

    Raises:
        UsageError: a bad name or option, a missing table or column, a packed
            table with other class values or image shape than the model's, an
            unknown ``mst_key``, or an existing output table. Nothing is created.

    Example:
        >>> evaluate(dsn, "models", "test_packed", "models_eval", mst_key=1).loss
        0.4127
    """
    model, test, target = table_name(model_table), table_name(test_table), \
        table_name(output_table)
    if not isinstance(use_gpus, bool):
        raise UsageError(f"use_gpus must be true or false, not {use_gpus!r}")
    if mst_key is not None and (isinstance(mst_key, bool) or not isinstance(mst_key, int)):
        raise UsageError(f"mst_key must be an integer, not {mst_key!r}")
    started = time.monotonic()
    with session(dsn) as conn:
        with conn.cursor() as cur:
            test_summary = read_summary(cur, test) if table_exists(cur, test) else None
        engine = engines.probe(conn, len((test_summary or {}).get("dist_keys") or [1]))
        with conn.cursor() as cur:
            plan = _plan(cur, model, test, target, mst_key, test_summary)
            threads = engines.threads_per_segment(cur, engine)
    evaluation = _run_segments(dsn, plan, model, test, target, threads, use_gpus)
    _write(dsn, engine, target, plan, evaluation)
    return EvaluateResult(str(target), plan.mst_key, evaluation.loss, evaluation.metric,
                          plan.metrics_type, list(evaluation.metrics), plan.loss_type,
                          evaluation.images, time.monotonic() - started)


# ------------------------------------------------------------------------ internals
def _require(cur, table: TableName, what: str, columns: tuple[str, ...], hint: str) -> None:
    if not table_exists(cur, table):
        raise UsageError(f"{what} {table} does not exist{hint}")
    missing = [c for c in columns if c not in columns_of(cur, table)]
    if missing:
        raise UsageError(f"{table} is not a {what}: missing columns {', '.join(missing)}")


def _plan(cur, model: TableName, test: TableName, target: TableName, mst_key: int | None,
          test_summary: dict | None) -> _Plan:
    """Check the tables and options; what the segments' statements need.

    Raises:
        UsageError: as ``evaluate``.
    """
    from gpdl_backend.selection import parse_compile_params

    trained = " (the output of madlib_keras_fit_multiple_model)"
    _require(cur, model, "model table", ("mst_key", "model_weights", "model_arch"), "")
    summary, info = model.with_suffix("_summary"), model.with_suffix("_info")
    _require(cur, summary, "model summary table", ("class_values", "num_classes"), trained)
    _require(cur, info, "model info table", ("mst_key", "compile_params"), trained)
    if test_summary is None:
        raise UsageError(f"packed table {test} does not exist")
    _require(cur, test, "packed table", _PACKED_COLUMNS, "")
    columns = columns_of(cur, summary)
    cur.execute(sql.SQL("SELECT class_values, num_classes, {} FROM {} LIMIT 1").format(
        sql.Identifier("image_shape") if "image_shape" in columns else sql.SQL("NULL"),
        summary.identifier))
    class_values, num_classes, image_shape = cur.fetchone()
    if list(test_summary["class_values"] or []) != list(class_values or []):
        raise UsageError(f"{test} has other class values than {model}: "
                         f"{list(test_summary['class_values'] or [])} against "
                         f"{list(class_values or [])}; pack it with "
                         f"validation_preprocessor_dl against the model's training table")
    if image_shape and list(test_summary["image_shape"]) != list(image_shape):
        raise UsageError(f"{test} holds images of shape {list(test_summary['image_shape'])}, "
                         f"{model} was trained on {list(image_shape)}")
    cur.execute(sql.SQL("SELECT mst_key FROM {} ORDER BY 1").format(model.identifier))
    keys = [row[0] for row in cur.fetchall()]
    if mst_key is None:
        if len(keys) != 1:
            raise UsageError(f"{model} holds {len(keys)} configurations ({keys}); "
                             "pass mst_key")
        mst_key = keys[0]
    elif mst_key not in keys:
        raise UsageError(f"mst_key {mst_key} is not in {model} (it has {keys})")
    cur.execute(sql.SQL(
        "SELECT m.model_weights IS NOT NULL, i.compile_params FROM {} m "
        "LEFT JOIN {} i ON i.mst_key = m.mst_key WHERE m.mst_key = %s").format(
        model.identifier, info.identifier), (mst_key,))
    has_weights, compile_params = cur.fetchone()
    if not has_weights:
        raise UsageError(f"mst_key {mst_key} of {model} holds no weights")
    if compile_params is None:
        raise UsageError(f"{info} has no compile_params for mst_key {mst_key}")
    params = parse_compile_params(compile_params)
    check_writable(cur, target)
    if table_exists(cur, target):
        raise UsageError(f"table {target} already exists; drop it or name another output")
    cur.execute(sql.SQL("SELECT __dist_key__, count(*) FROM {} GROUP BY 1 ORDER BY 1").format(
        test.identifier))
    buffers = dict(cur.fetchall())
    if not buffers:
        raise UsageError(f"packed table {test} holds no rows")
    cur.execute("SELECT %s::regclass::oid", (test.identifier.as_string(cur),))
    return _Plan(mst_key, compile_params, list(params.metrics), params.loss, int(num_classes),
                 float(test_summary["normalizing_const"]), cur.fetchone()[0], buffers)


def _run_segments(dsn: str, plan: _Plan, model: TableName, test: TableName,
                  target: TableName, threads: int, use_gpus: bool) -> Evaluation:
    """One statement per ``__dist_key__``, each on its own session, all at once.

    The first failure cancels the others; a gpdl error from the server
    (``use_gpus`` on a host without a GPU) comes out as itself.
    """
    connections: list[Any] = []
    statement = evaluation_sql(test, model, cached=False)

    def one(index: int, key: int) -> tuple[float, tuple[float | None, ...], int]:
        conn = connect(dsn, f"gpdl:evaluate:{target}:seg{index}"[:63])
        connections.append(conn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, dict(
                    key=key, mst=plan.mst_key, token=uuid.uuid4().hex,
                    cache_key=f"{plan.test_oid}:{key}", num_buffers=plan.buffers[key],
                    compile=plan.compile_params, num_classes=plan.num_classes,
                    norm=plan.normalizing_const, threads=threads, use_gpus=use_gpus,
                    segment=index, use_caching=False))
                return evaluation_row(cur.fetchone())
        except psycopg2.Error as error:
            raise_from_server(error)
        finally:
            conn.close()

    keys = sorted(plan.buffers)
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        futures = [pool.submit(one, index, key) for index, key in enumerate(keys)]
        parts, first_error = [], None
        for future in futures:
            try:
                parts.append(future.result())
            except BaseException as error:
                if first_error is None:
                    first_error = error
                    for conn in list(connections):
                        if not conn.closed:
                            with contextlib.suppress(psycopg2.Error):
                                conn.cancel()
    if first_error is not None:
        raise first_error
    return combine(parts)


def _write(dsn: str, engine: engines.Engine, target: TableName, plan: _Plan,
           evaluation: Evaluation) -> None:
    """Create the output table with its one row, in one transaction."""
    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
                                 for name, kind in OUTPUT_COLUMNS)
    with session(dsn) as conn, conn.cursor() as cur:
        try:
            cur.execute(sql.SQL("CREATE TABLE {} ({}){}").format(
                target.identifier, columns, engine.distributed_randomly()))
        except psycopg2.errors.DuplicateTable:
            raise UsageError(f"table {target} already exists; drop it or name another "
                             "output") from None
        cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES (%s, %s, %s, %s, %s::float8[])").format(
            target.identifier, sql.SQL(", ").join(
                sql.Identifier(name) for name, _ in OUTPUT_COLUMNS)),
            (evaluation.loss, evaluation.metric, plan.metrics_type, plan.loss_type,
             list(evaluation.metrics)))
