"""The notebook widgets against the real server: a tiny finished job, a live one, inference.

Tiny data (the trainer tests' 8×8 RGB images, 4 classes, 2 segments) and a
tiny CNN: two configurations × two iterations, evaluated after each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend.errors import UsageError
from gpdl_backend.images.samples import list_images, read_image, to_png
from gpdl_backend.model_tables import load_model_selection_table, read_keras_model
from gpdl_backend.mop import tables
from gpdl_backend.mop.job import TrainingJob, fit_multiple_model
from gpdl_backend.mop.progress import best_mst_key, read_progress
from gpdl_jupyter.widgets import ArchitectureEditor, GpuMonitor, LearningCurves, TopK
from gpdl_jupyter.widgets.theme import config_colour
from tests.integration import trainer_helpers as h

pytestmark = pytest.mark.db

JOB = "wd_job"
MST = "wd_mst"
SEGMENTS = 2
ITERATIONS = 2


@pytest.fixture(scope="module")
def ids(dsn: str, shared_tmp_factory) -> dict[str, int]:
    h.prepare_data(dsn, shared_tmp_factory("gpdl-widgets-"))
    return h.arch_table(dsn)


@pytest.fixture(scope="module")
def finished(dsn: str, ids: dict[str, int]) -> Iterator[TrainingJob]:
    """A finished job: 2 configurations × 2 iterations, validation after each."""
    load_model_selection_table(dsn, h.ARCH, MST, [ids["good"]], [h.COMPILE, h.COMPILE_SLOW],
                               [h.FIT], if_exists="replace")
    h.drop_output(dsn, JOB)
    job = fit_multiple_model(dsn, h.TRAIN, JOB, MST, ITERATIONS, validation_table=h.VALIDATION,
                             metrics_compute_frequency=1, seed=3)
    yield job
    h.drop_output(dsn, JOB)


# --------------------------------------------------------------------- progress
def test_read_progress_of_a_finished_job(dsn: str, finished: TrainingJob) -> None:
    progress = read_progress(dsn, JOB)
    assert progress.status == tables.FINISHED and not progress.running
    assert progress.metrics_iters == (1, 2) and progress.has_validation
    assert progress.units_done == 2 * SEGMENTS * ITERATIONS
    assert [c.mst_key for c in progress.configs] == [1, 2]
    first = progress.configs[0]
    assert first.hyperparameters["learning_rate"] == 0.01
    assert first.hyperparameters["optimizer"] == "Adam" and first.metric_name == "accuracy"
    assert first.series("hops", "loss").x == (0.5, 1.0, 1.5, 2.0)
    assert first.series("validation", "metric").x == (1.0, 2.0)
    assert all(v is not None for v in first.series("validation", "loss").y)
    assert first.iteration == 2.0 and first.status == tables.FINISHED
    assert best_mst_key(dsn, JOB) in (1, 2)
    with pytest.raises(UsageError, match="no training job"):
        read_progress(dsn, "wd_no_such_job")


# --------------------------------------------------------------------- learning curves
def test_learning_curves_reattach_to_a_finished_job(dsn: str, finished: TrainingJob,
                                                    ids: dict[str, int]) -> None:
    widget = LearningCurves(dsn, JOB, live=False, metric="metric")  # by name: re-attached
    assert widget.names[ids["good"]] == "good"  # the model's name, from the job's arch table
    assert "good" in widget.table.value and "model " not in widget.table.value
    assert not widget.live and widget.status == tables.FINISHED
    assert widget.configs_count == 2
    for mst in (1, 2):
        traces = widget.traces_for(mst)
        assert len(traces["training"].y) == ITERATIONS
        assert len(traces["validation"].y) == ITERATIONS
        assert len(traces["hops"].y) == SEGMENTS * ITERATIONS
        assert traces["validation"].line.color == config_colour(mst)
    visible = [t for t in widget.figure.data if t.visible is not False and t.meta["side"]
               in ("training", "validation")]
    assert len(visible) == 2 * 2  # 2 configurations × (training + validation)
    assert sum(1 for t in widget.figure.data if t.showlegend) == 2  # one legend entry each
    best = read_progress(dsn, JOB).best("metric")
    assert widget.best_mst_key == best.mst_key
    assert widget.traces_for(best.mst_key)["validation"].line.width == \
        widget.theme.best_line_width
    best_text = widget.figure.layout.annotations[0].text
    assert best_text.startswith("best validation accuracy") and f"mst {best.mst_key}" in best_text
    assert widget.table.value.count("<tr data-mst") == 2
    assert widget.stop_job_button.disabled  # nothing left to stop
    status = widget.wait()  # returns at once for a finished job
    assert status.status == tables.FINISHED


def test_learning_curves_refuse_an_unknown_job(dsn: str) -> None:
    with pytest.raises(UsageError, match="no training job"):
        LearningCurves(dsn, "wd_no_such_job", live=False)


def test_learning_curves_live_stop_one_then_all(dsn: str, ids: dict[str, int]) -> None:
    """Live from one thread; stop one configuration, then the job, from the buttons."""
    output = "wd_live"
    mst = load_model_selection_table(dsn, h.ARCH, "wd_live_mst", [ids["good"]],
                                     [h.COMPILE, h.COMPILE_SLOW], [h.FIT], if_exists="replace")
    h.drop_output(dsn, output)
    job = fit_multiple_model(dsn, h.TRAIN, output, "wd_live_mst", 50,
                             validation_table=h.VALIDATION, metrics_compute_frequency=1,
                             background=True)
    try:
        widget = LearningCurves(dsn, job, live=True, refresh=0.5)
        assert widget.live
        _until(lambda: widget.progress.units_done >= 1, "no hop was drawn live")
        widget.config_dropdown.value = mst[0].mst_key
        widget.stop_config_button.click()
        assert widget.error == ""
        _until(lambda: widget.progress.config(mst[0].mst_key).status == tables.STOPPED,
               "configuration was not stopped")
        assert widget.progress.running
        widget.stop_job_button.click()
        status = widget.wait(timeout=120)
        assert status.status == tables.STOPPED
        assert widget.status == tables.STOPPED and not widget.live
        # the job's stop ends the configuration that was still training too
        assert widget.progress.config(mst[1].mst_key).status == tables.STOPPED
        assert len(widget.traces_for(mst[1].mst_key)["hops"].y) >= 1
        widget.close()
    finally:
        job.stop()
        job.wait(timeout=120)
        h.drop_output(dsn, output)


def test_learning_curves_steer_a_search(dsn: str, ids: dict[str, int]) -> None:
    """A search's row of controls: clone the chosen configuration, extend the clone."""
    output = "wd_search"
    h.drop_output(dsn, output)
    h.drop_output(dsn, output + "_mst")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT gpdl.madlib_keras_automl(%s, %s, %s, %s, %s, %s, %s, 'hyperopt', "
                    "'num_configs=1, num_iterations=500, algorithm=rand', 1, "
                    "validation_table => %s, background => true)",
                    (h.TRAIN, output, h.ARCH, output + "_mst", [ids["good"]],
                     "{'loss': ['categorical_crossentropy'], 'optimizer_params_list': "
                     "[{'optimizer': ['Adam'], 'lr': [0.01]}], 'metrics': ['accuracy']}",
                     "{'batch_size': [16], 'epochs': [1]}", h.VALIDATION))
    widget = LearningCurves(dsn, output, live=True, refresh=0.5)
    try:
        steering = widget.steering
        _until(lambda: any(c.mst_key == 1 and c.iteration >= 1
                           for c in widget.progress.configs), "no iteration was drawn")
        assert steering.layout.display == ""  # shown for a search only
        assert steering.extend_button.disabled  # the search still decides about mst 1
        assert not steering.clone_button.disabled
        steering.iterations.value = 1
        steering.fit_params.value = "batch_size=8,epochs=1"
        steering.clone_button.click()
        steering.thread.join(timeout=120)
        assert "mst 2: a clone of mst 1" in steering.message.value, steering.message.value
        _until(lambda: len(widget.progress.configs) == 2, "the clone was not drawn")
        widget.config_dropdown.value = 2
        _until(lambda: not steering.extend_button.disabled, "a clone cannot be extended")
        steering.iterations.value = 2
        steering.extend_button.click()
        steering.thread.join(timeout=120)
        assert "mst 2 trains to iteration 3" in steering.message.value, steering.message.value
        # Finished at iteration 3: the clone may have finished its first before the extend.
        _until(lambda: (widget.progress.config(2).status,
                        widget.progress.config(2).iteration) == (tables.FINISHED, 3.0),
               "the clone did not finish its 3 iterations", timeout=180)
        clone = widget.progress.config(2)
        assert (clone.iteration, clone.budget, clone.hand_made) == (3.0, 3, True)
        assert clone.hyperparameters["batch_size"] == 8
        assert "early_stopped" not in widget.table.value and "finished" in widget.table.value
    finally:
        widget.stop()
        widget.wait(timeout=120)
        widget.close()
    assert widget.progress.config(1).status == tables.STOPPED
    h.drop_output(dsn, output)
    h.drop_output(dsn, output + "_mst")


def _until(condition, message: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(message)


# --------------------------------------------------------------------- GPU monitor
def test_gpu_monitor_shows_the_hosts(dsn: str) -> None:
    monitor = GpuMonitor(dsn, live=False)
    assert not monitor.live and monitor.devices_count >= 1
    assert monitor.traces_count == 2 * monitor.devices_count
    if monitor.has_gpus:
        assert "GPU" in monitor.label.value
        assert all(row["kind"] == "gpu" for row in monitor.rows)
    else:
        assert "No GPU" in monitor.label.value
        assert monitor.rows[0]["kind"] == "cpu" and monitor.rows[0]["device"] == "host"


# --------------------------------------------------------------------- top-k
def test_topk_draws_k_bars_for_a_stored_image(dsn: str, ids: dict[str, int],
                                              finished: TrainingJob) -> None:
    widget = TopK(dsn, JOB, k=3, image_table="trainer_valid_images")
    assert widget.mst_key == best_mst_key(dsn, JOB)
    # The header names the model as the curves do (its name, not "model 1").
    assert " · good · " in widget.header.value, widget.header.value
    assert f"model {ids['good']}" not in widget.header.value
    assert len(widget.image_dropdown.options) > 1
    assert widget.bars_count == 0
    widget.image_dropdown.value = widget.image_dropdown.options[1][1]  # as a user would
    assert widget.error == ""
    assert widget.bars_count == 3
    probs = [p["prob"] for p in widget.predictions]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-5
    assert widget.figure.data[0].marker.color == config_colour(widget.mst_key)
    assert bytes(widget.image.value).startswith(b"\x89PNG")
    widget.k = 2  # re-predicts the image shown
    assert widget.bars_count == 2


def test_topk_predicts_uploaded_bytes(dsn: str, finished: TrainingJob) -> None:
    widget = TopK(dsn, JOB, mst_key=2, k=4)
    ref = list_images(dsn, "trainer_valid_images", limit=1)[0]
    png = to_png(read_image(dsn, "trainer_valid_images", ref.fullpath).pixels)
    rows = widget.predict(png, "upload.png")
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and widget.bars_count == 4
    widget.upload.value = ({"name": "bad.png", "type": "image/png", "size": 3,
                            "content": memoryview(b"bad"),
                            "last_modified": datetime.now(UTC)},)
    assert "ImageDecodeError" in widget.error or "UsageError" in widget.error


# --------------------------------------------------------------------- architecture editor
def test_editor_saves_and_adds_to_the_selection(dsn: str, ids: dict[str, int]) -> None:
    table = "wd_edit_mst"
    load_model_selection_table(dsn, h.ARCH, table, [ids["good"]], [h.COMPILE, h.COMPILE_SLOW],
                               [h.FIT], if_exists="replace")
    retrained = []
    editor = ArchitectureEditor(dsn, h.ARCH, model=ids["good"], model_selection_table=table,
                                on_retrain=lambda e, configs: retrained.append(configs))
    assert editor.input_shape == [h.IMAGE_SIZE, h.IMAGE_SIZE, 3]
    assert editor.num_classes == h.NUM_CLASSES and editor.error == ""
    original = editor.num_params
    editor.add_layer("Dense", units=8)
    assert editor.num_params != original
    editor.name_text.value = "good + dense"
    editor.save_button.click()
    assert editor.error == "" and editor.saved_model_id is not None
    saved = read_keras_model(dsn, h.ARCH, editor.saved_model_id)
    assert saved["name"] == "good + dense"
    assert json.loads(saved["model_arch"])["class_name"] == "Sequential"
    editor.select_button.click()
    assert editor.error == ""
    assert [(c.mst_key, c.model_id) for c in editor.added] == [(3, editor.saved_model_id),
                                                              (4, editor.saved_model_id)]
    assert retrained == [editor.added]
    assert editor.add_to_selection() == []  # already there: nothing added twice
    rows = h.fetch(dsn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    assert rows[0][0] == 4


def test_editor_refusals_are_shown(dsn: str, ids: dict[str, int]) -> None:
    editor = ArchitectureEditor(dsn, h.ARCH, input_shape=(8, 8, 3), num_classes=4)
    editor.select_button.click()  # no selection table given
    assert "no model_selection_table" in editor.error
    with pytest.raises(UsageError, match="not in"):
        ArchitectureEditor(dsn, h.ARCH, model=999_999)
