"""Predict with a trained model, on the segments that hold the images (runs in the client).

``predict`` is MADlib's ``madlib_keras_predict`` over an image table, in
MADlib's long format ``(id, class_name, class_value, prob, rank)``: one row per
image and kept class. The client only sends SQL: each segment runs
``gpdl.predict_rows`` over its own rows (PostgreSQL: one connection per virtual
segment, each taking a hash share of the rows; Greenplum: one statement that
runs on every segment). Rows go to a staging table; the output appears,
complete, in one transaction at the end.

``predict_byom`` is MADlib's ``madlib_keras_predict_byom`` ("bring your own
model"): the same, with an architecture and its weights from a model
architecture table (``load_keras_model``'s) and the class values given by the
caller. Both run one implementation; only where the model row and the class
values come from differs (a ``_ModelSource``).

``predict_image`` classifies one uploaded PNG/JPEG with one configuration.

Example::

    predict(dsn, "cifar_model", "test_images", "test_predictions", pred_type=3, mst_key=2)
    predict_byom(dsn, "model_arch_library", 3, "test_images", "byom_predictions",
                 class_values=["cat", "dog"], normalizing_const=255.0)
    predict_image(dsn, "cifar_model", 2, open("cat.png", "rb").read(), k=3)
"""

from __future__ import annotations

import json
import numbers
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import (
    TableName,
    check_writable,
    columns_of,
    execute_async,
    session,
    table_exists,
    table_name,
)
from gpdl_backend.errors import UsageError
from gpdl_backend.server.inference import check_fits

__all__ = ["PredictResult", "parse_pred_type", "predict", "predict_byom", "predict_image"]

STAGING_PREFIX = "gpdl_predicting_"
_IF_EXISTS = ("fail", "replace")


@dataclass(frozen=True)
class PredictResult:
    """What ``predict`` wrote."""

    table: str
    images: int
    rows: int
    mst_key: int | None
    seconds: float
    model_id: int | None = None  # predict_byom: the architecture table's row

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def parse_pred_type(pred_type: str | int | float) -> tuple[str, int | None, float | None]:
    """MADlib's ``pred_type`` as ``(kind, k, threshold)`` for ``gpdl.predict_rows``.

    ``"response"``: the top class; ``"prob"``: every class; an integer ``k``:
    the ``k`` best classes; a float in [0, 1]: the classes whose probability is
    at least that. Strings holding a number count as that number (``"3"``,
    ``"0.2"``), as in MADlib's SQL.

    Raises:
        UsageError: anything else.

    Example:
        >>> parse_pred_type(3), parse_pred_type("0.25")
        (('top_k', 3, None), ('threshold', None, 0.25))
    """
    value: Any = pred_type
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("response", "prob"):
            return text, None, None
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 1:
            raise UsageError(f"pred_type k must be at least 1, not {value}")
        return "top_k", int(value), None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not 0.0 <= float(value) <= 1.0:
            raise UsageError(f"pred_type threshold must be in [0, 1], not {value}")
        return "threshold", None, float(value)
    raise UsageError("pred_type must be 'response', 'prob', an integer k (top k) or a "
                     f"probability threshold in [0, 1], not {pred_type!r}")


def predict(
    dsn: str,
    model_table: str,
    test_table: str,
    output_table: str,
    pred_type: str | int | float = "response",
    mst_key: int | None = None,
    id_col: str = "fullpaths",
    if_exists: str = "fail",
    num_segments: int | None = None,
) -> PredictResult:
    """Predict every image of ``test_table`` into ``output_table`` (long format).

    Output columns: ``id`` (from ``id_col``), ``class_name`` (the class label,
    from the model summary's ``class_values``), ``class_value`` (its class
    index), ``prob`` and ``rank`` (1 = most probable).

    Args:
        dsn: where the database is.
        model_table: trained model table (``mst_key, model_weights, model_arch``)
            with its ``_summary`` (``class_values, normalizing_const``).
        test_table: image table (``fullpaths, names, y, dims, x``) whose images
            have the model's input shape.
        output_table: the table to create.
        pred_type: ``"response"`` (default, top class), ``"prob"`` (every
            class), an integer k (top k) or a float threshold.
        mst_key: the configuration to use. Defaults to None: the table must
            then hold exactly one.
        id_col: the test table's array column naming each image. Defaults to
            ``"fullpaths"``.
        if_exists: ``"fail"`` (default) or ``"replace"``.
        num_segments: PostgreSQL: concurrent sessions. Defaults to the
            installed virtual segment count.

    Returns:
        A ``PredictResult``.

    Raises:
        UsageError: bad names or options, missing tables or columns, an
            unknown ``mst_key``, images whose shape differs from the model's
            input, or an existing output with ``if_exists='fail'``. Nothing is
            left behind.

    Example:
        >>> predict(dsn, "model", "test_images", "predictions", pred_type=3, mst_key=1)
    """
    model = table_name(model_table)

    def trained_model(cur) -> _ModelSource:
        key = _check_trained_model(cur, model, mst_key)
        return _trained_source(model, key)

    return _predict_with(dsn, trained_model, test_table, output_table, pred_type, id_col,
                         if_exists, num_segments)


def predict_byom(
    dsn: str,
    model_arch_table: str,
    model_id: int,
    test_table: str,
    output_table: str,
    pred_type: str | int | float = "response",
    class_values: Sequence[str] | None = None,
    normalizing_const: float | None = 1.0,
    id_col: str = "fullpaths",
    if_exists: str = "fail",
    num_segments: int | None = None,
) -> PredictResult:
    """Predict with an architecture and its weights from a model architecture table.

    MADlib's ``madlib_keras_predict_byom``: the model is row ``model_id`` of a
    table ``load_keras_model`` writes (its ``model_arch`` and
    ``model_weights``); the output is ``predict``'s, computed the same way.

    Args:
        dsn: where the database is.
        model_arch_table: the model architecture table.
        model_id: the row holding the architecture and its weights.
        test_table: image table whose images have the model's input shape.
        output_table: the table to create.
        pred_type: as for ``predict``. Defaults to ``"response"``.
        class_values: the class names, by the model's output unit. Defaults
            to None: ``'0'`` .. ``'n-1'`` for n output units (as MADlib).
        normalizing_const: pixels are divided by it before prediction.
            Defaults to 1.0 (None means 1.0 too).
        id_col: the test table's array column naming each image. Defaults to
            ``"fullpaths"``.
        if_exists: ``"fail"`` (default) or ``"replace"``.
        num_segments: PostgreSQL: concurrent sessions. Defaults to the
            installed virtual segment count.

    Returns:
        A ``PredictResult`` (``model_id`` set, ``mst_key`` None).

    Raises:
        UsageError: bad names or options, a missing table or ``model_id``, a
            row without weights, class values whose count is not the model's
            output units, images whose shape differs from the model's input,
            or an existing output with ``if_exists='fail'``; all before any
            table exists.

    Example:
        >>> predict_byom(dsn, "model_arch_library", 1, "test_images", "predictions",
        ...              "prob", class_values=["cat", "dog"], normalizing_const=255.0)
    """
    arch = table_name(model_arch_table)
    if model_id is None or isinstance(model_id, bool) or not isinstance(model_id, int):
        raise UsageError(f"model_id must be an integer, not {model_id!r}")
    if class_values is not None and (isinstance(class_values, str) or not all(
            isinstance(value, str) for value in class_values)):
        raise UsageError(f"class_values must be a list of texts, not {class_values!r}")
    scale = 1.0 if normalizing_const is None else normalizing_const
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale > 0:
        raise UsageError(f"normalizing_const must be a positive number, not "
                         f"{normalizing_const!r}")
    test = table_name(test_table)

    def own_model(cur) -> _ModelSource:
        _require(cur, arch, "model architecture table", ("model_id", "model_arch",
                                                         "model_weights"))
        cur.execute(sql.SQL("SELECT model_arch::text, model_weights IS NOT NULL FROM {} "
                            "WHERE model_id = %s").format(arch.identifier), (model_id,))
        row = cur.fetchone()
        if row is None:
            raise UsageError(f"model_id {model_id} is not in {arch}")
        if not row[1]:
            raise UsageError(f"model_id {model_id} of {arch} has no model_weights; load "
                             "them with gpdl.load_keras_model(..., model_weights => ...)")
        cur.execute("SELECT gpdl.model_info(%s::json)", (row[0],))  # Keras builds it
        info = cur.fetchone()[0]
        info = json.loads(info) if isinstance(info, str) else info
        outputs = info["num_classes"]
        classes = (list(class_values) if class_values is not None
                   else [str(c) for c in range(outputs or 0)])
        cur.execute(sql.SQL("SELECT dims[2:4] FROM {} WHERE dims[1] > 0 LIMIT 1").format(
            test.identifier))
        images = cur.fetchone()
        check_fits(info["input_shape"], None if images is None else images[0], outputs,
                   len(classes))
        return _byom_source(arch, model_id, classes, float(scale))

    return _predict_with(dsn, own_model, test_table, output_table, pred_type, id_col,
                         if_exists, num_segments)


def predict_image(
    dsn: str, model_table: str, mst_key: int | None, image: bytes, k: int = 3
) -> list[dict]:
    """Top-``k`` classes of one PNG or JPEG image.

    The image is decoded inside the server to the model's colour mode and
    resized to its input height and width, then normalized like the training
    data (the summary's ``normalizing_const``).

    Args:
        dsn: where the database is.
        model_table: trained model table with its ``_summary``.
        mst_key: the configuration; None when the table holds exactly one.
        image: the file's bytes.
        k: classes to return. Defaults to 3.

    Returns:
        ``[{"class_name", "class_value", "prob", "rank"}, ...]``, best first.

    Raises:
        UsageError: a bad name or ``k``, a missing table or configuration.
        ImageDecodeError: the bytes are not a readable image.

    Example:
        >>> predict_image(dsn, "model", 1, png_bytes, k=2)
        [{'class_name': 'cat', 'class_value': 3, 'prob': 0.91, 'rank': 1}, ...]
    """
    table = table_name(model_table)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"k must be a positive integer, not {k!r}")
    if not isinstance(image, bytes | bytearray | memoryview):
        raise UsageError(f"image must be bytes, not {type(image).__name__}")
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT class_name, class_value, prob, rank "
                    "FROM gpdl.predict_image(%s, %s, %s, %s) ORDER BY rank",
                    (str(table), mst_key, psycopg2.Binary(bytes(image)), k))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return rows


# ------------------------------------------------------------------------ internals


def _require(cur, table: TableName, what: str, columns: tuple[str, ...]) -> dict[str, str]:
    if not table_exists(cur, table):
        raise UsageError(f"{what} {table} does not exist")
    present = columns_of(cur, table)
    missing = [c for c in columns if c not in present]
    if missing:
        raise UsageError(f"{table} is not a {what}: missing columns {', '.join(missing)}")
    return present


def _check_test(cur, test: TableName, id_col: str) -> None:
    test_columns = _require(cur, test, "image table", ("x", "dims"))
    if test_columns.get(id_col) != "A":
        raise UsageError(f"id_col {id_col!r} must be an array column of {test} "
                         "(one id per image, like fullpaths)")


def _check_trained_model(cur, model: TableName, mst_key: int | None) -> int | None:
    """Check a trained model table; the configuration key to use (None: its only row)."""
    present = _require(cur, model, "model table", ("model_weights", "model_arch"))
    _require(cur, model.with_suffix("_summary"), "model summary table",
             ("class_values", "normalizing_const"))
    if mst_key is not None and (isinstance(mst_key, bool) or not isinstance(mst_key, int)):
        raise UsageError(f"mst_key must be an integer, not {mst_key!r}")
    keys: list[int | None] = [None]
    if "mst_key" in present:
        cur.execute(sql.SQL("SELECT mst_key FROM {} ORDER BY 1").format(model.identifier))
        keys = [row[0] for row in cur.fetchall()]
    elif mst_key is not None:
        raise UsageError(f"{model} has no mst_key column; leave mst_key unset")
    if mst_key is not None:
        if mst_key not in keys:
            raise UsageError(f"mst_key {mst_key} is not in {model} (it has {keys})")
        return mst_key
    if len(keys) != 1:
        raise UsageError(f"{model} holds {len(keys)} configurations ({keys}); pass mst_key")
    return keys[0]


@dataclass(frozen=True)
class _ModelSource:
    """Where ``gpdl.predict_rows`` reads the model, as two one-row subqueries.

    ``rows``: ``(model_arch, model_weights)``; ``classes``: ``(class_values
    text[], normalizing_const real)``.
    """

    rows: sql.Composable
    classes: sql.Composable
    mst_key: Any = None
    model_id: int | None = None


def _trained_source(model: TableName, key: Any) -> _ModelSource:
    """A configuration of a trained model table (``key``: an mst_key, a Param, or None)."""
    where_key = (sql.SQL(" WHERE mst_key = {}").format(sql.Literal(key)) if key is not None
                 else sql.SQL(""))
    return _ModelSource(
        sql.SQL("SELECT model_arch, model_weights FROM {}{}").format(model.identifier,
                                                                     where_key),
        sql.SQL("SELECT class_values::text[] AS class_values, normalizing_const::real AS "
                "normalizing_const FROM {} LIMIT 1").format(
            model.with_suffix("_summary").identifier),
        mst_key=key)


def _byom_source(arch: TableName, model_id: int, class_values: list[str],
                 normalizing_const: float) -> _ModelSource:
    """Row ``model_id`` of a model architecture table, with the caller's classes."""
    return _ModelSource(
        sql.SQL("SELECT model_arch, model_weights FROM {} WHERE model_id = {}").format(
            arch.identifier, sql.Literal(model_id)),
        sql.SQL("SELECT {}::text[] AS class_values, {}::real AS normalizing_const").format(
            sql.Literal(list(class_values)), sql.Literal(normalizing_const)),
        model_id=model_id)


def _predict_with(dsn: str, resolve: Callable[[Any], _ModelSource], test_table: str,
                  output_table: str, pred_type: str | int | float, id_col: str,
                  if_exists: str, num_segments: int | None) -> PredictResult:
    """The one implementation of ``predict`` and ``predict_byom``.

    Checks the options, the test table, the output and (``resolve``) the
    model before any table exists; then predicts into a staging table, one
    statement per segment, and publishes it.
    """
    kind, k, threshold = parse_pred_type(pred_type)
    test = table_name(test_table)
    target = table_name(output_table)
    if if_exists not in _IF_EXISTS:
        raise UsageError(f"if_exists must be one of {_IF_EXISTS}, not {if_exists!r}")
    if not isinstance(id_col, str) or not id_col:
        raise UsageError(f"id_col must be a column name, not {id_col!r}")
    started = time.monotonic()
    with session(dsn) as conn:
        engine = engines.probe(conn, num_segments)
        with conn.cursor() as cur:
            _check_test(cur, test, id_col)
            check_writable(cur, target)
            if table_exists(cur, target) and if_exists == "fail":
                raise UsageError(f"table {target} already exists; pass if_exists='replace'")
            source = resolve(cur)
        conn.commit()
        staging = TableName(target.schema, f"{STAGING_PREFIX}{secrets.token_hex(6)}")
        _create_staging(conn, engine, staging, target)
        try:
            statements = [
                _insert_statement(staging, source, test, id_col, kind, k, threshold, share)
                for share in engine.row_shares(
                    sql.SQL("t.{}[1]::text").format(sql.Identifier(id_col)))
            ]
            _run_all(dsn, statements)
            images, rows = _publish(conn, staging, target, if_exists)
        except BaseException:
            _drop_staging(conn, staging)
            raise
    return PredictResult(str(target), images, rows, source.mst_key,
                         time.monotonic() - started, source.model_id)


def _create_staging(conn, engine: engines.Engine, staging: TableName, target: TableName) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "CREATE TABLE {} (id text, class_name text, class_value integer, "
            "prob double precision, rank integer){}"
        ).format(staging.identifier, engine.distributed_randomly()))
        cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
            staging.identifier,
            sql.Literal(f"gpdl: INCOMPLETE prediction into {target}; safe to drop")))
    conn.commit()


def _predict_statement(staging: TableName, model: TableName, test: TableName, id_col: str,
                       key: Any, kind: str, k: int | None, threshold: float | None,
                       share: sql.Composable) -> sql.Composable:
    """``predict``'s INSERT for one share: configuration ``key`` of a trained model table."""
    return _insert_statement(staging, _trained_source(model, key), test, id_col, kind, k,
                             threshold, share)


def _insert_statement(staging: TableName, source: _ModelSource, test: TableName, id_col: str,
                      kind: str, k: int | None, threshold: float | None,
                      share: sql.Composable) -> sql.Composable:
    """One INSERT predicting the test rows of one share.

    ``gpdl.predict_rows`` stands in the select list over the test rows, so
    Greenplum runs it on the segments holding them (in FROM it would run on
    the coordinator, above the Gather Motion); only the model row travels.
    """
    return sql.SQL(
        "INSERT INTO {staging} (id, class_name, class_value, prob, rank) "
        "SELECT (p).id, (p).class_name, (p).class_value, (p).prob, (p).rank FROM ("
        "SELECT gpdl.predict_rows(t.{id}::text[], t.x, t.dims, m.model_arch, "
        "m.model_weights, NULL, s.normalizing_const, s.class_values, "
        "{kind}, {k}::integer, {threshold}::double precision) AS p FROM {test} t, "
        "({rows}) m, ({classes}) s WHERE {share}) q"
    ).format(staging=staging.identifier, test=test.identifier, rows=source.rows,
             classes=source.classes, id=sql.Identifier(id_col), kind=sql.Literal(kind),
             k=sql.Literal(k), threshold=sql.Literal(threshold), share=share)


def _run_all(dsn: str, statements: list[sql.Composable]) -> None:
    """Run the statements concurrently, one connection each; the first failure cancels the rest."""
    connections: list = []
    with ThreadPoolExecutor(max_workers=len(statements)) as pool:
        futures = [pool.submit(execute_async, dsn, s, None, connections.append)
                   for s in statements]
        first_error: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as error:
                if first_error is None:
                    first_error = error
                    for conn in list(connections):
                        if not conn.closed:
                            conn.cancel()
    if first_error is not None:
        raise first_error


def _publish(conn, staging: TableName, target: TableName, if_exists: str) -> tuple[int, int]:
    """Make the staging rows the output table, in one transaction.

    With ``if_exists='fail'`` a table created meanwhile makes the rename fail.
    """
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(DISTINCT id), count(*) FROM {}").format(
            staging.identifier))
        images, rows = cur.fetchone()
        if if_exists == "replace":
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target.identifier))
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            staging.identifier, sql.Identifier(target.name)))
        cur.execute(sql.SQL("COMMENT ON TABLE {} IS NULL").format(target.identifier))
    conn.commit()
    return int(images), int(rows)


def _drop_staging(conn, staging: TableName) -> None:
    try:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging.identifier))
        conn.commit()
    except psycopg2.Error:
        pass  # the connection itself is gone; the staging table says it is incomplete
