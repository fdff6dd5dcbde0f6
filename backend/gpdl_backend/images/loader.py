"""Load images into a table in parallel, on every segment (runs in the client).

The client only sends SQL: each segment reads its own fragments inside the
database (``gpdl.read_images``), so pixels never pass through here. Rows go
to a staging table first; the target appears, complete, in one transaction at
the end, so an interrupted load never leaves a table that looks complete.

Example::

    result = load_images(dsn, "s3://bucket/train", "train_images", server="minio")
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import (
    TableName,
    check_writable,
    columns_of,
    connect,
    connect_async,
    execute_on,
    raise_from_server,
    table_exists,
    table_name,
)
from gpdl_backend.errors import UsageError

IF_EXISTS = ("fail", "replace", "append")
STAGING_PREFIX = "gpdl_loading_"

ProgressCallback = Callable[[int, int, int], None]  # (files done, files total, errors)


@dataclass(frozen=True)
class LoadResult:
    """What ``load_images`` loaded."""

    table: str
    images: int
    rows: int
    errors: int
    files: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def image_table_ddl(
    table: sql.Composable, engine: engines.Engine, staging: bool = False
) -> list[sql.Composable]:
    """CREATE statements for an image table.

    ``staging``: also the columns where ``gpdl.read_images`` reports the files
    that failed; ``_finish_staging`` moves them out and drops the columns.
    Pixels are stored out of line uncompressed (``STORAGE EXTERNAL``): pglz
    gains little on pixels and costs a third of a load's CPU on images with
    flat areas (Fashion-MNIST), and again on every read.
    """
    extra = sql.SQL(", error_paths text[], error_reasons text[]") if staging else sql.SQL("")
    return [
        sql.SQL(
            "CREATE TABLE {} (fullpaths text[], names text[], y text[], dims integer[], "
            "x bytea, pixels integer[]{}){}"
        ).format(table, extra, engine.distributed_randomly()),
        sql.SQL("ALTER TABLE {} ALTER COLUMN x SET STORAGE EXTERNAL").format(table),
    ]


def errors_table_ddl(table: sql.Composable, engine: engines.Engine) -> sql.Composable:
    """CREATE statement for an image table's ``_errors`` table."""
    return sql.SQL("CREATE TABLE {} (path text, reason text){}").format(
        table, engine.distributed_randomly())


def load_images(
    dsn: str,
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
    progress: ProgressCallback | None = None,
) -> LoadResult:
    """Load the images at ``location`` into ``table`` (and ``table_errors``).

    Args:
        dsn: where the database is.
        location: a directory, glob or URL (``s3://``, ``gs://``, ``http(s)://``,
            ``file://``, local path); label = each file's parent directory.
        table: the image table to create, ``name`` or ``schema.name``.
        batch_size: images per row. Defaults to 500.
        server: name of the object-store config (credentials) on the database host.
        resize: ``(height, width)`` for every image; None keeps the size.
        color_mode: ``"RGB"`` or ``"L"``. Defaults to ``"RGB"``.
        int_pixels: also fill the PXF-compatible ``pixels INT[]`` column.
        if_exists: ``"fail"`` (default), ``"replace"`` or ``"append"``.
        num_segments: PostgreSQL: parallel readers. Defaults to the installed count.
        threads: concurrent remote reads within a segment. Defaults to 8.
        progress: called as ``progress(files_done, files_total, errors)``.

    Returns:
        A ``LoadResult``.

    Raises:
        UsageError: bad name or option, existing table, missing or empty
            location, bad credentials, mixed image sizes; nothing is left behind.
    """
    target = table_name(table)
    if if_exists not in IF_EXISTS:
        raise UsageError(f"if_exists must be one of {IF_EXISTS}, not {if_exists!r}")
    if color_mode not in ("RGB", "L"):
        raise UsageError(f"color_mode must be 'RGB' or 'L', not {color_mode!r}")
    if not _positive_int(batch_size):
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not _positive_int(threads):
        raise UsageError(f"threads must be a positive integer, not {threads!r}")
    if resize is not None and (len(resize) != 2 or not all(map(_positive_int, resize))):
        raise UsageError(f"resize must be (height, width) of positive integers, not {resize!r}")
    started = time.monotonic()
    conn = connect(dsn)
    sessions: list = []
    try:
        engine = engines.probe(conn, num_segments)
        with conn.cursor() as cur:
            check_writable(cur, target)
            exists = table_exists(cur, target)
            if if_exists == "fail":
                for taken in (target, target.with_suffix("_errors")):
                    if table_exists(cur, taken):
                        raise UsageError(f"table {taken} already exists; "
                                         "pass if_exists='replace' or 'append'")
            if exists and if_exists == "append":
                _check_image_table(cur, target)
        conn.commit()
        staging = TableName(target.schema, f"{STAGING_PREFIX}{secrets.token_hex(6)}")
        statements = engine.read_images_statements(staging.identifier, _read_args(
            location, dict(batch_size=batch_size, server=server,
                           resize=list(resize) if resize else None, color_mode=color_mode,
                           int_pixels=int_pixels, threads=threads)))
        sessions = [connect_async(dsn) for _ in statements]
        total = _count_files(sessions, location, server)
        _create_staging(conn, engine, staging, target, location)
        try:
            _run_segments(sessions, statements, total, progress)
            _finish_staging(conn, staging)
            _refuse_if_nothing_read(conn, staging, location)
            if resize is None or (exists and if_exists == "append"):
                _check_uniform_sizes(conn, staging, target if exists and
                                     if_exists == "append" else None)
            images, rows, error_count = _publish(conn, engine, staging, target, exists, if_exists)
        except BaseException:
            _drop_staging(conn, staging)
            raise
    finally:
        for session in sessions:
            session.close()
        conn.close()
    return LoadResult(str(target), images, rows, error_count, total, time.monotonic() - started)


IMAGE_COLUMNS = ("fullpaths", "names", "y", "dims", "x")
"""What an image table has (``image_table_ddl``) and what an append writes."""


def _check_image_table(cur, target: TableName) -> None:
    """Refuse to append to a table that is not an image table (before any work)."""
    missing = set(IMAGE_COLUMNS) - set(columns_of(cur, target))
    if missing:
        raise UsageError(f"table {target} is not an image table (no column "
                         f"{', '.join(sorted(missing))}); append to a table gpdl loaded, "
                         "or load into a new one")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _create_staging(conn, engine, staging: TableName, target: TableName, location: str) -> None:
    with conn.cursor() as cur:
        for statement in image_table_ddl(staging.identifier, engine, staging=True):
            cur.execute(statement)
        cur.execute(errors_table_ddl(staging.with_suffix("_errors").identifier, engine))
        cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
            staging.identifier,
            sql.Literal(f"gpdl: INCOMPLETE load of {location} into {target}; safe to drop")))
    conn.commit()


def _read_args(location: str, options: dict) -> sql.Composable:
    parts = [sql.Literal(location)]
    for name, value in options.items():
        literal = sql.Literal(value)
        if name == "resize" and value is not None:
            literal = sql.SQL("{}::integer[]").format(sql.Literal(value))
        parts.append(sql.SQL("{} => {}").format(sql.Identifier(name), literal))
    parts.append(sql.SQL("progress => true"))
    return sql.SQL(", ").join(parts)


def _count_files(sessions: list, location: str, server: str | None) -> int:
    """Count (and so check) the location on the first session, warming up the others.

    The segment sessions are the ones that will load: the first keeps the
    backend that listed the location, the others import the server-side
    modules meanwhile instead of after the load has started.
    """
    def count(session) -> int:
        cur = execute_on(session, "SELECT gpdl.count_files(%s, %s)", (location, server))
        return cur.fetchone()[0]

    def warm_up(session) -> None:
        execute_on(session, "SELECT gpdl.server_info(false)")

    return _run_concurrently(sessions, [count] + [warm_up] * (len(sessions) - 1))[0]


def _run_segments(sessions: list, statements: list, total: int,
                  progress: ProgressCallback | None) -> None:
    """Run the per-segment loads concurrently, adding up their progress notices."""
    lock = threading.Lock()
    counts = {"files": 0, "errors": 0}

    def on_notice(message: str) -> None:
        if not message.startswith("gpdl-progress "):
            return
        _, files, errors = message.split()
        with lock:
            counts["files"] += int(files)
            counts["errors"] += int(errors)
            if progress:
                progress(counts["files"], total, counts["errors"])

    _run_concurrently(sessions, [
        lambda session, statement=statement: execute_on(session, statement, on_notice=on_notice)
        for statement in statements])


def _run_concurrently(sessions: list, jobs: list[Callable[[object], object]]) -> list:
    """Run ``jobs[k](sessions[k])`` in threads; the first failure cancels the others.

    Raises:
        The first failure, a server error mapped to gpdl's errors.
    """
    if len(jobs) == 1:  # one session (Greenplum): no thread needed
        try:
            return [jobs[0](sessions[0])]
        except psycopg2.Error as error:
            raise_from_server(error)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job, session) for job, session in zip(jobs, sessions, strict=True)]
        results: list = []
        first_error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as error:  # cancel the other sessions' statements
                if first_error is None:
                    first_error = error
                    for session in sessions:
                        with contextlib.suppress(psycopg2.Error):
                            session.cancel()
    if first_error is not None:
        if isinstance(first_error, psycopg2.Error):
            raise_from_server(first_error)
        raise first_error
    return results


def _finish_staging(conn, staging: TableName) -> None:
    """Move the failed files to the ``_errors`` table; keep image rows and columns only."""
    errors = staging.with_suffix("_errors").identifier
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "INSERT INTO {errors} (path, reason) "
            "SELECT unnest(error_paths), unnest(error_reasons) FROM {staging} "
            "WHERE cardinality(error_paths) > 0").format(errors=errors,
                                                         staging=staging.identifier))
        cur.execute(sql.SQL("DELETE FROM {} WHERE cardinality(names) = 0").format(
            staging.identifier))
        cur.execute(sql.SQL("ALTER TABLE {} DROP COLUMN error_paths, DROP COLUMN error_reasons")
                    .format(staging.identifier))
    conn.commit()


def _refuse_if_nothing_read(conn, staging: TableName, location: str) -> None:
    """A location whose every file failed is an error, not an empty table."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(staging.identifier))
        if cur.fetchone()[0]:
            return
        cur.execute(sql.SQL("SELECT count(*), min(path || ': ' || reason) FROM {}").format(
            staging.with_suffix("_errors").identifier))
        failed, example = cur.fetchone()
    conn.commit()
    raise UsageError(f"no image could be read at {location}: all {failed} files failed "
                     f"(e.g. {example}); nothing was loaded")


def _check_uniform_sizes(conn, staging: TableName, appending_to: TableName | None) -> None:
    """Refuse images of different sizes (read by different segments, or appended)."""
    tables = [staging] if appending_to is None else [staging, appending_to]
    source = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT dims, fullpaths FROM {} WHERE dims IS NOT NULL").format(t.identifier)
        for t in tables)
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "SELECT dims[2:4] AS shape, min(fullpaths[1]) AS example, sum(dims[1]) AS n "
            "FROM ({}) s GROUP BY 1 ORDER BY n DESC, 1").format(source))
        shapes = cur.fetchall()
    conn.commit()
    if len(shapes) > 1:
        (common, common_path, _), (odd, odd_path, _) = shapes[0], shapes[1]
        fmt = "x".join
        hint = (f"{appending_to} holds other sizes; " if appending_to is not None else "")
        raise UsageError(
            f"mixed image sizes: {odd_path} is {fmt(map(str, odd))} but {common_path} is "
            f"{fmt(map(str, common))}; {hint}pass resize to load them together")


def _publish(conn, engine, staging: TableName, target: TableName, exists: bool,
             if_exists: str) -> tuple[int, int, int]:
    """Make the staging rows the target's, in one transaction."""
    target_errors = target.with_suffix("_errors")
    staging_errors = staging.with_suffix("_errors")
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "SELECT coalesce(sum(dims[1]), 0), count(*) FROM {}").format(staging.identifier))
        images, rows = cur.fetchone()
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(staging_errors.identifier))
        error_count = cur.fetchone()[0]
        if exists and if_exists == "append":
            cur.execute(sql.SQL("INSERT INTO {} (fullpaths, names, y, dims, x, pixels) "
                                "SELECT fullpaths, names, y, dims, x, pixels FROM {}").format(
                target.identifier, staging.identifier))
            if not table_exists(cur, target_errors):
                cur.execute(errors_table_ddl(target_errors.identifier, engine))
            cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                target_errors.identifier, staging_errors.identifier))
            cur.execute(sql.SQL("DROP TABLE {}, {}").format(
                staging.identifier, staging_errors.identifier))
        else:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                target.identifier, target_errors.identifier))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                staging.identifier, sql.Identifier(target.name)))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                staging_errors.identifier, sql.Identifier(target_errors.name)))
            cur.execute(sql.SQL("COMMENT ON TABLE {} IS NULL").format(target.identifier))
    conn.commit()
    return int(images), int(rows), int(error_count)


def _drop_staging(conn, staging: TableName) -> None:
    try:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                staging.identifier, staging.with_suffix("_errors").identifier))
        conn.commit()
    except psycopg2.Error:
        pass  # the connection itself is gone; the staging table says it is incomplete
