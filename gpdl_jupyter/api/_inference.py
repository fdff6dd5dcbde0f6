"""Inference and monitoring: ``predict``, ``evaluate``, ``predict_image``, ``gpu_usage``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpdl_backend.errors import UsageError
from gpdl_jupyter.api._common import check_tables, resolve, run_call, run_rows
from gpdl_jupyter.results import Table
from gpdl_jupyter.sqltext import ShownSql, function_call

if TYPE_CHECKING:
    from gpdl_backend.evaluate import EvaluateResult
    from gpdl_backend.predict import PredictResult


def predict(
    model_table: str,
    test_table: str,
    output_table: str,
    *,
    pred_type: str | int | float = "response",
    mst_key: int | None = None,
    id_col: str = "fullpaths",
    if_exists: str = "fail",
    dsn: str | None = None,
    show_sql: bool = False,
) -> PredictResult | ShownSql:
    """Predict every image of an image table into a table (MADlib's long format).

    Args:
        model_table: trained model table (from :func:`fit`).
        test_table: image table (from :func:`load_images`).
        output_table: table to create: ``id, class_name, class_value, prob, rank``.
        pred_type: ``"response"`` (top class), ``"prob"`` (all), an integer k
            (top k) or a probability threshold. Defaults to ``"response"``.
        mst_key: the configuration. Defaults to None (the table's only one).
        id_col: the image table's array column naming images. Defaults to ``"fullpaths"``.
        if_exists: ``"fail"`` or ``"replace"``. Defaults to ``"fail"``.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``PredictResult`` (table, images, rows, seconds).

    Example:
        >>> predict("models", "test_images", "predictions", pred_type=3, mst_key=2)
    """
    check_tables(model_table, test_table, output_table)
    url = resolve(dsn, show_sql)
    call = function_call("madlib_keras_predict", model_table, test_table, id_col, "x",
                         output_table, str(pred_type), False, mst_key, if_exists)
    if show_sql:
        return call.shown()
    from gpdl_backend.predict import PredictResult

    return PredictResult(**run_call(url, call))


def evaluate(
    model_table: str,
    test_table: str,
    output_table: str,
    *,
    mst_key: int | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> EvaluateResult | ShownSql:
    """Loss and metrics of a trained configuration on a packed table, over all segments.

    One call of ``gpdl.madlib_keras_evaluate``; the output table has MADlib's
    columns (``loss, metric, metrics_type, loss_type``) and ``metrics_all``.

    Args:
        model_table: trained model table (from :func:`fit`).
        test_table: packed table (from :func:`preprocess`) with the model's classes.
        output_table: table to create.
        mst_key: the configuration. Defaults to None (the table's only one).
        dsn: the database. Defaults to None.
        show_sql: return the statement instead of running it. Defaults to False.

    Example:
        >>> evaluate("models", "test_packed", "models_eval", mst_key=2).metric
        0.83
    """
    check_tables(model_table, test_table, output_table)
    call = function_call("madlib_keras_evaluate", model_table, test_table, output_table, False,
                         mst_key)
    if show_sql:
        return call.shown()
    from gpdl_backend.evaluate import EvaluateResult

    return EvaluateResult(**run_call(resolve(dsn, show_sql), call))


def _image_bytes(image: Any) -> bytes:
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise UsageError(f"no image file {str(path)!r}")
        return path.read_bytes()
    raise UsageError(f"image must be bytes or a file path, not {type(image).__name__}")


def predict_image(
    model_table: str,
    image: bytes | str | os.PathLike[str] | None,
    *,
    mst_key: int | None = None,
    k: int = 3,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Table | ShownSql:
    """The top-``k`` classes of one PNG or JPEG image, computed in the database.

    Args:
        model_table: trained model table.
        image: the image's bytes or a file path (None only with ``show_sql``).
        mst_key: the configuration. Defaults to None (the table's only one).
        k: classes to return. Defaults to 3.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        Rows ``{"class_name", "class_value", "prob", "rank"}``, best first.

    Raises:
        UsageError: a bad name or ``k``, no such configuration.
        ImageDecodeError: not a readable image.

    Example:
        >>> predict_image("models", "cat.png", mst_key=2, k=3)[0]["class_name"]
        'cat'
    """
    check_tables(model_table)
    url = resolve(dsn, show_sql)
    data = b"" if image is None and show_sql else _image_bytes(image)
    call = function_call("predict_image", model_table, mst_key, data, k, rows=True)
    if show_sql:
        return call.shown()
    return Table(sorted(run_rows(url, call), key=lambda row: row["rank"]))


def gpu_usage(*, dsn: str | None = None, show_sql: bool = False) -> Table | ShownSql:
    """GPU use of every database host now (CPU use where a host has no GPU).

    Returns:
        Rows ``{"host", "kind", "device", "utilization", "memory_used_mb",
        "memory_total_mb", "pids", "sessions"}``.

    Example:
        >>> gpu_usage()[0]["kind"]
        'gpu'
    """
    call = function_call("gpu_status", rows=True)
    if show_sql:
        return call.shown()
    return Table(run_rows(resolve(dsn, show_sql), call))
