"""Shared set-up of the trainer tests: tiny learnable data, tiny models, config tables.

Everything here is idempotent (it looks for its tables first), so the two
trainer test modules can both ask for the data and only the first one pays.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

IMAGE_SIZE = 8
NUM_CLASSES = 4
TRAIN_IMAGES = 320
VALIDATION_IMAGES = 80
TRAIN = "trainer_train"
VALIDATION = "trainer_valid"
ARCH = "trainer_arch"

COMPILE = ("loss='categorical_crossentropy', optimizer='Adam(learning_rate=0.01)', "
           "metrics=['accuracy']")
COMPILE_SLOW = ("loss='categorical_crossentropy', optimizer='SGD(learning_rate=0.05)', "
                "metrics=['accuracy']")
FIT = "batch_size=16, epochs=1"


def model_json(image_shape: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, 3),
               num_classes: int = NUM_CLASSES, filters: int = 4) -> str:
    """A tiny CNN's Keras JSON (built in this process, never trained here)."""
    from gpdl_backend.keras_model import import_keras

    keras = import_keras()
    model = keras.Sequential([
        keras.layers.Input(shape=image_shape),
        keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    return model.to_json()


def _exists(cur, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return bool(cur.fetchone()[0])


def prepare_data(dsn: str, directory: Path) -> None:
    """Packed ``TRAIN`` / ``VALIDATION`` tables of learnable 8×8 RGB images (once)."""
    from gpdl_backend.datasets import write_synthetic_images
    from gpdl_backend.images.loader import load_images
    from gpdl_backend.preprocess import training_preprocessor, validation_preprocessor

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        if _exists(cur, TRAIN) and _exists(cur, VALIDATION):
            return
    for table, count, seed in (("trainer_images", TRAIN_IMAGES, 1),
                               ("trainer_valid_images", VALIDATION_IMAGES, 2)):
        folder = directory / table
        write_synthetic_images(folder, count, size=(IMAGE_SIZE, IMAGE_SIZE),
                               num_classes=NUM_CLASSES, seed=seed, processes=1)
        load_images(dsn, str(folder), table, if_exists="replace")
    training_preprocessor(dsn, "trainer_images", TRAIN, buffer_size=40, if_exists="replace")
    validation_preprocessor(dsn, "trainer_valid_images", VALIDATION, TRAIN, buffer_size=40,
                            if_exists="replace")


def arch_table(dsn: str) -> dict[str, int]:
    """The architecture table ``ARCH`` with a good model and a few bad ones (once).

    Returns:
        ``{"good": id, "big": id, "wrong_shape": id, "wrong_classes": id, "broken": id}``.
    """
    names = ("good", "big", "wrong_shape", "wrong_classes", "broken")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        if not _exists(cur, ARCH):
            cur.execute(sql.SQL(
                "CREATE TABLE {} (model_id serial PRIMARY KEY, model_arch json, "
                "model_weights bytea, name text, description text, "
                "__internal_madlib_id__ text)").format(sql.Identifier(ARCH)))
            broken = json.loads(model_json())
            broken["config"]["layers"][1]["class_name"] = "NoSuchLayer"
            arches = [model_json(), model_json(filters=16),
                      model_json(image_shape=(IMAGE_SIZE + 2, IMAGE_SIZE, 3)),
                      model_json(num_classes=NUM_CLASSES + 1), json.dumps(broken)]
            for name, arch in zip(names, arches, strict=True):
                cur.execute(sql.SQL("INSERT INTO {} (model_arch, name) VALUES (%s, %s)").format(
                    sql.Identifier(ARCH)), (arch, name))
        cur.execute(sql.SQL("SELECT name, model_id FROM {}").format(sql.Identifier(ARCH)))
        return dict(cur.fetchall())


def mst_table(dsn: str, name: str, rows: list[tuple[int, str, str]]) -> str:
    """A model selection table (replaced) with ``(model_id, compile, fit)`` rows, as SQL.

    Written directly (not through ``load_model_selection_table``) so that a test
    can put configurations in it that the loader would refuse.
    """
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        table, summary = sql.Identifier(name), sql.Identifier(name + "_summary")
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(table, summary))
        cur.execute(sql.SQL("CREATE TABLE {} (mst_key serial PRIMARY KEY, model_id integer, "
                            "compile_params text, fit_params text)").format(table))
        cur.execute(sql.SQL("CREATE TABLE {} (model_arch_table text, object_table text)")
                    .format(summary))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, NULL)").format(summary), (ARCH,))
        for model_id, compile_params, fit_params in rows:
            cur.execute(sql.SQL("INSERT INTO {} (model_id, compile_params, fit_params) "
                                "VALUES (%s, %s, %s)").format(table),
                        (model_id, compile_params, fit_params))
    return name


def drop_output(dsn: str, output: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(
            sql.Identifier(output + suffix)
            for suffix in ("", "_info", "_summary", "_progress"))))


def output_tables_exist(dsn: str, output: str) -> list[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        return [output + s for s in ("", "_info", "_summary", "_progress")
                if _exists(cur, output + s)]


def fetch(dsn: str, query: sql.Composable | str, params: Any = None) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def columns(dsn: str, table: str) -> list[str]:
    return [r[0] for r in fetch(
        dsn, "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped", (table,))]


def progress(dsn: str, output: str) -> list[tuple[int, int, int]]:
    """``(iteration, mst_key, segment)`` of every committed unit, in commit order."""
    return fetch(dsn, sql.SQL("SELECT iteration, mst_key, segment FROM {} "
                              "ORDER BY finished_at").format(
        sql.Identifier(output + "_progress")))


def progress_count(dsn: str, output: str) -> int:
    return fetch(dsn, sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(output + "_progress")))[0][0]


def assert_exact_visits(dsn: str, output: str, configs: list[int], segments: int,
                        iterations: int) -> None:
    """Every config visited every segment exactly once per iteration, nothing more."""
    rows = progress(dsn, output)
    counts = Counter(rows)
    duplicates = {k: v for k, v in counts.items() if v > 1}
    assert not duplicates, f"units committed twice: {duplicates}"
    expected = {(i, c, s) for i in range(iterations) for c in configs for s in range(segments)}
    assert set(counts) == expected, (
        f"missing {sorted(expected - set(counts))}, extra {sorted(set(counts) - expected)}")


def weights(dsn: str, output: str) -> dict[int, bytes]:
    return {mst: bytes(w) for mst, w in fetch(dsn, sql.SQL(
        "SELECT mst_key, model_weights FROM {}").format(sql.Identifier(output)))}


def info(dsn: str, output: str) -> dict[int, dict[str, Any]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} ORDER BY mst_key").format(
            sql.Identifier(output + "_info")))
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def summary(dsn: str, output: str) -> dict[str, Any]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(output + "_summary")))
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def segment_pids(dsn: str, output: str) -> list[int]:
    """Backends of the job's segment sessions that are running a statement now."""
    return [r[0] for r in fetch(
        dsn, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s "
        "AND state = 'active'", (f"gpdl:{output}:seg%",))]


def unit_processes(dsn: str, output: str) -> list[int]:
    """Server processes running the job's units now, busiest segment first.

    Greenplum: the segment processes of the job's segment sessions (where the
    training runs); PostgreSQL: their backends.
    """
    if fetch(dsn, "SELECT to_regclass('pg_catalog.gp_stat_activity') IS NULL")[0][0]:
        return segment_pids(dsn, output)
    # segment processes carry no application_name: find them by their session
    return [r[0] for r in fetch(
        dsn, "SELECT s.pid FROM gp_stat_activity s JOIN pg_stat_activity c "
        "ON c.sess_id = s.sess_id WHERE s.gp_segment_id >= 0 AND c.application_name LIKE %s "
        "AND c.state = 'active' AND s.state = 'active' ORDER BY s.wait_event IS NOT NULL",
        (f"gpdl:{output}:seg%",))]


def driver_log(dsn: str, job: str) -> str:
    """The end of a job's driver log (on this host, in the coordinator's data directory)."""
    path = Path(fetch(dsn, "SHOW data_directory")[0][0]) / "gpdl_jobs" / f"{job}.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else f"no {path}"
