"""Images into tables: ``load_images``, ``preprocess``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gpdl_backend.notices import parse_progress
from gpdl_jupyter.api._common import check_tables, resolve, run_call
from gpdl_jupyter.sqltext import ShownSql, function_call

if TYPE_CHECKING:
    from gpdl_backend.images.loader import LoadResult
    from gpdl_backend.preprocess import PackResult


def load_images(
    location: str,
    table: str,
    *,
    batch_size: int = 500,
    server: str | None = None,
    resize: tuple[int, int] | None = None,
    color_mode: str = "RGB",
    int_pixels: bool = False,
    if_exists: str = "fail",
    num_segments: int | None = None,
    threads: int = 8,
    progress: Callable[[int, int, int], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> LoadResult | ShownSql:
    """Load the images at ``location`` into ``table``, read in parallel by every segment.

    Args:
        location: a directory, glob or URL (``s3://``, ``gs://``, ``http(s)://``,
            ``file://``); each file's label is its parent directory's name.
        table: the image table to create (plus ``<table>_errors``).
        batch_size: images per row. Defaults to 500.
        server: name of the object-store config (credentials) on the database
            host. Defaults to None.
        resize: ``(height, width)`` for every image. Defaults to None (keep).
        color_mode: ``"RGB"`` or ``"L"``. Defaults to ``"RGB"``.
        int_pixels: also fill the PXF-compatible ``pixels INT[]``. Defaults to False.
        if_exists: ``"fail"``, ``"replace"`` or ``"append"``. Defaults to ``"fail"``.
        num_segments: PostgreSQL: parallel readers. Defaults to the installed count.
        threads: concurrent remote reads within a segment. Defaults to 8.
        progress: called as ``progress(files_done, files_total, errors)``.
        dsn: the database. Defaults to None (see the module docstring).
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``LoadResult`` (table, images, rows, errors, seconds).

    Raises:
        UsageError: a bad name or option, an existing table, a missing or
            empty location, images of mixed sizes; nothing is left behind.

    Example:
        >>> load_images("s3://bucket/train", "train_images", server="minio", resize=(32, 32))
        LoadResult(table='train_images', images=50000, rows=100, errors=0, ...)
    """
    check_tables(table)
    url = resolve(dsn, show_sql)
    call = function_call("load_images", location, table, batch_size, server,
                         list(resize) if resize else None, color_mode, int_pixels, if_exists,
                         threads, num_segments=num_segments)
    if show_sql:
        return call.shown()
    from gpdl_backend.images.loader import LoadResult

    def on_notice(message: str) -> None:
        found = parse_progress(message)
        if progress is not None and found is not None:
            progress(found.done, found.total, int(found.detail.split()[1]))

    return LoadResult(**run_call(url, call, on_notice))


def preprocess(
    source_table: str,
    output_table: str,
    *,
    validation_of: str | None = None,
    buffer_size: int | None = None,
    normalizing_const: float = 255.0,
    num_segments: int | None = None,
    seed: int = 0,
    if_exists: str = "fail",
    progress: Callable[[str], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> PackResult | ShownSql:
    """Pack an image table into training buffers spread over the segments.

    Args:
        source_table: image table from :func:`load_images`.
        output_table: packed table to create (plus ``<output_table>_summary``).
        validation_of: pack as validation data of this packed training table
            (its class values and normalizing constant). Defaults to None:
            training data.
        buffer_size: images per buffer. Defaults to an even share per segment,
            at most 32 MB a buffer.
        normalizing_const: training only: pixels are divided by this. Defaults to 255.
        num_segments: PostgreSQL virtual segments. Defaults to the installed count.
        seed: shuffle seed. Defaults to 0.
        if_exists: ``"fail"`` or ``"replace"``. Defaults to ``"fail"``.
        progress: called with a line per stage.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``PackResult`` (images, buffers, class values, image shape...).

    Raises:
        UsageError: bad names or options, a missing source, mixed sizes,
            labels the training data has not seen.

    Example:
        >>> preprocess("train_images", "train_packed")
        >>> preprocess("test_images", "test_packed", validation_of="train_packed")
    """
    check_tables(source_table, output_table, validation_of)
    url = resolve(dsn, show_sql)
    if validation_of is not None:
        call = function_call("validation_preprocessor_dl", source_table, output_table, "y",
                             "x", validation_of, buffer_size, seed=seed, if_exists=if_exists,
                             num_segments=num_segments)
    else:
        call = function_call("training_preprocessor_dl", source_table, output_table, "y", "x",
                             buffer_size, normalizing_const, seed=seed, if_exists=if_exists,
                             num_segments=num_segments)
    if show_sql:
        return call.shown()
    from gpdl_backend.preprocess import PackResult

    result = run_call(url, call, progress)
    return PackResult(**{**result, "class_values": tuple(result["class_values"]),
                         "image_shape": tuple(result["image_shape"])})
