"""Packing image tables into training / validation buffers, against the real server."""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.images.loader import load_images
from gpdl_backend.preprocess import (
    MAX_BUFFER_BYTES,
    default_buffer_size,
    read_summary,
    training_preprocessor,
    validation_preprocessor,
)
from tests.imagefiles import table_images, write_class_tree

SHAPE = (5, 4, 3)
TRAIN_COUNTS = {"ant": 13, "bee": 11, "cow": 9, "dog": 10}  # 43 images
VALID_COUNTS = {"bee": 3, "dog": 4}


def drop(conn, *names: str) -> None:
    conn.rollback()
    with conn.cursor() as cur:
        for name in names:
            for suffix in ("", "_summary", "_errors"):
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                    sql.Identifier(name + suffix)))
    conn.commit()


@pytest.fixture(scope="module")
def images(dsn: str, shared_tmp_factory: Callable[[str], Path]) -> Iterator[dict[str, str]]:
    """Image tables: training, validation, unknown labels, another size."""
    import psycopg2

    root = shared_tmp_factory("gpdl-pack-")
    tag = secrets.token_hex(3)
    tables = {kind: f"pack_{kind}_{tag}" for kind in ("train", "valid", "unknown", "big")}
    write_class_tree(root / "train", TRAIN_COUNTS, size=SHAPE[:2])
    write_class_tree(root / "valid", VALID_COUNTS, size=SHAPE[:2], seed=1)
    write_class_tree(root / "unknown", {"bee": 2, "eel": 1, "fox": 1}, size=SHAPE[:2], seed=2)
    write_class_tree(root / "big", {"bee": 2}, size=(7, 7), seed=3)
    for kind, table in tables.items():
        load_images(dsn, str(root / kind), table, batch_size=6)
    yield tables
    conn = psycopg2.connect(dsn)
    drop(conn, *tables.values())
    conn.close()


@pytest.fixture
def out(conn) -> Iterator[Callable[[], str]]:
    """Makes fresh output table names, dropped (with their summaries) afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"packed_{secrets.token_hex(4)}")
        return made[-1]

    yield make
    drop(conn, *made)


def buffers(conn, table: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT __dist_key__, buffer_id, x, y, x_shape, y_shape FROM {} "
                            "ORDER BY buffer_id").format(sql.Identifier(table)))
        rows = [(k, b, bytes(x), bytes(y), xs, ys) for k, b, x, y, xs, ys in cur.fetchall()]
    conn.commit()
    return rows


def summary(conn, table: str) -> dict:
    with conn.cursor() as cur:
        values = read_summary(cur, table_name(table))
    conn.commit()
    return values


def unpack(rows: list[tuple]) -> list[tuple[bytes, int]]:
    """Every (image bytes, class index) pair of a packed table, in buffer order."""
    per_image = math.prod(SHAPE)
    pairs = []
    for _, _, x, y, x_shape, y_shape in rows:
        count = x_shape[0]
        assert x_shape == [count, *SHAPE] and y_shape == [count]
        assert len(x) == count * per_image
        classes = np.frombuffer(y, ">i2")
        assert len(classes) == count
        pairs += [(x[i * per_image:(i + 1) * per_image], int(classes[i])) for i in range(count)]
    return pairs


def source_pairs(conn, table: str, classes: list[str]) -> Counter:
    return Counter((pixels.tobytes(), classes.index(label))
                   for _, label, pixels in table_images(conn, table).values())


@pytest.mark.db
def test_training_packing(dsn, conn, images, out) -> None:
    packed = out()
    result = training_preprocessor(dsn, images["train"], packed, buffer_size=5)
    total = sum(TRAIN_COUNTS.values())
    classes = sorted(TRAIN_COUNTS)
    assert (result.images, result.buffers, result.buffer_size) == (total, 9, 5)
    assert result.class_values == tuple(classes) and result.image_shape == SHAPE
    rows = buffers(conn, packed)
    assert [r[1] for r in rows] == list(range(9))
    assert sum(r[4][0] for r in rows) == total
    assert [r[4][0] for r in rows] == [5] * 8 + [3]

    # buffers spread evenly over the segments' keys
    keys = engines.probe(conn).dist_keys
    per_key = Counter(r[0] for r in rows)
    assert set(per_key) == set(keys)
    assert max(per_key.values()) - min(per_key.values()) <= 1

    # x bytes are a permutation of the source images, each with its own label
    pairs = unpack(rows)
    assert Counter(pairs) == source_pairs(conn, images["train"], classes)
    assert Counter(c for _, c in pairs) == Counter(
        {classes.index(label): n for label, n in TRAIN_COUNTS.items()})


@pytest.mark.db
def test_shuffle_is_seeded(dsn, conn, images, out) -> None:
    a, b, c = out(), out(), out()
    training_preprocessor(dsn, images["train"], a, buffer_size=5, seed=1)
    training_preprocessor(dsn, images["train"], b, buffer_size=5, seed=1)
    training_preprocessor(dsn, images["train"], c, buffer_size=5, seed=2)
    assert buffers(conn, a) == buffers(conn, b)
    assert unpack(buffers(conn, a)) != unpack(buffers(conn, c))
    assert Counter(unpack(buffers(conn, a))) == Counter(unpack(buffers(conn, c)))
    order = [x for x, _ in unpack(buffers(conn, a))]
    by_path = sorted(table_images(conn, images["train"]).items())
    assert order != [pixels.tobytes() for _, (_, _, pixels) in by_path]  # it did shuffle


@pytest.mark.db
def test_summary_columns(dsn, conn, images, out) -> None:
    packed = out()
    training_preprocessor(dsn, images["train"], packed, buffer_size=7,
                          normalizing_const=127.5, seed=3)
    values = summary(conn, packed)
    total = sum(TRAIN_COUNTS.values())
    assert values == {
        "source_table": images["train"], "output_table": packed,
        "dependent_varname": "y", "independent_varname": "x", "dependent_vartype": "text",
        "class_values": sorted(TRAIN_COUNTS), "buffer_size": 7, "normalizing_const": 127.5,
        "num_classes": 4, "distribution_rules": "all_segments",
        "dist_keys": list(engines.probe(conn).dist_keys), "image_shape": list(SHAPE),
        "x_dtype": "uint8", "y_dtype": ">i2", "total_images": total,
        "num_buffers": math.ceil(total / 7), "seed": 3, "training_table": None,
    }


@pytest.mark.db
def test_default_buffer_size_gives_every_segment_a_share(dsn, conn, images, out) -> None:
    packed = out()
    result = training_preprocessor(dsn, images["train"], packed)
    segments = result.num_segments
    assert result.buffer_size == math.ceil(sum(TRAIN_COUNTS.values()) / segments)
    assert result.buffers == segments
    assert len({r[0] for r in buffers(conn, packed)}) == segments


@pytest.mark.db
def test_validation_reuses_the_training_classes(dsn, conn, images, out) -> None:
    train, valid = out(), out()
    training_preprocessor(dsn, images["train"], train, normalizing_const=200.0)
    result = validation_preprocessor(dsn, images["valid"], valid, train, buffer_size=2)
    classes = sorted(TRAIN_COUNTS)
    assert result.class_values == tuple(classes)
    assert result.images == sum(VALID_COUNTS.values()) and result.buffers == 4
    pairs = unpack(buffers(conn, valid))
    assert Counter(pairs) == source_pairs(conn, images["valid"], classes)
    assert {c for _, c in pairs} == {classes.index("bee"), classes.index("dog")}
    values = summary(conn, valid)
    assert values["class_values"] == classes and values["num_classes"] == 4
    assert values["normalizing_const"] == 200.0 and values["training_table"] == train


@pytest.mark.db
def test_validation_refuses_unknown_labels(dsn, conn, images, out) -> None:
    train, valid = out(), out()
    training_preprocessor(dsn, images["train"], train)
    with pytest.raises(UsageError, match=r"labels the training data does not.*'eel', 'fox'"):
        validation_preprocessor(dsn, images["unknown"], valid, train)
    assert not_there(conn, valid)


@pytest.mark.db
def test_validation_refuses_another_shape(dsn, conn, images, out) -> None:
    train, valid = out(), out()
    training_preprocessor(dsn, images["train"], train)
    with pytest.raises(UsageError, match=r"\[7, 7, 3\].*\[5, 4, 3\]"):
        validation_preprocessor(dsn, images["big"], valid, train)
    with pytest.raises(UsageError, match="not a packed table"):
        validation_preprocessor(dsn, images["valid"], valid, images["train"])
    assert not_there(conn, valid)


def not_there(conn, table: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NULL AND to_regclass(%s) IS NULL",
                    (table, f"{table}_summary"))
        gone = cur.fetchone()[0]
    conn.commit()
    return gone


@pytest.mark.db
def test_if_exists(dsn, conn, images, out) -> None:
    packed = out()
    training_preprocessor(dsn, images["train"], packed, buffer_size=5)
    with pytest.raises(UsageError, match="already exists"):
        training_preprocessor(dsn, images["train"], packed)
    assert len(buffers(conn, packed)) == 9
    result = training_preprocessor(dsn, images["train"], packed, buffer_size=20,
                                   if_exists="replace")
    assert result.buffers == 3 and len(buffers(conn, packed)) == 3
    assert summary(conn, packed)["buffer_size"] == 20


@pytest.mark.db
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"buffer_size": 0}, "buffer_size"), ({"if_exists": "append"}, "if_exists"),
    ({"normalizing_const": 0}, "normalizing_const"),
])
def test_bad_options(dsn, conn, images, out, kwargs, message) -> None:
    packed = out()
    with pytest.raises(UsageError, match=message):
        training_preprocessor(dsn, images["train"], packed, **kwargs)
    assert not_there(conn, packed)


@pytest.mark.db
def test_bad_sources(dsn, conn, images, out) -> None:
    packed = out()
    with pytest.raises(UsageError, match="does not exist"):
        training_preprocessor(dsn, "no_such_table", packed)
    with pytest.raises(UsageError, match="unsafe table name"):
        training_preprocessor(dsn, images["train"], "bad-name")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {} LIMIT 0").format(
            sql.Identifier(packed + "_src"), sql.Identifier(images["train"])))
    conn.commit()
    try:
        with pytest.raises(UsageError, match="has no images"):
            training_preprocessor(dsn, packed + "_src", packed)
    finally:
        drop(conn, packed + "_src")
    assert not_there(conn, packed)


def test_default_buffer_size() -> None:
    assert default_buffer_size(100, 3072, 2) == 50
    assert default_buffer_size(101, 3072, 2) == 51
    assert default_buffer_size(1, 3072, 4) == 1
    big = default_buffer_size(60000, 32 * 32 * 3, 2)  # 30,000 per segment = 92 MB: split
    assert big * 32 * 32 * 3 <= MAX_BUFFER_BYTES
    assert math.ceil(30000 / big) == math.ceil(30000 * 3072 / MAX_BUFFER_BYTES)
