"""Several metrics per run, and madlib_keras_evaluate on the segments, against the real server.

One job trains three configurations (three metrics, MADlib's single metric, no
metric) with a validation table; the values it records are checked against
what Keras computes in this process for the same weights on the same rows,
and ``gpdl.madlib_keras_evaluate`` must give the job's last validation values
for the same weights and table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend import keras_model
from gpdl_backend.client import server_error
from gpdl_backend.errors import UsageError
from gpdl_backend.evaluate import evaluate
from gpdl_backend.mop.job import fit_multiple_model
from gpdl_backend.selection import compile_kwargs, parse_compile_params
from tests.integration import trainer_helpers as h
from tests.integration.plain_sql import run

pytestmark = pytest.mark.db

JOB = "me_job"
METRICS = ["accuracy", "mae", "top_k_categorical_accuracy"]
COMPILE_METRICS = ("loss='categorical_crossentropy', optimizer='Adam(learning_rate=0.01)', "
                   f"metrics={METRICS!r}")
COMPILE_NO_METRIC = "loss='categorical_crossentropy', optimizer='Adam(learning_rate=0.01)'"
ITERATIONS = 2
OTHER_CLASSES = "me_other_classes"
REL = 1e-4  # float32 sums in another order (per segment and batch) than one Keras call


def exists(dsn: str, table: str) -> bool:
    return run(dsn, "SELECT to_regclass(%s) IS NOT NULL", (table,))[0][0]


@pytest.fixture(scope="module")
def job(dsn: str, shared_tmp_factory) -> Iterator[dict[int, str]]:
    """The finished job; its configurations' compile parameters by mst_key."""
    h.prepare_data(dsn, shared_tmp_factory("gpdl-metrics-"))
    good = h.arch_table(dsn)["good"]
    compiles = {1: COMPILE_METRICS, 2: h.COMPILE, 3: COMPILE_NO_METRIC}
    h.mst_table(dsn, "me_mst", [(good, compiles[k], h.FIT) for k in sorted(compiles)])
    h.drop_output(dsn, JOB)
    fit_multiple_model(dsn, h.TRAIN, JOB, "me_mst", ITERATIONS, validation_table=h.VALIDATION,
                       metrics_compute_frequency=1, seed=3)
    yield compiles
    h.drop_output(dsn, JOB)


def keras_on_rows(dsn: str, mst_key: int, packed: str, compile_params: str) -> dict:
    """Keras's own evaluate of the job's weights for ``mst_key`` on every row of ``packed``."""
    (arch, weights), = h.fetch(dsn, sql.SQL(
        "SELECT model_arch, model_weights FROM {} WHERE mst_key = %s").format(
        sql.Identifier(JOB)), (mst_key,))
    (norm,), = h.fetch(dsn, sql.SQL("SELECT normalizing_const FROM {}").format(
        sql.Identifier(packed + "_summary")))
    rows = h.fetch(dsn, sql.SQL("SELECT x, y, x_shape FROM {} ORDER BY __dist_key__, "
                                "buffer_id").format(sql.Identifier(packed)))
    x = np.concatenate([np.frombuffer(bytes(b), np.uint8).reshape(shape)
                        for b, _, shape in rows]).astype(np.float32) / np.float32(norm)
    labels = np.concatenate([np.frombuffer(bytes(y), ">i2") for _, y, _ in rows])
    model = keras_model.build_model(arch)
    keras_model.set_weights_from_bytes(model, bytes(weights))
    model.compile(**compile_kwargs(parse_compile_params(compile_params)))
    return model.evaluate(x, np.eye(h.NUM_CLASSES, dtype=np.float32)[labels], verbose=0,
                          return_dict=True) | {"images": len(labels)}


# ------------------------------------------------------------------ several metrics
def test_every_metric_is_recorded_and_madlib_columns_hold_the_first(dsn: str, job) -> None:
    row = h.info(dsn, JOB)[1]
    assert row["metrics_type"] == METRICS
    assert set(h.columns(dsn, JOB + "_info")) >= {
        "training_metrics_all", "training_metrics_all_history",
        "validation_metrics_all", "validation_metrics_all_history"}
    for side in ("training", "validation"):
        history = row[f"{side}_metrics_all_history"]
        assert len(history) == ITERATIONS and all(len(r) == len(METRICS) for r in history)
        assert history[-1] == row[f"{side}_metrics_all"]
        # MADlib's columns: the first metric, as before
        assert row[f"{side}_metrics"] == [r[0] for r in history]
        assert row[f"{side}_metrics_final"] == row[f"{side}_metrics_all"][0]
    accuracy, mae, _ = row["validation_metrics_all"]
    assert accuracy != pytest.approx(mae)


@pytest.mark.parametrize("side, packed", [("training", h.TRAIN), ("validation", h.VALIDATION)])
def test_recorded_metrics_are_what_keras_computes(dsn: str, job, side: str, packed: str) -> None:
    row = h.info(dsn, JOB)[1]
    expected = keras_on_rows(dsn, 1, packed, COMPILE_METRICS)
    assert row[f"{side}_loss_final"] == pytest.approx(expected["loss"], rel=REL)
    assert row[f"{side}_metrics_all"] == pytest.approx([expected[m] for m in METRICS],
                                                       rel=REL, abs=1e-6)


def test_one_metric_and_no_metric_keep_their_columns(dsn: str, job) -> None:
    info = h.info(dsn, JOB)
    single, none = info[2], info[3]
    assert single["metrics_type"] == ["accuracy"]
    assert single["training_metrics_all"] == [single["training_metrics_final"]]
    assert single["validation_metrics_all_history"] == [[v] for v in
                                                        single["validation_metrics"]]
    assert none["metrics_type"] == []
    assert none["training_metrics_final"] is None
    assert none["training_metrics"] == [None] * ITERATIONS  # MADlib's arrays keep their NULLs
    assert none["training_metrics_all"] == [] and none["training_metrics_all_history"] == []
    assert none["validation_loss_final"] is not None


def test_each_hop_records_every_metric(dsn: str, job) -> None:
    rows = h.fetch(dsn, sql.SQL("SELECT mst_key, metric, metrics_all FROM {}").format(
        sql.Identifier(JOB + "_progress")))
    assert rows
    for mst, metric, metrics_all in rows:
        if mst == 1:
            assert len(metrics_all) == len(METRICS) and metrics_all[0] == metric
        elif mst == 2:
            assert metrics_all == [metric]
        else:
            assert metric is None and metrics_all == []


# ------------------------------------------------------------------ evaluate
def test_evaluate_in_sql_gives_the_jobs_last_validation_values(dsn: str, job) -> None:
    run(dsn, "DROP TABLE IF EXISTS me_eval")
    (result,), = run(dsn, "SELECT gpdl.madlib_keras_evaluate(%s, %s, 'me_eval', "
                          "mst_key => 1)", (JOB, h.VALIDATION))
    result = result if isinstance(result, dict) else json.loads(result)
    (loss, metric, metrics_type, loss_type, metrics_all), = run(
        dsn, "SELECT loss, metric, metrics_type, loss_type, metrics_all FROM me_eval")
    row = h.info(dsn, JOB)[1]
    assert loss == pytest.approx(row["validation_loss_final"], rel=1e-6)
    assert metrics_all == pytest.approx(row["validation_metrics_all"], rel=1e-6, abs=1e-9)
    assert metric == metrics_all[0]
    assert (metrics_type, loss_type) == (METRICS, "categorical_crossentropy")
    assert result["images"] == h.VALIDATION_IMAGES and result["mst_key"] == 1
    assert result["loss"] == pytest.approx(loss)
    run(dsn, "DROP TABLE me_eval")


def test_evaluate_alias_and_python_api_weight_segments_by_rows(dsn: str, job) -> None:
    """On the training table: every segment's rows, weighted as one Keras call over all."""
    run(dsn, "DROP TABLE IF EXISTS me_eval_train")
    run(dsn, "SELECT gpdl.evaluate(%s, %s, 'me_eval_train', false, 2)", (JOB, h.TRAIN))
    (loss, metric, metrics_all), = run(dsn, "SELECT loss, metric, metrics_all "
                                            "FROM me_eval_train")
    segments = run(dsn, sql.SQL("SELECT count(DISTINCT __dist_key__) FROM {}").format(
        sql.Identifier(h.TRAIN)))[0][0]
    assert segments > 1
    expected = keras_on_rows(dsn, 2, h.TRAIN, h.COMPILE)
    assert loss == pytest.approx(expected["loss"], rel=REL)
    assert metrics_all == pytest.approx([expected["accuracy"]], rel=REL)
    assert metric == metrics_all[0]
    run(dsn, "DROP TABLE me_eval_train")
    direct = evaluate(dsn, JOB, h.TRAIN, "me_eval_direct", mst_key=3)
    try:
        assert (direct.metric, direct.metrics_all, direct.metrics_type) == (None, [], [])
        assert direct.images == h.TRAIN_IMAGES
        assert direct.loss == pytest.approx(h.info(dsn, JOB)[3]["training_loss_final"],
                                            rel=1e-6)
    finally:
        run(dsn, "DROP TABLE IF EXISTS me_eval_direct")


@pytest.fixture(scope="module")
def other_classes(dsn: str, job) -> Iterator[str]:
    """A copy of the validation table whose summary names other classes."""
    run(dsn, sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
        sql.Identifier(OTHER_CLASSES), sql.Identifier(OTHER_CLASSES + "_summary")))
    for suffix in ("", "_summary"):
        run(dsn, sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
            sql.Identifier(OTHER_CLASSES + suffix),
            sql.Identifier(h.VALIDATION + suffix)))
    run(dsn, sql.SQL("UPDATE {} SET class_values = ARRAY['a', 'b', 'c', 'd']").format(
        sql.Identifier(OTHER_CLASSES + "_summary")))
    yield OTHER_CLASSES
    run(dsn, sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
        sql.Identifier(OTHER_CLASSES), sql.Identifier(OTHER_CLASSES + "_summary")))


REFUSALS = {
    "bad output name": ((JOB, h.VALIDATION, "me bad", None), "unsafe table name"),
    "missing model": (("me_no_model", h.VALIDATION, "me_refused", 1), "does not exist"),
    "missing packed table": ((JOB, "me_no_packed", "me_refused", 1),
                             "packed table me_no_packed does not exist"),
    "image table, not packed": ((JOB, "trainer_images", "me_refused", 1),
                                "not a packed table"),
    "other class values": ((JOB, OTHER_CLASSES, "me_refused", 1), "other class values"),
    "unknown mst_key": ((JOB, h.VALIDATION, "me_refused", 42), "mst_key 42 is not in"),
    "several configurations": ((JOB, h.VALIDATION, "me_refused", None),
                               "holds 3 configurations"),
    "existing output": ((JOB, h.VALIDATION, h.TRAIN, 1), "already exists"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_evaluate_refuses_before_any_table(dsn: str, job, other_classes: str,
                                           case: str) -> None:
    (model, test, output, mst_key), message = REFUSALS[case]
    with pytest.raises(psycopg2.Error) as caught:
        run(dsn, "SELECT gpdl.madlib_keras_evaluate(%s, %s, %s, false, %s)",
            (model, test, output, mst_key))
    primary = caught.value.diag.message_primary
    assert "\n" not in primary and message in primary, primary
    assert isinstance(server_error(caught.value), UsageError), primary
    assert not exists(dsn, "me_refused")
    with pytest.raises(UsageError, match=message):  # the Python API refuses alike
        evaluate(dsn, model, test, output, mst_key=mst_key)
