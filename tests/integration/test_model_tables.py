"""Model architecture and model selection tables against the real server."""

from __future__ import annotations

import json
import secrets

import pytest
from psycopg2 import sql

from gpdl_backend import keras_model
from gpdl_backend.errors import UsageError
from gpdl_backend.model_tables import (
    delete_keras_model,
    generate_model_configs,
    load_keras_model,
    load_model_selection_table,
)

pytestmark = pytest.mark.db

COMPILE = "loss='categorical_crossentropy', optimizer='Adam(lr=0.001)', metrics=['accuracy']"


def tiny_arch(units: int = 3) -> str:
    """A Keras 3 model taking 8x8x3 images, ``units`` classes."""
    keras = keras_model.import_keras()
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(units, activation="softmax")])
    return model.to_json()


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def arch_table(dsn: str) -> tuple[str, list[int]]:
    """An architecture table holding two tiny models."""
    table = unique("arch")
    ids = [load_keras_model(dsn, table, tiny_arch(3), name="three"),
           load_keras_model(dsn, table, json.loads(tiny_arch(4)), description="four")]
    return table, ids


def fetch(conn, query: sql.Composable, *params) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    conn.commit()
    return rows


def test_load_creates_madlib_table(conn, arch_table) -> None:
    table, ids = arch_table
    assert ids == [1, 2]
    rows = fetch(conn, sql.SQL(
        "SELECT model_id, model_arch::text, model_weights, name, description, "
        "__internal_madlib_id__ FROM {} ORDER BY 1").format(sql.Identifier(table)))
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        (1, None, "three", None), (2, None, None, "four")]
    assert json.loads(rows[0][1])["class_name"] == "Sequential"
    assert rows[0][5] != rows[1][5] and all(r[5] for r in rows)
    columns = fetch(conn, sql.SQL(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = %s ORDER BY ordinal_position"), table)
    assert columns == [("model_id", "integer"), ("model_arch", "json"),
                       ("model_weights", "bytea"), ("name", "text"), ("description", "text"),
                       ("__internal_madlib_id__", "text")]


def test_load_with_weights_and_explicit_id(dsn: str, conn) -> None:
    keras = keras_model.import_keras()
    model = keras.models.model_from_json(tiny_arch())
    weights = keras_model.weights_to_bytes(model)
    table = unique("arch_w")
    assert load_keras_model(dsn, table, model.to_json(), weights, model_id=7) == 7
    assert load_keras_model(dsn, table, model.to_json()) == 8  # the serial moved past 7
    stored = fetch(conn, sql.SQL("SELECT model_weights FROM {} WHERE model_id = 7").format(
        sql.Identifier(table)))[0][0]
    assert bytes(stored) == weights
    with pytest.raises(UsageError, match="model_weights has 8 bytes but"):
        load_keras_model(dsn, table, model.to_json(), b"\0" * 8)
    with pytest.raises(UsageError, match="model_id 7 is already in"):
        load_keras_model(dsn, table, model.to_json(), model_id=7)


@pytest.mark.parametrize(("arch", "message"), [
    ('{"class_name": "NoSuchModel", "config": {}}', "Could not locate class 'NoSuchModel'"),
    ('{"layers": []}', "not a Keras model"),
    ("{not json", "not valid JSON"),
])
def test_bad_architecture_refused_with_keras_message(dsn: str, conn, arch: str,
                                                     message: str) -> None:
    table = unique("arch_bad")
    with pytest.raises(UsageError, match=message):
        load_keras_model(dsn, table, arch)
    assert fetch(conn, sql.SQL("SELECT to_regclass(%s)"), table) == [(None,)]


@pytest.mark.parametrize("layers", [0, 1])
def test_a_model_without_input_shape_is_refused_in_one_line(dsn: str, conn,
                                                            layers: int) -> None:
    keras = keras_model.import_keras()
    arch = keras.Sequential([keras.layers.Dense(2)][:layers]).to_json()
    table = unique("arch_empty")
    with pytest.raises(UsageError, match=r"no input shape; start it with keras\.Input"):
        load_keras_model(dsn, table, arch)
    assert fetch(conn, sql.SQL("SELECT to_regclass(%s)"), table) == [(None,)]


def test_delete_drops_empty_table(dsn: str, conn) -> None:
    table = unique("arch_del")
    first = load_keras_model(dsn, table, tiny_arch())
    second = load_keras_model(dsn, table, tiny_arch())
    delete_keras_model(dsn, table, first)
    assert fetch(conn, sql.SQL("SELECT model_id FROM {}").format(sql.Identifier(table))) == [
        (second,)]
    with pytest.raises(UsageError, match=f"model_id {first} is not in"):
        delete_keras_model(dsn, table, first)
    delete_keras_model(dsn, table, second)
    assert fetch(conn, sql.SQL("SELECT to_regclass(%s)"), table) == [(None,)]


def test_selection_table_from_lists(dsn: str, conn, arch_table) -> None:
    arch, ids = arch_table
    mst = unique("mst")
    configs = load_model_selection_table(
        dsn, arch, mst, ids, [COMPILE, "loss='mse', optimizer='sgd'"],
        ["batch_size=4, epochs=1", "batch_size=8"])
    assert len(configs) == 8
    rows = fetch(conn, sql.SQL("SELECT * FROM {} ORDER BY mst_key").format(sql.Identifier(mst)))
    assert [tuple(r) for r in rows] == [
        (c.mst_key, c.model_id, c.compile_params, c.fit_params) for c in configs]
    assert rows[0][2] == ("loss='categorical_crossentropy',optimizer='Adam(learning_rate=0.001)',"
                          "metrics=['accuracy']")
    assert fetch(conn, sql.SQL("SELECT model_arch_table, object_table FROM {}").format(
        sql.Identifier(mst + "_summary"))) == [(arch, None)]
    columns = fetch(conn, sql.SQL(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = %s ORDER BY ordinal_position"), mst)
    assert columns == [("mst_key", "integer"), ("model_id", "integer"),
                       ("compile_params", "text"), ("fit_params", "text")]
    with pytest.raises(UsageError, match="already exists"):
        load_model_selection_table(dsn, arch, mst, ids, [COMPILE], ["batch_size=4"])
    again = load_model_selection_table(dsn, arch, mst, ids[:1], [COMPILE], ["batch_size=4"],
                                       if_exists="replace")
    assert [c.mst_key for c in again] == [1]
    assert fetch(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(mst))) == [(1,)]


def test_unknown_model_id_refused(dsn: str, conn, arch_table) -> None:
    arch, _ = arch_table
    mst = unique("mst_bad")
    with pytest.raises(UsageError, match=r"model ids \[99\] are not in model architecture"):
        load_model_selection_table(dsn, arch, mst, [1, 99], [COMPILE], ["batch_size=4"])
    with pytest.raises(UsageError, match="does not exist"):
        generate_model_configs(dsn, unique("no_arch"), mst, [1], {"loss": ["mse"],
                               "optimizer_params_list": [{"optimizer": ["SGD"]}]}, {})
    with pytest.raises(UsageError, match=r"compile_params_list\[0\]"):
        load_model_selection_table(dsn, arch, mst, [1], ["loss='nope'"], ["batch_size=4"])
    assert fetch(conn, sql.SQL("SELECT to_regclass(%s)"), mst) == [(None,)]


def test_grid_then_random_appends(dsn: str, conn, arch_table) -> None:
    arch, ids = arch_table
    mst = unique("mst_grid")
    grid = {"loss": ["categorical_crossentropy"],
            "optimizer_params_list": [{"optimizer": ["Adam", "RMSprop"], "lr": [1e-3, 1e-4]}],
            "metrics": ["accuracy"]}
    configs = generate_model_configs(dsn, arch, mst, ids, grid,
                                      {"batch_size": [64, 128], "epochs": [1]})
    assert [c.mst_key for c in configs] == list(range(1, 17))
    random_grid = {"loss": ["categorical_crossentropy"],
                   "optimizer_params_list": [{"optimizer": ["SGD"],
                                              "lr": [1e-4, 1e-1, "log"]}]}
    drawn = generate_model_configs(dsn, arch, mst, ids[:1], str(random_grid),
                                   "{'batch_size': [32]}", search_type="rand", num_configs=3,
                                   random_state=7)
    assert [c.mst_key for c in drawn] == [17, 18, 19]
    rows = fetch(conn, sql.SQL("SELECT mst_key, model_id, compile_params FROM {} "
                               "ORDER BY mst_key").format(sql.Identifier(mst)))
    assert len(rows) == 19 and all("SGD(learning_rate=" in r[2] for r in rows[16:])
    again = generate_model_configs(dsn, arch, mst, ids, grid,
                                   {"batch_size": [64, 128], "epochs": [1]})
    assert again == []  # every configuration is already there
    with pytest.raises(UsageError, match="already exists"):
        generate_model_configs(dsn, arch, mst, ids, grid, {}, if_exists="fail")
    other = unique("arch_other")
    load_keras_model(dsn, other, tiny_arch())
    with pytest.raises(UsageError, match="was made for model architecture table"):
        generate_model_configs(dsn, other, mst, [1], grid, {})
