"""Helpers of the database tests: write image files, read image tables back."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from psycopg2 import sql

CHANNELS = {"RGB": 3, "L": 1}


def random_pixels(seed: int, height: int, width: int, mode: str = "RGB") -> np.ndarray:
    """A deterministic uint8 image, (H, W, 3) for RGB or (H, W) for L."""
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path: Path, pixels: np.ndarray, image_format: str = "PNG") -> Path:
    """Write ``pixels`` as an image file at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, image_format)
    return path


def write_class_tree(
    root: Path,
    counts: dict[str, int],
    size: tuple[int, int] = (6, 8),
    mode: str = "RGB",
    image_format: str = "PNG",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write ``root/<class>/img_<i>.<ext>`` files of random pixels.

    Returns:
        Each file's path (as the loader reports it) and the pixels written.
    """
    ext = "png" if image_format == "PNG" else "jpg"
    written = {}
    for k, (label, count) in enumerate(sorted(counts.items())):
        for i in range(count):
            pixels = random_pixels(seed * 100_003 + k * 1000 + i, *size, mode)
            path = save(root / label / f"img_{i:03d}.{ext}", pixels, image_format)
            written[str(path)] = pixels
    return written


def pillow_decode(path: str | Path, mode: str = "RGB",
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """What the loader should store for a file: Pillow's decode, (H, W, C) uint8."""
    with Image.open(path) as img:
        img = img.convert(mode)
        if size is not None:
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(img)
    return array if array.ndim == 3 else array[..., np.newaxis]


def table_images(conn, table: str) -> dict[str, tuple[str, str, np.ndarray]]:
    """An image table's images: fullpath -> (name, label, pixels (H, W, C))."""
    from psycopg2 import sql

    images = {}
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT fullpaths, names, y, dims, x FROM {}").format(
            sql.Identifier(*table.split("."))))
        for fullpaths, names, labels, dims, x in cur.fetchall():
            assert len(fullpaths) == len(names) == len(labels) == dims[0]
            assert len(x) == int(np.prod(dims))
            stacked = np.frombuffer(bytes(x), np.uint8).reshape(dims)
            for i, path in enumerate(fullpaths):
                assert path not in images, f"{path} loaded twice"
                images[path] = (names[i], labels[i], stacked[i])
    conn.commit()
    return images


def user_tables(conn) -> set[str]:
    """Every table outside the system schemas, as ``schema.name``."""
    with conn.cursor() as cur:
        cur.execute("SELECT schemaname || '.' || tablename FROM pg_tables "
                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                    "AND schemaname NOT LIKE 'pg_temp%'")
        tables = {row[0] for row in cur.fetchall()}
    conn.commit()
    return tables


def fresh_table(conn, prefix: str) -> Iterator[str]:
    """Yield a new table name; drop the table and its ``_errors`` afterwards (fixtures)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    yield name
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
            sql.Identifier(name), sql.Identifier(f"{name}_errors")))
    conn.commit()
