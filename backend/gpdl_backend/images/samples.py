"""Pick single images out of an image table, for display (runs in the client).

An image table (``loader``'s layout) holds many images per row: ``fullpaths``,
``names``, ``y``, ``dims = {N,H,W,C}`` and ``x`` (uint8, N×H×W×C). These
helpers list a few images and fetch one: the database cuts the image's bytes
out of its row, so only that image travels.

Example::

    images = list_images(dsn, "test_images", limit=50)
    picked = read_image(dsn, "test_images", images[0].fullpath)
    png = to_png(picked.pixels, min_size=192)
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from psycopg2 import sql

from gpdl_backend.client import session, table_exists, table_name
from gpdl_backend.errors import UsageError

__all__ = ["ImageRef", "StoredImage", "list_images", "read_image", "to_png"]


@dataclass(frozen=True)
class ImageRef:
    """One image of a table: its path (unique), file name and label."""

    fullpath: str
    name: str
    label: str | None


@dataclass(frozen=True)
class StoredImage:
    """One image's pixels (``H×W×C`` uint8) and what the table says about it."""

    ref: ImageRef
    pixels: np.ndarray


def list_images(dsn: str, image_table: str, limit: int = 200) -> list[ImageRef]:
    """Up to ``limit`` images of a table, spread over it (a stable pseudo-random pick).

    Args:
        dsn: where the database is.
        image_table: an image table (``fullpaths, names, y, dims, x``).
        limit: most images listed. Defaults to 200.

    Raises:
        UsageError: no such table, or ``limit < 1``.
    """
    table = table_name(image_table)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"limit must be a positive integer, not {limit!r}")
    with session(dsn) as conn, conn.cursor() as cur:
        if not table_exists(cur, table):
            raise UsageError(f"image table {table} does not exist")
        cur.execute(sql.SQL(
            "SELECT u.f, u.n, u.l FROM {}, unnest(fullpaths, names, y) AS u(f, n, l) "
            "WHERE u.f IS NOT NULL ORDER BY md5(u.f), u.f LIMIT %s").format(
            table.identifier), (limit,))
        rows = cur.fetchall()
    return [ImageRef(f, n or f.rsplit("/", 1)[-1], label) for f, n, label in rows]


def read_image(dsn: str, image_table: str, fullpath: str) -> StoredImage:
    """One image's pixels, cut out of its row in the database.

    Raises:
        UsageError: no such table or image.
    """
    table = table_name(image_table)
    with session(dsn) as conn, conn.cursor() as cur:
        if not table_exists(cur, table):
            raise UsageError(f"image table {table} does not exist")
        cur.execute(sql.SQL(
            "SELECT s.dims, s.names[s.p], s.y[s.p], "
            "substring(s.x FROM (s.p - 1) * s.size + 1 FOR s.size) "
            "FROM (SELECT dims, names, y, x, array_position(fullpaths, %s) AS p, "
            "dims[2] * dims[3] * dims[4] AS size FROM {} WHERE %s = ANY(fullpaths)) s "
            "LIMIT 1").format(table.identifier), (fullpath, fullpath))
        row = cur.fetchone()
    if row is None:
        raise UsageError(f"no image {fullpath!r} in {table}")
    dims, name, label, data = row
    height, width, channels = (int(v) for v in dims[1:4])
    pixels = np.frombuffer(bytes(data), dtype=np.uint8).reshape(height, width, channels)
    return StoredImage(ImageRef(fullpath, name or fullpath.rsplit("/", 1)[-1], label), pixels)


def to_png(pixels: np.ndarray, min_size: int = 0) -> bytes:
    """PNG bytes of an ``H×W×C`` uint8 image (C = 1 or 3), scaled up to ``min_size``.

    Scaling (nearest neighbour, whole factors) is for display only: keep
    ``min_size=0`` for the bytes sent to the model.

    Raises:
        UsageError: not an ``H×W×1`` or ``H×W×3`` uint8 array.
    """
    from PIL import Image

    array = np.asarray(pixels)
    if array.ndim != 3 or array.shape[2] not in (1, 3) or array.dtype != np.uint8:
        raise UsageError(f"expected H×W×1 or H×W×3 uint8 pixels, got {array.dtype} "
                         f"{array.shape}")
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array,
                            "L" if array.shape[2] == 1 else "RGB")
    factor = max(1, -(-min_size // max(array.shape[:2]))) if min_size else 1
    if factor > 1:
        image = image.resize((array.shape[1] * factor, array.shape[0] * factor),
                             Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
