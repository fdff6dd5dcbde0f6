"""Pack an image table into training buffers (like MADlib's
``training_preprocessor_dl`` / ``validation_preprocessor_dl``); runs in the client.

All the work is SQL that runs in the database: images are split out of their
rows, shuffled once by a seeded hash of their path, cut into buffers of
``buffer_size`` images, and the buffers spread round-robin over the segments'
``__dist_key__`` values. Pixels stay uint8 on disk (normalize on the segment);
labels are class indexes stored as big-endian int16 (``y_dtype = '>i2'``).
The packed table and its ``_summary`` appear together in one transaction.

Example::

    training_preprocessor(dsn, "train_images", "train_packed")
    validation_preprocessor(dsn, "test_images", "test_packed", "train_packed")
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import TableName, check_writable, session, table_exists, table_name
from gpdl_backend.errors import UsageError

# A buffer is what a segment decodes at once; keep it a modest allocation.
MAX_BUFFER_BYTES = 32 * 2**20
Y_DTYPE = ">i2"
X_DTYPE = "uint8"


@dataclass(frozen=True)
class PackResult:
    """What a preprocessor packed."""

    table: str
    images: int
    buffers: int
    buffer_size: int
    class_values: tuple[str, ...]
    image_shape: tuple[int, ...]
    num_segments: int


def default_buffer_size(images: int, image_bytes: int, num_segments: int) -> int:
    """Images per buffer: an even share per segment, split to stay under 32 MB."""
    per_segment = max(1, math.ceil(images / num_segments))
    pieces = max(1, math.ceil(per_segment * image_bytes / MAX_BUFFER_BYTES))
    return max(1, math.ceil(per_segment / pieces))


def training_preprocessor(
    dsn: str,
    source_table: str,
    output_table: str,
    *,
    buffer_size: int | None = None,
    normalizing_const: float = 255.0,
    num_segments: int | None = None,
    seed: int = 0,
    if_exists: str = "fail",
    progress: Callable[[str], None] | None = None,
) -> PackResult:
    """Pack ``source_table`` (an image table) into ``output_table`` for training.

    Args:
        dsn: where the database is.
        source_table: image table from ``load_images``.
        output_table: packed table to create (plus ``<output_table>_summary``).
        buffer_size: images per buffer. Defaults to an even share per segment,
            at most 32 MB a buffer.
        normalizing_const: pixels are divided by this on the segment. Defaults to 255.
        num_segments: PostgreSQL virtual segments. Defaults to the installed count.
        seed: shuffle seed. Defaults to 0.
        if_exists: ``"fail"`` (default) or ``"replace"``.
        progress: called with a line per stage.

    Returns:
        A ``PackResult``.

    Raises:
        UsageError: bad names or options, a missing source, mixed image sizes.
    """
    return _pack(dsn, source_table, output_table, None, buffer_size, normalizing_const,
                 num_segments, seed, if_exists, progress)


def validation_preprocessor(
    dsn: str,
    source_table: str,
    output_table: str,
    training_preprocessor_table: str,
    *,
    buffer_size: int | None = None,
    num_segments: int | None = None,
    seed: int = 0,
    if_exists: str = "fail",
    progress: Callable[[str], None] | None = None,
) -> PackResult:
    """Pack validation images with the training table's class values and constant.

    Args:
        training_preprocessor_table: the packed training table whose summary
            gives the class values and normalizing constant.
        Others: as ``training_preprocessor``.

    Raises:
        UsageError: labels the training data has never seen, or a shape that
            differs from the training images.
    """
    return _pack(dsn, source_table, output_table, training_preprocessor_table, buffer_size,
                 None, num_segments, seed, if_exists, progress)


def read_summary(cur, packed: TableName) -> dict:
    """A packed table's ``_summary`` row as a dict."""
    summary = packed.with_suffix("_summary")
    if not table_exists(cur, summary):
        raise UsageError(f"{packed} is not a packed table: {summary} does not exist")
    cur.execute(sql.SQL("SELECT * FROM {}").format(summary.identifier))
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def _pack(dsn, source_table, output_table, training_table, buffer_size, normalizing_const,
          num_segments, seed, if_exists, progress) -> PackResult:
    source = table_name(source_table)
    output = table_name(output_table)
    training_name = table_name(training_table) if training_table is not None else None
    if if_exists not in ("fail", "replace"):
        raise UsageError(f"if_exists must be 'fail' or 'replace', not {if_exists!r}")
    if buffer_size is not None and (not isinstance(buffer_size, int) or buffer_size < 1):
        raise UsageError(f"buffer_size must be a positive integer, not {buffer_size!r}")
    if normalizing_const is not None and not normalizing_const > 0:
        raise UsageError(f"normalizing_const must be positive, not {normalizing_const!r}")
    say = progress or (lambda _line: None)
    with session(dsn) as conn:
        engine = engines.probe(conn, num_segments)
        with conn.cursor() as cur:
            shape, images = _source_shape(cur, source)
            if training_name is not None:
                training = read_summary(cur, training_name)
                classes = list(training["class_values"])
                normalizing_const = float(training["normalizing_const"])
                if list(training["image_shape"]) != list(shape):
                    raise UsageError(
                        f"{source} images are {shape} but {training_table} was packed from "
                        f"{list(training['image_shape'])}")
                _check_known_labels(cur, source, classes)
            else:
                cur.execute(sql.SQL("SELECT DISTINCT label COLLATE \"C\" FROM "
                                    "(SELECT unnest(y) AS label FROM {}) s ORDER BY 1").format(
                    source.identifier))
                classes = [row[0] for row in cur.fetchall()]
            if len(classes) > 32767:
                raise UsageError(f"{len(classes)} classes: at most 32767 are supported")
            check_writable(cur, output)
            if table_exists(cur, output) or table_exists(cur, output.with_suffix("_summary")):
                if if_exists == "fail":
                    raise UsageError(
                        f"table {output} already exists; pass if_exists='replace'")
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                    output.identifier, output.with_suffix("_summary").identifier))
            image_bytes = math.prod(shape)
            size = buffer_size or default_buffer_size(images, image_bytes, engine.num_segments)
            say(f"shuffling {images} images of {shape} into buffers of {size}")
            shuffled = sql.Identifier(f"gpdl_pack_{secrets.token_hex(6)}")
            cur.execute(_shuffle_sql(engine, source, shuffled, classes, seed))
            say(f"packing {math.ceil(images / size)} buffers over "
                f"{engine.num_segments} segments")
            for statement in _packed_ddl(engine, output):
                cur.execute(statement)
            cur.execute(_pack_sql(engine, output, shuffled, size, shape))
            buffers = cur.rowcount
            cur.execute(sql.SQL("DROP TABLE {}").format(shuffled))
            _write_summary(cur, engine, output, dict(
                source_table=str(source), output_table=str(output),
                dependent_varname="y", independent_varname="x", dependent_vartype="text",
                class_values=classes, buffer_size=size,
                normalizing_const=float(normalizing_const), num_classes=len(classes),
                distribution_rules="all_segments", dist_keys=list(engine.dist_keys),
                image_shape=list(shape), x_dtype=X_DTYPE, y_dtype=Y_DTYPE,
                total_images=images, num_buffers=buffers, seed=seed,
                training_table=training_table))
    return PackResult(str(output), images, buffers, size, tuple(classes), tuple(shape),
                      engine.num_segments)


def _source_shape(cur, source: TableName) -> tuple[list[int], int]:
    if not table_exists(cur, source):
        raise UsageError(f"source table {source} does not exist")
    cur.execute(sql.SQL(
        "SELECT dims[2:4], sum(dims[1]) FROM {} WHERE dims IS NOT NULL GROUP BY 1").format(
        source.identifier))
    shapes = cur.fetchall()
    if not shapes:
        raise UsageError(f"source table {source} has no images")
    if len(shapes) > 1:
        listed = ", ".join("x".join(map(str, s)) for s, _ in shapes)
        raise UsageError(f"{source} holds images of several sizes ({listed}); "
                         "reload with resize")
    return list(shapes[0][0]), int(shapes[0][1])


def _check_known_labels(cur, source: TableName, classes: list[str]) -> None:
    cur.execute(sql.SQL(
        "SELECT DISTINCT label FROM (SELECT unnest(y) AS label FROM {}) s "
        "WHERE label <> ALL(%s) ORDER BY 1 LIMIT 10").format(source.identifier), (classes,))
    unknown = [row[0] for row in cur.fetchall()]
    if unknown:
        raise UsageError(f"{source} has labels the training data does not: {unknown}")


def _shuffle_sql(engine, source: TableName, shuffled: sql.Identifier, classes: list[str],
                 seed: int) -> sql.Composable:
    return sql.SQL(
        "CREATE TEMP TABLE {shuffled} AS "
        "SELECT (row_number() OVER (ORDER BY hashtextextended(s.fullpath, {seed}), "
        "s.fullpath) - 1)::bigint AS idx, "
        "(array_position({classes}::text[], s.label) - 1)::smallint AS cls, s.pixels "
        "FROM {source} t, LATERAL gpdl.split_images(t.x, t.dims, t.y, t.fullpaths) s"
        "{distributed}"
    ).format(shuffled=shuffled, seed=sql.Literal(seed), classes=sql.Literal(classes),
             source=source.identifier, distributed=engine.distributed_randomly())


def _packed_ddl(engine, output: TableName) -> list[sql.Composable]:
    return [sql.SQL(
        "CREATE TABLE {} (__dist_key__ integer NOT NULL, buffer_id integer NOT NULL, "
        "x bytea NOT NULL, y bytea NOT NULL, x_shape integer[] NOT NULL, "
        "y_shape integer[] NOT NULL, PRIMARY KEY (__dist_key__, buffer_id)){}"
    ).format(output.identifier, engine.distributed_by_key()),
        # uint8 pixels: pglz costs CPU on every write and read for little space
        sql.SQL("ALTER TABLE {} ALTER COLUMN x SET STORAGE EXTERNAL").format(output.identifier)]


def _pack_sql(engine, output: TableName, shuffled: sql.Identifier, size: int,
              shape: list[int]) -> sql.Composable:
    return sql.SQL(
        "INSERT INTO {output} SELECT "
        "({keys}::integer[])[(idx / {size}) % {n} + 1], (idx / {size})::integer, "
        "string_agg(pixels, ''::bytea ORDER BY idx), "
        "string_agg(int2send(cls), ''::bytea ORDER BY idx), "
        "ARRAY[count(*)::integer, {h}, {w}, {c}], ARRAY[count(*)::integer] "
        "FROM {shuffled} GROUP BY idx / {size}"
    ).format(output=output.identifier, keys=sql.Literal(list(engine.dist_keys)),
             size=sql.Literal(size), n=sql.Literal(engine.num_segments),
             h=sql.Literal(shape[0]), w=sql.Literal(shape[1]), c=sql.Literal(shape[2]),
             shuffled=shuffled)


_SUMMARY_COLUMNS = (
    ("source_table", "text"), ("output_table", "text"), ("dependent_varname", "text"),
    ("independent_varname", "text"), ("dependent_vartype", "text"),
    ("class_values", "text[]"), ("buffer_size", "integer"), ("normalizing_const", "real"),
    ("num_classes", "integer"), ("distribution_rules", "text"), ("dist_keys", "integer[]"),
    ("image_shape", "integer[]"), ("x_dtype", "text"), ("y_dtype", "text"),
    ("total_images", "bigint"), ("num_buffers", "integer"), ("seed", "integer"),
    ("training_table", "text"),
)


def _write_summary(cur, engine, output: TableName, values: dict) -> None:
    summary = output.with_suffix("_summary")
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
        for name, kind in _SUMMARY_COLUMNS)
    cur.execute(sql.SQL("CREATE TABLE {} ({}){}").format(
        summary.identifier, columns, engine.distributed_replicated()))
    names = [name for name, _ in _SUMMARY_COLUMNS]
    cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        summary.identifier, sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names))), [values[n] for n in names])
