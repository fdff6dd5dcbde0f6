"""``gpdl.madlib_keras_predict_byom``: predict with a model architecture table's row, from SQL.

A model trained here with ``gpdl.madlib_keras_fit_multiple_model`` is loaded
into an architecture table with its weights (``gpdl.load_keras_model(...,
model_weights => ...)``); predicting with that row must give what
``gpdl.madlib_keras_predict`` gives for the fit's output. Every refusal comes
before any table exists.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from dataclasses import dataclass

import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend import predict
from gpdl_backend.client import TableName
from tests.integration import trainer_helpers as h
from tests.integration.plain_sql import refusal, run

pytestmark = pytest.mark.db

IMAGES = "trainer_valid_images"  # 80 images of 8x8x3, loaded by trainer_helpers
EPS = 1e-6


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Fitted:
    """A fit's output and the same model as a row of an architecture table."""

    output: str
    arch_table: str
    model_id: int  # the trained weights
    untrained_id: int  # the architecture without weights
    class_values: list[str]
    normalizing_const: float


@pytest.fixture(scope="module")
def fitted(dsn: str, shared_tmp_factory) -> Fitted:
    h.prepare_data(dsn, shared_tmp_factory("gpdl-byom-"))
    good = h.arch_table(dsn)["good"]
    mst, out, arch = unique("byom_mst"), unique("byom_fit"), unique("byom_arch")
    run(dsn, "SELECT gpdl.load_model_selection_table(%s, %s, %s, %s, %s)",
        (h.ARCH, mst, [good], [h.COMPILE], [h.FIT]))
    run(dsn, "SELECT gpdl.madlib_keras_fit_multiple_model(%s, %s, %s, 1)", (h.TRAIN, out, mst))
    model_arch, weights = run(dsn, sql.SQL("SELECT model_arch::text, model_weights FROM {} "
                                           "WHERE mst_key = 1").format(sql.Identifier(out)))[0]
    class_values, normalizing_const = run(dsn, sql.SQL(
        "SELECT class_values, normalizing_const FROM {}").format(
        sql.Identifier(out + "_summary")))[0]
    model_id = run(dsn, "SELECT gpdl.load_keras_model(%s, %s::json, model_weights => %s, "
                        "name => 'trained')", (arch, model_arch, weights))[0][0]
    untrained = run(dsn, "SELECT gpdl.load_keras_model(%s, %s::json)", (arch, model_arch))[0][0]
    return Fitted(out, arch, model_id, untrained, list(class_values), float(normalizing_const))


def predictions(dsn: str, table: str) -> dict[str, list[tuple]]:
    """Rows by image id, each ``(class_name, class_value, prob, rank)``, by rank."""
    by_id: dict[str, list[tuple]] = defaultdict(list)
    for image_id, *rest in run(dsn, sql.SQL(
            "SELECT id, class_name, class_value, prob, rank FROM {} ORDER BY id, rank").format(
            sql.Identifier(table))):
        by_id[image_id].append(tuple(rest))
    return dict(by_id)


def byom(dsn: str, fitted: Fitted, output: str, **named: object) -> dict:
    """``gpdl.madlib_keras_predict_byom`` of the trained row; its JSON result."""
    options = {"pred_type": "prob", "class_values": fitted.class_values,
               "normalizing_const": fitted.normalizing_const, **named}
    arguments = sql.SQL("").join(sql.SQL(", {} => {}").format(sql.Identifier(k), sql.Literal(v))
                                 for k, v in options.items() if v is not None)
    statement = sql.SQL("SELECT gpdl.madlib_keras_predict_byom({}, {}, {}, 'fullpaths', 'x', "
                        "{}{})").format(sql.Literal(fitted.arch_table),
                                        sql.Literal(fitted.model_id), sql.Literal(IMAGES),
                                        sql.Literal(output), arguments)
    value = run(dsn, statement)[0][0]
    return json.loads(value) if isinstance(value, str) else value


def test_byom_equals_predict_of_the_fit(dsn: str, fitted: Fitted) -> None:
    from_fit, from_arch = unique("byom_pred_fit"), unique("byom_pred_arch")
    run(dsn, "SELECT gpdl.madlib_keras_predict(%s, %s, 'fullpaths', 'x', %s, 'prob', FALSE, 1)",
        (fitted.output, IMAGES, from_fit))
    result = byom(dsn, fitted, from_arch)
    assert (result["images"], result["rows"]) == (80, 80 * h.NUM_CLASSES)
    assert (result["model_id"], result["mst_key"]) == (fitted.model_id, None)
    expected, got = predictions(dsn, from_fit), predictions(dsn, from_arch)
    assert len(expected) == 80 and set(got) == set(expected)
    for image_id, rows in expected.items():
        assert [r[:2] + r[3:] for r in got[image_id]] == [r[:2] + r[3:] for r in rows]
        for mine, theirs in zip(got[image_id], rows, strict=True):
            assert mine[2] == pytest.approx(theirs[2], abs=EPS)
    # the trained model is not uniform: the comparison above compares something
    assert max(rows[0][2] for rows in got.values()) > 1.0 / h.NUM_CLASSES + 0.05


def test_default_classes_and_normalizing_const(dsn: str, fitted: Fitted) -> None:
    """MADlib's defaults: class values '0'..'n-1' and pixels divided by 1.0."""
    out, scaled = unique("byom_defaults"), unique("byom_scaled")
    byom(dsn, fitted, scaled, pred_type="response")
    byom(dsn, fitted, out, pred_type="response", class_values=None, normalizing_const=None)
    default_rows, scaled_rows = predictions(dsn, out), predictions(dsn, scaled)
    assert len(default_rows) == 80
    for image_id, rows in default_rows.items():
        ((name, value, _, rank),) = rows
        assert (name, rank) == (str(value), 1)
        assert scaled_rows[image_id][0][0] == fitted.class_values[scaled_rows[image_id][0][1]]
    # raw 0..255 pixels instead of 0..1 change what the model sees
    assert any(default_rows[i][0][2] != pytest.approx(scaled_rows[i][0][2], abs=1e-3)
               for i in default_rows)


@pytest.mark.greenplum_only(reason="where Greenplum runs the prediction (its plan)")
def test_byom_predicts_on_the_segments(dsn: str, fitted: Fitted) -> None:
    """Every segment predicts its own images; only the model row is sent to all."""
    staging = unique("byom_explain")
    run(dsn, sql.SQL("CREATE TABLE {} (id text, class_name text, class_value integer, "
                     "prob double precision, rank integer) DISTRIBUTED RANDOMLY").format(
        sql.Identifier(staging)))
    try:
        source = predict._byom_source(TableName(None, fitted.arch_table), fitted.model_id,
                                      fitted.class_values, fitted.normalizing_const)
        statement = predict._insert_statement(
            TableName(None, staging), source, TableName(None, IMAGES), "fullpaths", "prob",
            None, None, sql.SQL("true"))
        lines = [row[0] for row in run(dsn, sql.SQL("EXPLAIN VERBOSE ") + statement)]
    finally:
        run(dsn, sql.SQL("DROP TABLE {}").format(sql.Identifier(staging)))
    assert any("predict_rows" in line for line in lines), "\n".join(lines)
    assert not any("Gather Motion" in line for line in lines), "\n".join(lines)
    assert any("Broadcast Motion" in line for line in lines), "\n".join(lines)


def nothing_made(dsn: str, output: str) -> bool:
    """No output table and no staging table predicting into it."""
    return not run(dsn, "SELECT 1 FROM pg_class WHERE relname = %s OR (relname LIKE "
                        "'gpdl_predicting_%%' AND obj_description(oid, 'pg_class') LIKE %s)",
                   (output, f"%prediction into %{output};%"))


@pytest.fixture(scope="module")
def small_images(dsn: str) -> str:
    """An image table of 4x4x3 images (the model takes 8x8x3)."""
    table = unique("byom_small")
    run(dsn, sql.SQL("CREATE TABLE {} (fullpaths text[], names text[], y text[], "
                     "dims integer[], x bytea)").format(sql.Identifier(table)))
    run(dsn, sql.SQL("INSERT INTO {} VALUES (ARRAY['/s/a.png'], ARRAY['a.png'], ARRAY['a'], "
                     "ARRAY[1, 4, 4, 3], %s)").format(sql.Identifier(table)),
        (psycopg2.Binary(bytes(48)),))
    return table


REFUSALS = [
    ({"arch": "bad name!"}, "unsafe table name 'bad name!'"),
    ({"output": "bad;name"}, "unsafe table name 'bad;name'"),
    ({"test": "{missing}"}, "image table {missing} does not exist"),
    ({"arch": "{missing}"}, "model architecture table {missing} does not exist"),
    ({"model_id": 9999}, "model_id 9999 is not in"),
    ({"model_id": None}, "model_id must be an integer"),
    ({"model_id": "{untrained}"}, "has no model_weights"),
    ({"class_values": ["a", "b"]}, "the model outputs 4 values but there are 2 class values"),
    ({"test": "{small}"}, "images are 4x4x3 but the model expects 8x8x3"),
    ({"output": "{existing}"}, "already exists"),
    ({"varname": "pixels"}, "independent_varname must be 'x'"),
    ({"use_gpus": True}, "use_gpus"),
    ({"pred_type": "best"}, "pred_type must be"),
    ({"normalizing_const": 0}, "normalizing_const must be a positive number"),
]


@pytest.mark.parametrize(("change", "expected"), REFUSALS,
                         ids=[f"{next(iter(c))}-{i}" for i, (c, _) in enumerate(REFUSALS)])
def test_refusals_leave_no_table(dsn: str, fitted: Fitted, small_images: str, change: dict,
                                 expected: str) -> None:
    names = {"missing": unique("byom_missing"), "untrained": fitted.untrained_id,
             "small": small_images, "existing": unique("byom_existing")}
    run(dsn, sql.SQL("CREATE TABLE {} (placeholder integer)").format(
        sql.Identifier(names["existing"])))
    arguments = {"arch": fitted.arch_table, "model_id": fitted.model_id, "test": IMAGES,
                 "varname": "x", "output": unique("byom_refused"), "pred_type": "prob",
                 "use_gpus": False, "class_values": None, "normalizing_const": 1.0}
    for key, value in change.items():
        arguments[key] = names[value[1:-1]] if isinstance(value, str) and \
            value.startswith("{") else value
    message = refusal(dsn, "SELECT gpdl.madlib_keras_predict_byom(%(arch)s, %(model_id)s, "
                           "%(test)s, 'fullpaths', %(varname)s, %(output)s, %(pred_type)s, "
                           "%(use_gpus)s, %(class_values)s, %(normalizing_const)s)", arguments)
    assert message.startswith("UsageError: ")
    assert expected.format(**names) in message, message
    if arguments["output"] != names["existing"]:
        assert nothing_made(dsn, arguments["output"])
    run(dsn, sql.SQL("DROP TABLE {}").format(sql.Identifier(names["existing"])))
