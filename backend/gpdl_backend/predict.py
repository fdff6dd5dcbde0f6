"""Predict with a trained model, on the segments that hold the images (runs in the client).

``predict`` is MADlib's ``madlib_keras_predict`` over an image table, in
MADlib's long format ``(id, class_name, class_value, prob, rank)``: one row per
image and kept class. The client only sends SQL: each segment runs
``gpdl.predict_rows`` over its own rows (PostgreSQL: one connection per virtual
segment, each taking a hash share of the rows; Greenplum: one statement that
runs on every segment). Rows go to a staging table; the output appears,
complete, in one transaction at the end.

``predict_image`` classifies one uploaded PNG/JPEG with one configuration.

Example::

    predict(dsn, "cifar_model", "test_images", "test_predictions", pred_type=3, mst_key=2)
    predict_image(dsn, "cifar_model", 2, open("cat.png", "rb").read(), k=3)
"""

from __future__ import annotations

import numbers
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import TableName, execute_async, session, table_exists, table_name
from gpdl_backend.errors import UsageError

__all__ = ["PredictResult", "parse_pred_type", "predict", "predict_image"]

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
    kind, k, threshold = parse_pred_type(pred_type)
    model = table_name(model_table)
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
            key = _check_inputs(cur, model, test, id_col, mst_key)
            if table_exists(cur, target) and if_exists == "fail":
                raise UsageError(f"table {target} already exists; pass if_exists='replace'")
        conn.commit()
        staging = TableName(target.schema, f"{STAGING_PREFIX}{secrets.token_hex(6)}")
        _create_staging(conn, engine, staging, target)
        try:
            statements = [
                _predict_statement(staging, model, test, id_col, key, kind, k, threshold, share)
                for share in engine.row_shares(
                    sql.SQL("t.{}[1]::text").format(sql.Identifier(id_col)))
            ]
            _run_all(dsn, statements)
            images, rows = _publish(conn, staging, target, if_exists)
        except BaseException:
            _drop_staging(conn, staging)
            raise
    return PredictResult(str(target), images, rows, key, time.monotonic() - started)


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


def _columns(cur, table: TableName) -> dict[str, str]:
    """Column name -> type category (``A`` for arrays) of a table."""
    cur.execute("SELECT a.attname, t.typcategory FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                (table.identifier.as_string(cur),))
    return dict(cur.fetchall())


def _require(cur, table: TableName, what: str, columns: tuple[str, ...]) -> dict[str, str]:
    if not table_exists(cur, table):
        raise UsageError(f"{what} {table} does not exist")
    present = _columns(cur, table)
    missing = [c for c in columns if c not in present]
    if missing:
        raise UsageError(f"{table} is not a {what}: missing columns {', '.join(missing)}")
    return present


def _check_inputs(cur, model: TableName, test: TableName, id_col: str,
                  mst_key: int | None) -> int | None:
    """Check the tables; the configuration key to use (None: the table's only row)."""
    present = _require(cur, model, "model table", ("model_weights", "model_arch"))
    _require(cur, model.with_suffix("_summary"), "model summary table",
             ("class_values", "normalizing_const"))
    test_columns = _require(cur, test, "image table", ("x", "dims"))
    if test_columns.get(id_col) != "A":
        raise UsageError(f"id_col {id_col!r} must be an array column of {test} "
                         "(one id per image, like fullpaths)")
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
                       key: int | None, kind: str, k: int | None, threshold: float | None,
                       share: sql.Composable) -> sql.Composable:
    """One INSERT predicting the test rows of one share.

    ``gpdl.predict_rows`` stands in the select list over the test rows, so
    Greenplum runs it on the segments holding them (in FROM it would run on
    the coordinator, above the Gather Motion); only the model row travels.
    """
    where_key = (sql.SQL(" WHERE mst_key = {}").format(sql.Literal(key)) if key is not None
                 else sql.SQL(""))
    return sql.SQL(
        "INSERT INTO {staging} (id, class_name, class_value, prob, rank) "
        "SELECT (p).id, (p).class_name, (p).class_value, (p).prob, (p).rank FROM ("
        "SELECT gpdl.predict_rows(t.{id}::text[], t.x, t.dims, m.model_arch, "
        "m.model_weights, NULL, s.normalizing_const::real, s.class_values::text[], "
        "{kind}, {k}::integer, {threshold}::double precision) AS p FROM {test} t, "
        "(SELECT model_arch, model_weights FROM {model}{where_key}) m, "
        "(SELECT class_values, normalizing_const FROM {summary} LIMIT 1) s "
        "WHERE {share}) q"
    ).format(staging=staging.identifier, test=test.identifier, model=model.identifier,
             where_key=where_key, summary=model.with_suffix("_summary").identifier,
             id=sql.Identifier(id_col), kind=sql.Literal(kind), k=sql.Literal(k),
             threshold=sql.Literal(threshold), share=share)


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
