"""Prediction against the real server, with a tiny model trained here on colour classes."""

from __future__ import annotations

import io
import itertools
import secrets
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image
from psycopg2 import sql

from gpdl_backend import keras_model
from gpdl_backend.errors import ImageDecodeError, UsageError
from gpdl_backend.predict import parse_pred_type, predict, predict_image
from gpdl_backend.server import resolver

pytestmark = pytest.mark.db

CLASSES = ["blue", "green", "red"]
SHAPE = (8, 8, 3)
EPS = 1e-5


@dataclass(frozen=True)
class Trained:
    """A model table, an image table and the in-process predictions to compare with."""

    model_table: str
    image_table: str
    probs: dict[str, np.ndarray]  # image id -> class probabilities (in-process Keras)
    untrained_probs: dict[str, np.ndarray]  # the same for mst_key 2
    labels: dict[str, str]
    model: object


def colour_images(rng: np.random.Generator, label: str, count: int,
                  size: tuple[int, int] = SHAPE[:2]) -> np.ndarray:
    """Noisy images whose strongest channel is the label's colour."""
    images = rng.integers(0, 90, size=(count, *size, 3), dtype=np.uint8)
    images[..., 2 - CLASSES.index(label)] += 150  # red -> channel 0, blue -> channel 2
    return images


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def create_image_table(conn, table: str, rows: list[tuple[list[str], list[str], np.ndarray]]
                       ) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "CREATE TABLE {} (fullpaths text[], names text[], y text[], dims integer[], "
            "x bytea, pixels integer[])").format(sql.Identifier(table)))
        for paths, labels, pixels in rows:
            cur.execute(sql.SQL("INSERT INTO {} (fullpaths, names, y, dims, x) "
                                "VALUES (%s, %s, %s, %s, %s)").format(sql.Identifier(table)),
                        (paths, [p.rsplit("/", 1)[-1] for p in paths], labels,
                         list(pixels.shape), pixels.tobytes()))
    conn.commit()


def create_model_table(conn, table: str, arch: str, weights: list[bytes]) -> None:
    """The trainer's output layout: ``<table>`` and ``<table>_summary``."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (mst_key integer, model_weights bytea, "
                            "model_arch json)").format(sql.Identifier(table)))
        for key, blob in enumerate(weights, start=1):
            cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(
                sql.Identifier(table)), (key, blob, arch))
        cur.execute(sql.SQL("CREATE TABLE {} (class_values text[], normalizing_const real, "
                            "num_classes integer)").format(sql.Identifier(table + "_summary")))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, 255, 3)").format(
            sql.Identifier(table + "_summary")), (CLASSES,))
    conn.commit()


@pytest.fixture(scope="module")
def trained(dsn: str) -> Trained:
    import psycopg2

    keras = keras_model.import_keras()
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    train = np.concatenate([colour_images(rng, c, 40) for c in CLASSES])
    labels = np.repeat(np.arange(3), 40)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(train / 255.0, labels, epochs=30, batch_size=32, verbose=0)
    untrained = keras.models.model_from_json(model.to_json())
    rows, probs, untrained_probs, truth = [], {}, {}, {}
    for row in range(8):
        label = CLASSES[row % 3]
        pixels = colour_images(rng, label, 5)
        paths = [f"/data/{label}/img_{row}_{i}.png" for i in range(5)]
        rows.append((paths, [label] * 5, pixels))
        scaled = pixels.astype(np.float32) / np.float32(255)
        probs.update(zip(paths, model.predict(scaled, verbose=0), strict=True))
        untrained_probs.update(zip(paths, untrained.predict(scaled, verbose=0), strict=True))
        truth.update(dict.fromkeys(paths, label))
    model_table, image_table = unique("model"), unique("images")
    conn = psycopg2.connect(dsn)
    try:
        create_image_table(conn, image_table, rows)
        create_model_table(conn, model_table, model.to_json(), [
            keras_model.weights_to_bytes(model), keras_model.weights_to_bytes(untrained)])
    finally:
        conn.close()
    return Trained(model_table, image_table, probs, untrained_probs, truth, model)


def output_rows(conn, table: str) -> dict[str, list[tuple]]:
    """Output rows by image id, each ``(class_name, class_value, prob, rank)`` by rank."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT id, class_name, class_value, prob, rank FROM {} "
                            "ORDER BY id, rank").format(sql.Identifier(table)))
        rows = cur.fetchall()
    conn.commit()
    by_id: dict[str, list[tuple]] = defaultdict(list)
    for image_id, *rest in rows:
        by_id[image_id].append(tuple(rest))
    return dict(by_id)


def check_ranked(rows: list[tuple], probs: np.ndarray) -> None:
    """Ranks from 1, probabilities descending and equal to in-process Keras's."""
    assert [r[3] for r in rows] == list(range(1, len(rows) + 1))
    assert all(a[2] >= b[2] for a, b in itertools.pairwise(rows))
    for name, value, prob, _ in rows:
        assert CLASSES[value] == name
        assert prob == pytest.approx(float(probs[value]), abs=EPS)
    assert sum(r[2] for r in rows) <= 1 + EPS


def test_parse_pred_type() -> None:
    assert parse_pred_type("response") == ("response", None, None)
    assert parse_pred_type("PROB") == ("prob", None, None)
    assert parse_pred_type(2) == ("top_k", 2, None)
    assert parse_pred_type("0.25") == ("threshold", None, 0.25)
    for bad in (0, -1, 1.5, True, "best", None):
        with pytest.raises(UsageError, match="pred_type"):
            parse_pred_type(bad)


def test_response_is_top_class(dsn: str, conn, trained: Trained) -> None:
    out = unique("pred")
    result = predict(dsn, trained.model_table, trained.image_table, out, mst_key=1)
    assert (result.images, result.rows, result.mst_key) == (40, 40, 1)
    rows = output_rows(conn, out)
    assert set(rows) == set(trained.probs)
    for image_id, ranked in rows.items():
        assert len(ranked) == 1
        check_ranked(ranked, trained.probs[image_id])
        assert ranked[0][1] == int(np.argmax(trained.probs[image_id]))
        assert ranked[0][0] == trained.labels[image_id]  # the model learned the colours


@pytest.mark.parametrize(("pred_type", "per_image"), [("prob", 3), (2, 2)])
def test_prob_and_top_k_are_ranked(dsn: str, conn, trained: Trained, pred_type,
                                   per_image: int) -> None:
    out = unique("pred")
    result = predict(dsn, trained.model_table, trained.image_table, out, pred_type, mst_key=2)
    assert result.rows == 40 * per_image
    rows = output_rows(conn, out)
    assert set(rows) == set(trained.untrained_probs)
    for image_id, ranked in rows.items():
        assert len(ranked) == per_image
        check_ranked(ranked, trained.untrained_probs[image_id])
        if per_image == 3:
            assert sum(r[2] for r in ranked) == pytest.approx(1.0, abs=EPS)


def test_threshold_keeps_likely_classes(dsn: str, conn, trained: Trained) -> None:
    out = unique("pred")
    predict(dsn, trained.model_table, trained.image_table, out, 0.02, mst_key=1)
    rows = output_rows(conn, out)
    for image_id, probs in trained.probs.items():
        ranked = rows.get(image_id, [])
        assert {r[1] for r in ranked} == {c for c in range(3) if probs[c] >= 0.02}
        check_ranked(ranked, probs)


def test_parallel_equals_single_segment(dsn: str, conn, trained: Trained) -> None:
    with conn.cursor() as cur:  # the two virtual segments each get a share of the rows
        cur.execute(sql.SQL("SELECT abs(hashtext(fullpaths[1])::bigint) % 2, count(*) FROM {} "
                            "GROUP BY 1 ORDER BY 1").format(sql.Identifier(trained.image_table)))
        assert [r[0] for r in cur.fetchall()] == [0, 1]
    conn.commit()
    single, parallel = unique("pred1"), unique("pred2")
    predict(dsn, trained.model_table, trained.image_table, single, "prob", 1, num_segments=1)
    predict(dsn, trained.model_table, trained.image_table, parallel, "prob", 1, num_segments=2)

    def rounded(table: str) -> dict:
        return {i: [(n, v, round(p, 5), r) for n, v, p, r in rows]
                for i, rows in output_rows(conn, table).items()}

    assert rounded(single) == rounded(parallel)


def test_bad_inputs_refused_and_nothing_left(dsn: str, conn, trained: Trained) -> None:
    rng = np.random.default_rng(2)
    small = unique("small")
    create_image_table(conn, small, [(["/s/red/a.png", "/s/red/b.png"], ["red", "red"],
                                      colour_images(rng, "red", 2, (4, 4)))])
    out = unique("pred")
    with pytest.raises(UsageError, match=r"images are 4x4x3 but the model expects 8x8x3"):
        predict(dsn, trained.model_table, small, out, mst_key=1)
    with pytest.raises(UsageError, match="holds 2 configurations"):
        predict(dsn, trained.model_table, trained.image_table, out)
    with pytest.raises(UsageError, match="mst_key 9 is not in"):
        predict(dsn, trained.model_table, trained.image_table, out, mst_key=9)
    with pytest.raises(UsageError, match="must be an array column"):
        predict(dsn, trained.model_table, trained.image_table, out, mst_key=1, id_col="x")
    with pytest.raises(UsageError, match=r"image table .* does not exist"):
        predict(dsn, trained.model_table, unique("missing"), out, mst_key=1)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = %s "
                    "OR relname LIKE 'gpdl_predicting_%%'", (out,))
        assert cur.fetchone()[0] == 0
        cur.execute(sql.SQL("CREATE TABLE {} (placeholder integer)").format(
            sql.Identifier(out)))
    conn.commit()
    with pytest.raises(UsageError, match="already exists"):
        predict(dsn, trained.model_table, trained.image_table, out, mst_key=1)
    result = predict(dsn, trained.model_table, trained.image_table, out, 1, mst_key=1,
                     if_exists="replace")
    assert result.rows == 40


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_predict_image_matches_keras(dsn: str, trained: Trained, image_format: str) -> None:
    rng = np.random.default_rng(3)
    pixels = colour_images(rng, "green", 1, (16, 16))[0]  # resized to 8x8 by the server
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, quality=95)
    data = buffer.getvalue()
    got = predict_image(dsn, trained.model_table, 1, data, k=2)
    expected = trained.model.predict(
        resolver.decode(data, "RGB", SHAPE[:2])[np.newaxis] / np.float32(255), verbose=0)[0]
    assert [r["rank"] for r in got] == [1, 2]
    assert got[0]["class_value"] == int(np.argmax(expected))
    assert got[0]["class_name"] == "green"
    for row in got:
        assert row["prob"] == pytest.approx(float(expected[row["class_value"]]), abs=1e-4)


def test_predict_image_refuses_bad_input(dsn: str, trained: Trained) -> None:
    with pytest.raises(ImageDecodeError, match="not an image"):
        predict_image(dsn, trained.model_table, 1, b"definitely not a png")
    with pytest.raises(UsageError, match="pass mst_key"):
        predict_image(dsn, trained.model_table, None, b"x")
    with pytest.raises(UsageError, match="does not exist"):
        predict_image(dsn, unique("missing"), 1, b"x")
