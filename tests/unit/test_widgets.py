"""Unit tests of the notebook widgets without a database: theme, table, curves, editor."""

from __future__ import annotations

import inspect
import io
import json
from dataclasses import replace

import ipywidgets
import numpy as np
import pytest
from traitlets import TraitError

from gpdl_backend.errors import UsageError
from gpdl_backend.images.samples import ImageRef, StoredImage, to_png
from gpdl_backend.mop import progress as progress_module
from gpdl_backend.mop.job import TrainingJob
from gpdl_backend.mop.progress import ConfigProgress, JobProgress, Series, hyperparameters
from gpdl_backend.selection import ModelConfig
from gpdl_jupyter import widgets as gpdl_widgets
from gpdl_jupyter.widgets import (
    NOTEBOOK,
    PRESENTATION,
    ArchitectureEditor,
    GpuMonitor,
    LearningCurves,
    TopK,
    config_colour,
    get_theme,
)
from gpdl_jupyter.widgets import arch_editor as editor_module
from gpdl_jupyter.widgets import learning_curves as curves_module
from gpdl_jupyter.widgets import topk as topk_module
from gpdl_jupyter.widgets._config_table import columns_of, config_rows, render_table, sort_rows
from gpdl_jupyter.widgets._layers import (
    LayerSpec,
    build,
    default_layers,
    keras_message,
    new_layer,
    specs_from_json,
)
from gpdl_jupyter.widgets._support import Updater, report
from gpdl_jupyter.widgets.theme import PALETTE

COMPILE = "loss='categorical_crossentropy', optimizer='Adam(lr=0.01)', metrics=['accuracy']"


# ------------------------------------------------------------------ theme
def test_config_colour_is_stable_and_distinct():
    assert config_colour(1) == config_colour(1) == PALETTE[0]
    assert len({config_colour(k) for k in range(1, 17)}) == 16
    assert config_colour(17) == config_colour(1)


def test_presentation_theme_is_larger():
    assert PRESENTATION.font_size > NOTEBOOK.font_size
    assert PRESENTATION.best_line_width > PRESENTATION.line_width
    template = PRESENTATION.template()
    assert template.layout.font.size == PRESENTATION.font_size
    assert f".{PRESENTATION.css_class}" in PRESENTATION.css()
    assert get_theme("presentation") is PRESENTATION and get_theme(None) is NOTEBOOK
    with pytest.raises(UsageError, match="unknown theme"):
        get_theme("neon")


# ------------------------------------------------------------------ progress values
def config(mst: int, val_metric: list[float], lr: float = 0.01, status: str = "finished",
           metric_name: str = "accuracy") -> ConfigProgress:
    iters = tuple(float(i) for i in range(1, len(val_metric) + 1))
    loss = tuple(1.0 - v for v in val_metric)
    curves = {
        ("training", "loss"): Series(iters, loss),
        ("training", "metric"): Series(iters, tuple(v + 0.01 for v in val_metric)),
        ("validation", "loss"): Series(iters, tuple(v + 0.05 for v in loss)),
        ("validation", "metric"): Series(iters, tuple(val_metric)),
        ("hops", "loss"): Series((0.5, 1.0), (1.2, 1.1)),
        ("hops", "metric"): Series((0.5, 1.0), (0.3, 0.4)),
    }
    return ConfigProgress(
        mst_key=mst, model_id=1, compile_params=COMPILE, fit_params="batch_size=16, epochs=1",
        hyperparameters=hyperparameters(COMPILE.replace("0.01", str(lr)),
                                        "batch_size=16, epochs=1", 1),
        status=status, metric_name=metric_name, units_done=4, iteration=float(len(iters)),
        num_params=100, curves=curves)


def job_progress(*configs: ConfigProgress, status: str = "finished") -> JobProgress:
    return JobProgress(output="out", status=status, iterations_done=2, num_iterations=2,
                       num_segments=2, metrics_iters=(1, 2), has_validation=True,
                       stop_requested=False, error=None, configs=configs, units_done=8)


def test_hyperparameters_are_read_without_keras():
    values = hyperparameters(COMPILE, "batch_size=64, epochs=1, verbose=0", 3)
    assert values == {"model_id": 3, "optimizer": "Adam", "learning_rate": 0.01,
                      "loss": "categorical_crossentropy", "metrics": "accuracy",
                      "batch_size": 64, "epochs": 1}
    assert hyperparameters("not a list(", "")["compile_params"] == "not a list("


def test_best_configuration_follows_the_metric_direction():
    progress = job_progress(config(1, [0.5, 0.9]), config(2, [0.6, 0.7]))
    best = progress.best("metric")
    assert (best.mst_key, best.value, best.iteration, best.side) == (1, 0.9, 2.0, "validation")
    assert progress.best("loss").mst_key == 1  # lowest loss
    errors = job_progress(config(1, [0.5, 0.9], metric_name="mae"),
                          config(2, [0.6, 0.7], metric_name="mae"))
    assert errors.best("metric").mst_key == 1 and errors.best("metric").value == 0.5


def test_best_falls_back_to_hops_before_the_first_evaluation():
    empty = config(1, [])
    assert job_progress(empty).best("loss") .side == "hops"


# ------------------------------------------------------------------ table
def test_table_rows_and_sorting():
    progress = job_progress(config(1, [0.5, 0.9], lr=0.1), config(2, [0.6, 0.7], lr=0.001),
                            config(3, [], lr=0.01, status="stopped"))
    rows = config_rows(progress)
    keys = [key for key, _ in columns_of(progress)]
    assert keys[0] == "mst_key" and "learning_rate" in keys and "validation_metric" in keys
    assert "loss" not in keys
    by_metric = sort_rows(rows, "validation_metric", descending=True)
    assert [r["mst_key"] for r in by_metric] == [1, 2, 3]  # missing values last
    assert [r["mst_key"] for r in sort_rows(rows, "validation_metric")] == [2, 1, 3]
    assert [r["mst_key"] for r in sort_rows(rows, "learning_rate")] == [2, 3, 1]
    assert [r["mst_key"] for r in sort_rows(rows, "status", True)] == [3, 1, 2]
    text = render_table(by_metric, columns_of(progress), best=1, sorted_by="validation_metric")
    assert text.count("<tr data-mst") == 3 and "★" in text and config_colour(2) in text


def test_sorting_mixed_types_puts_numbers_first():
    rows = [{"mst_key": 1, "x": "b"}, {"mst_key": 2, "x": 3}, {"mst_key": 3, "x": "a"}]
    assert [r["mst_key"] for r in sort_rows(rows, "x")] == [2, 3, 1]


# ------------------------------------------------------------------ learning curves
@pytest.fixture
def fake_job(monkeypatch):
    """A LearningCurves on a job handle whose tables are a fixed JobProgress."""
    state = {"progress": job_progress(config(1, [0.5, 0.9]), config(2, [0.6, 0.7])),
             "stops": []}
    monkeypatch.setattr(curves_module, "read_progress", lambda dsn, out: state["progress"])
    monkeypatch.setattr(curves_module, "model_names", lambda dsn, out: {1: "cnn-8"})
    job = TrainingJob("dbname=none", "out")
    monkeypatch.setattr(curves_module.api, "stop",
                        lambda table, mst_key=None, dsn=None: state["stops"].append(mst_key))
    state["job"] = job
    return state


def test_learning_curves_draw_each_configuration(fake_job):
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)
    assert not widget.live
    assert widget.configs_count == 2 and widget.traces_count == 6
    traces = widget.traces_for(1)
    assert set(traces) == {"validation", "training", "hops"}
    assert traces["validation"].line.color == config_colour(1)
    assert list(traces["validation"].y) == pytest.approx([0.55, 0.15])
    assert widget.best_mst_key == 1
    assert traces["validation"].line.width == NOTEBOOK.best_line_width
    assert widget.traces_for(2)["validation"].line.width == NOTEBOOK.line_width
    assert widget.figure.layout.annotations[0].text.startswith("lowest validation loss 0.15")
    assert "Adam lr=0.01" in traces["training"].hovertemplate
    assert "batch 16" in traces["training"].hovertemplate
    assert len(widget.snapshot().data) == widget.traces_count  # a static copy for exports
    widget.metric = "metric"
    assert list(widget.traces_for(1)["validation"].y) == [0.5, 0.9]
    assert widget.figure.layout.yaxis.title.text == "accuracy"
    widget.show = "validation"
    assert widget.traces_for(1)["training"].visible is False
    assert widget.traces_for(1)["validation"].showlegend is True
    widget.show = "training"
    assert widget.traces_for(1)["training"].showlegend is True
    assert widget.traces_for(1)["validation"].visible is False


def test_learning_curves_table_sorts(fake_job):
    widget = LearningCurves("dbname=none", fake_job["job"], live=False, metric="metric")
    widget.sort_by, widget.descending = "validation_metric", True
    assert widget.table.value.index('data-mst="1"') < widget.table.value.index('data-mst="2"')
    widget.descending = False
    assert widget.table.value.index('data-mst="2"') < widget.table.value.index('data-mst="1"')
    widget.sort_dropdown.value = "mst_key"
    assert widget.sort_by == "mst_key"
    with pytest.raises(TraitError, match="cannot sort by"):
        widget.sort_by = "colour"
    with pytest.raises(TraitError):
        widget.metric = "accuracy"
    with pytest.raises(TraitError, match="at least"):
        widget.refresh_seconds = 0.1


def test_learning_curves_stop_buttons(fake_job):
    fake_job["progress"] = job_progress(config(1, [0.5], status="training"),
                                        config(2, [0.6], status="training"), status="running")
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)
    assert not widget.stop_job_button.disabled and not widget.stop_config_button.disabled
    widget.config_dropdown.value = 2
    widget.stop_config_button.click()
    widget.stop_job_button.click()
    assert fake_job["stops"] == [2, None]
    fake_job["progress"] = job_progress(config(1, [0.5, 0.6]), config(2, [0.6, 0.7]))
    widget.refresh()  # the job ended: the buttons go, the dropdown stays
    assert widget.stop_job_button.disabled and widget.stop_config_button.disabled
    assert widget.stop_job_button.layout.display == "none"
    assert widget.stop_config_button.layout.display == "none"
    assert widget.config_dropdown.layout.display != "none"


def test_learning_curves_show_errors_in_the_output(fake_job, monkeypatch):
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)

    def broken(table, mst_key=None, dsn=None):
        raise UsageError("job out has no mst_key 9")

    monkeypatch.setattr(curves_module.api, "stop", broken)
    widget.stop_job_button.click()
    assert widget.error == "UsageError: job out has no mst_key 9"
    assert widget.errors.outputs[-1]["text"].startswith("UsageError")


def test_learning_curves_redraw_only_on_change(fake_job):
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)
    before = widget.table.value
    widget.table.value = "sentinel"
    widget.refresh()  # same fingerprint: nothing is redrawn
    assert widget.table.value == "sentinel"
    fake_job["progress"] = job_progress(config(1, [0.5, 0.9]), config(2, [0.6, 0.7, 0.95]))
    widget.refresh()  # a new evaluation
    assert widget.table.value != "sentinel" and widget.table.value != before
    assert widget.best_mst_key == 2


def test_updater_runs_one_thread_until_told():
    import threading

    ticks = []
    done = threading.Event()

    def tick():
        ticks.append(1)
        if len(ticks) == 3:
            done.set()
            return False
        return True

    updater = Updater(tick, 0.01, lambda e: None, "test")
    assert updater.interval == 0.5  # throttled
    updater.interval = 0.01
    updater.start()
    assert done.wait(5)
    updater.stop()
    assert len(ticks) == 3 and not updater.alive


def test_report_does_not_repeat_itself():
    import ipywidgets

    output = ipywidgets.Output()
    report(output, UsageError("a"))
    report(output, UsageError("a"))
    report(output, ValueError("b"))
    assert len(output.outputs) == 2
    assert "Traceback" in output.outputs[1]["text"] or "ValueError" in output.outputs[1]["text"]


# ------------------------------------------------------------------ GPU monitor
def test_gpu_monitor_without_gpus_says_so():
    rows = [{"host": "h", "kind": "cpu", "device": "host", "utilization": 12.0,
             "memory_used_mb": 1000.0, "memory_total_mb": 8000.0, "sessions": []},
            {"host": "h", "kind": "cpu", "device": "gpdl:out:seg0", "utilization": 99.0,
             "memory_used_mb": 300.0, "memory_total_mb": 8000.0, "sessions": ["gpdl:out:seg0"]}]
    monitor = GpuMonitor("dbname=none", live=False, usage=lambda dsn: rows)
    assert not monitor.has_gpus and monitor.devices_count == 2
    assert "No GPU" in monitor.label.value
    assert monitor.traces_count == 4
    monitor.refresh()
    assert len(monitor.figure.data[0].y) == 2
    assert "gpdl:out:seg0" in monitor.table.value


def test_gpu_monitor_with_gpus():
    rows = [{"host": "g", "kind": "gpu", "device": str(i), "utilization": float("nan"),
             "memory_used_mb": 10.0, "memory_total_mb": 80000.0} for i in range(2)]
    monitor = GpuMonitor("dbname=none", live=False, usage=lambda dsn: rows)
    assert monitor.has_gpus and "2 GPUs on 1 host" in monitor.label.value
    assert monitor.figure.data[0].y == (None,)
    with pytest.raises(TraitError):
        monitor.window = 0


# ------------------------------------------------------------------ editor model
def test_layer_specs_to_keras_and_back():
    specs = default_layers(4, (8, 8, 3))
    built = build(specs, (8, 8, 3))
    assert [i.kind for i in built.layers] == [s.kind for s in specs]
    assert built.layers[0].output_shape == (None, 6, 6, 32)
    assert built.layers[0].params == 3 * 3 * 3 * 32 + 32
    assert built.output_shape == (None, 4)
    assert built.num_params == sum(i.params for i in built.layers)
    shape, back = specs_from_json(built.model_json)
    assert shape == [8, 8, 3] and back == specs


def test_unknown_saved_layers_are_kept_as_is():
    arch = json.loads(build([new_layer("Flatten"), new_layer("Dense", units=3)],
                            (4, 4, 1)).model_json)
    arch["config"]["layers"].insert(2, {"module": "keras.layers", "config": {},
                                        "class_name": "LayerNormalization",
                                        "registered_name": None})
    _, specs = specs_from_json(arch)
    assert specs[1].kind == "LayerNormalization" and not specs[1].editable
    assert build(specs, (4, 4, 1)).layers[1].kind == "LayerNormalization"
    with pytest.raises(UsageError, match="Sequential"):
        specs_from_json({"class_name": "Functional", "config": {}})


def test_keras_messages_are_one_clean_line():
    error = ValueError("Exception encountered when calling X.call().\n\x1b[1mBad shape\x1b[0m\n"
                       "Arguments received by X.call(): • args=...")
    assert keras_message(error) == "Bad shape"


def test_editor_shapes_params_and_edits():
    editor = ArchitectureEditor("dbname=none", "arch", input_shape=(8, 8, 3), num_classes=4)
    assert editor.error == "" and editor.warning == ""
    assert editor.num_params == build(default_layers(4, (8, 8, 3)), (8, 8, 3)).num_params
    assert len(editor.list_box.children) == len(editor.layers)
    assert editor._rows[0].shape.value == "(None, 6, 6, 32)"
    before = editor.num_params
    editor.add_layer("Dropout", rate=0.3)
    assert editor.layers[-2] == LayerSpec("Dropout", rate=0.3)  # before the output layer
    assert editor.num_params == before
    editor._rows[0].units.value = 16  # typed in the row
    assert editor.layers[0].units == 16 and editor.num_params < before
    editor.move_layer(len(editor.layers) - 2, -1)
    assert editor.layers[-3].kind == "Dropout"
    editor.drop_layer(len(editor.layers) - 3)
    assert [s.describe() for s in editor.layers[-3:]] == ["Dense 64 relu", "Dropout 0.25",
                                                          "Dense 4 softmax"]
    json.loads(editor.model_json())


def test_editor_shows_keras_errors_inline():
    editor = ArchitectureEditor("dbname=none", "arch", input_shape=(8, 8, 3), num_classes=4)
    editor._rows[0].kind.value = "Flatten"  # Flatten, then MaxPooling2D: Keras refuses
    assert editor.error.startswith("layer 2 (MaxPooling2D)")
    assert "Keras" in editor._rows[1].message.value
    assert "✗" in editor.problem.value and editor.num_params is None
    with pytest.raises(UsageError, match="layer 2"):
        editor.model_json()
    editor.set_layer(0, kind="Conv2D")
    assert editor.error == "" and editor._rows[1].message.value == ""
    editor.set_layer(len(editor.layers) - 1, units=5)
    assert "outputs 5 values" in editor.warning
    with pytest.raises(UsageError, match="positive integer"):
        editor.set_layer(0, units=0)
    with pytest.raises(UsageError, match="no layer"):
        editor.drop_layer(99)
    with pytest.raises(TraitError):
        editor.input_shape = [8, 8]


def test_editor_reads_a_saved_model():
    built = build([new_layer("Conv2D", units=8, kernel=2), new_layer("Flatten"),
                   new_layer("Dense", units=3, activation="softmax")], (6, 6, 1))
    editor = ArchitectureEditor("dbname=none", "arch", model=built.model_json)
    assert editor.input_shape == [6, 6, 1] and editor.num_classes == 3
    assert editor.num_params == built.num_params
    assert editor._rows[0].kernel.value == 2


def test_to_png_scales_for_display_only():
    pixels = np.arange(2 * 3 * 1, dtype=np.uint8).reshape(2, 3, 1)
    import io

    from PIL import Image

    small, big = to_png(pixels), to_png(pixels, min_size=12)
    assert Image.open(io.BytesIO(small)).size == (3, 2)
    assert Image.open(io.BytesIO(big)).size == (12, 8)
    with pytest.raises(UsageError):
        to_png(np.zeros((2, 2), dtype=np.uint8))


def test_progress_module_has_no_widget_imports():
    with open(progress_module.__file__) as file:
        source = file.read()
    assert "ipywidgets" not in source and "plotly" not in source


# ------------------------------------------------------------------ every widget
CPU_ROWS = [{"host": "h", "kind": "cpu", "device": "host", "utilization": 12.0,
             "memory_used_mb": 1000.0, "memory_total_mb": 8000.0, "sessions": []}]
PREDICTED = [{"class_name": name, "class_value": i, "prob": p, "rank": i + 1}
             for i, (name, p) in enumerate((("shoe", 0.7), ("bag", 0.2), ("coat", 0.1)))]


@pytest.fixture
def fake_topk(monkeypatch):
    """TopK's database calls answered without a database."""
    def no_job(dsn, table):
        raise UsageError(f"no training job {table}")

    monkeypatch.setattr(topk_module, "read_progress", no_job)
    monkeypatch.setattr(topk_module.api, "predict_image",
                        lambda table, image, mst_key, k, dsn: PREDICTED[:k])
    monkeypatch.setattr(topk_module, "list_images", lambda dsn, table, limit: [
        ImageRef("t/shoe/1.png", "1.png", "shoe")])
    monkeypatch.setattr(topk_module, "read_image", lambda dsn, table, path: StoredImage(
        ImageRef(path, path.rsplit("/", 1)[-1], "shoe"), np.zeros((4, 4, 1), dtype=np.uint8)))


@pytest.fixture
def every_widget(fake_job, fake_topk) -> list[ipywidgets.Widget]:
    """One of each public widget class, made without a database."""
    made = [LearningCurves("dbname=none", fake_job["job"], live=False),
            GpuMonitor("dbname=none", live=False, usage=lambda dsn: CPU_ROWS),
            ArchitectureEditor("dbname=none", "arch", input_shape=(8, 8, 3), num_classes=4),
            TopK("dbname=none", "out", mst_key=1, image_table="images")]
    public = {getattr(gpdl_widgets, n) for n in gpdl_widgets.__all__
              if isinstance(getattr(gpdl_widgets, n), type)
              and issubclass(getattr(gpdl_widgets, n), ipywidgets.Widget)}
    assert {type(w) for w in made} == public  # a new widget class must be added here
    return made


def _ipywidgets_names() -> set[str]:
    """What Widget, DOMWidget and VBox define: methods, properties, traits."""
    names: set[str] = set()
    for base in (ipywidgets.Widget, ipywidgets.DOMWidget, ipywidgets.VBox):
        names |= set(dir(base)) | set(base.class_trait_names())
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))}


def test_no_widget_shadows_ipywidgets_names(every_widget):
    """A trait or attribute named like ipywidgets' own (``model_id``, ``keys``, ``log``...)
    breaks the widget: e.g. its display data then names no model."""
    names = _ipywidgets_names()
    by_traitlets = set(vars(type("Empty", (ipywidgets.VBox,), {})))  # made for every class
    set_by_base = set(vars(ipywidgets.VBox()))
    for widget in every_widget:
        mro = type(widget).__mro__
        ours = [vars(klass) for klass in mro[:mro.index(ipywidgets.VBox)]]
        clashes = set()
        for namespace in ours:
            for name, value in namespace.items():
                if name not in names or name in by_traitlets:
                    continue
                base = inspect.getattr_static(ipywidgets.VBox, name, None)
                if not (inspect.isfunction(value) and inspect.isfunction(base)):
                    clashes.add(name)  # overriding a method (close) is fine; the rest not
        clashes |= {n for n in vars(widget) if n in names and n not in set_by_base}
        assert not clashes, f"{type(widget).__name__} shadows ipywidgets' {sorted(clashes)}"
        view = widget._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]
        assert view["model_id"] == widget.comm.comm_id


def _tree(widget: ipywidgets.Widget) -> list[ipywidgets.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += _tree(child)
    return found


def test_no_two_controls_share_a_layout(every_widget):
    """Changing one control's Layout (hiding a field) must not change another's."""
    for widget in every_widget:
        layouts = [w.layout for w in _tree(widget) if hasattr(w, "layout")]
        assert len({id(layout) for layout in layouts}) == len(layouts), type(widget).__name__


def test_editor_shows_each_rows_own_fields():
    editor = ArchitectureEditor("dbname=none", "arch", input_shape=(8, 8, 3), num_classes=4)
    editor.add_layer("Dropout")
    for row, spec in zip(editor._rows, editor.layers, strict=True):
        for name in ("units", "kernel", "activation", "rate"):
            expected = "visible" if name in spec.fields else "hidden"
            assert getattr(row, name).layout.visibility == expected, (spec.kind, name)


def test_editor_says_it_saved_and_added(monkeypatch):
    saved = []
    monkeypatch.setattr(editor_module.api, "load_model",
                        lambda table, text, name, description, dsn: saved.append(name) or 7)
    monkeypatch.setattr(editor_module.api, "add_to_selection", lambda table, model_id, dsn: [
        ModelConfig(5, model_id, "loss='mse'", "epochs=1")])
    editor = ArchitectureEditor("dbname=none", "arch", input_shape=(8, 8, 3), num_classes=4,
                                model_selection_table="mst")
    editor.name_text.value = "wider"
    editor.save_button.click()
    assert editor.error == "" and saved == ["wider"] and editor.saved_model_id == 7
    assert "saved as model_id <b>7</b>" in editor.status.value
    editor.select_button.click()
    assert editor.error == "" and "mst_key 5" in editor.status.value


def test_figures_keep_their_state_for_views_made_later(every_widget, fake_job):
    """A view made after the edits (page reload, slow start) draws the synced state."""
    curves, monitor, _, topk = every_widget
    topk.image_dropdown.index = 1
    for widget in (curves, monitor, topk):
        assert widget.figure._widget_data == [t.to_plotly_json() for t in widget.figure.data]
        assert widget.figure._widget_layout == widget.figure.layout.to_plotly_json()
    assert curves.figure._widget_data[0]["y"] == pytest.approx([0.55, 0.15])


def test_charts_follow_their_output_width(every_widget):
    """No fixed width, plotly's responsive config, and the watcher beside each chart (issue 12)."""
    for widget in every_widget:
        figure = getattr(widget, "figure", None)
        if figure is None:
            continue
        box = next(w for w in _tree(widget) if figure in getattr(w, "children", ()))
        assert figure._config.get("responsive") is True, type(widget).__name__
        assert any(type(w).__name__ == "_WidthWatcher" for w in box.children)
        assert figure.layout.width is None and widget.snapshot().layout.width is None


def test_topk_first_state_and_upload(every_widget):
    topk = every_widget[3]
    assert topk.image_dropdown.label == topk_module.PLACEHOLDER  # not a blank dropdown
    assert topk.image.layout.display == "none"  # no broken-image icon
    assert "upload" in topk.caption.value.lower()
    assert not topk.figure.layout.xaxis.visible and not topk.figure.layout.yaxis.visible
    assert "no image yet" in topk.figure.layout.annotations[0].text
    topk.image_dropdown.index = 1  # a stored image, as a user picks it
    assert topk.bars_count == 3 and topk.image.layout.display is None
    assert topk.figure.layout.xaxis.visible and not topk.figure.layout.annotations
    topk.predict(to_png(np.zeros((4, 4, 1), dtype=np.uint8)), "mine.png")
    assert topk.image_dropdown.label == topk_module.PLACEHOLDER  # names no stored image
    assert topk.image_name == "mine.png" and "mine.png" in topk.figure.layout.title.text


def test_learning_curves_say_model_names_and_what_is_best(fake_job):
    fake_job["progress"] = job_progress(config(1, [0.5, 0.9], lr=0.1),
                                        config(2, [0.6, 0.7], lr=0.001))
    widget = LearningCurves("dbname=none", fake_job["job"], live=False, metric="metric")
    names = [t.name for t in widget.figure.data if t.showlegend]
    assert names == ["Adam lr=0.1 · mst 1", "Adam lr=0.001 · mst 2"]  # cnn-8 is shared
    assert "cnn-8" in widget.traces_for(1)["training"].hovertemplate
    assert "model 1" not in widget.table.value and "cnn-8" in widget.table.value
    assert widget.config_dropdown.options[0][0] == \
        "mst 1 · cnn-8 · Adam lr=0.1 · batch 16 · epochs 1"
    best = widget.figure.layout.annotations[0]
    assert best.text.startswith("best validation accuracy 0.9")
    assert best.xanchor == "right"  # at the last iteration: the text sits left of the point
    widget.metric = "loss"
    assert widget.figure.layout.annotations[0].text.startswith("lowest validation loss")


def test_legend_names_follow_a_configuration_added_later(fake_job):
    """A clone shares its original's phrases: both legend entries say only what differs."""
    fake_job["progress"] = job_progress(config(1, [0.5, 0.9], lr=0.1, status="training"),
                                        status="running")
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)
    assert [t.name for t in widget.figure.data if t.showlegend] == \
        ["cnn-8 · Adam lr=0.1 · batch 16 · epochs 1 · mst 1"]
    fake_job["progress"] = job_progress(config(1, [0.5, 0.9], lr=0.1, status="training"),
                                        config(2, [0.6], lr=0.001), status="running")
    widget.refresh()
    assert [t.name for t in widget.figure.data if t.showlegend] == \
        ["Adam lr=0.1 · mst 1", "Adam lr=0.001 · mst 2"]
    assert {t.name for t in widget.figure.data if t.meta["mst_key"] == 1} == \
        {"Adam lr=0.1 · mst 1"}  # every side's trace, not only the one in the legend


def test_the_x_axis_spans_the_job_while_it_runs_and_what_trained_once_it_ended(fake_job):
    running = replace(job_progress(config(1, [0.5, 0.6], status="training"),
                                   status="running"), num_iterations=300)
    fake_job["progress"] = running
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)
    assert widget.figure.layout.xaxis.range[1] == pytest.approx(300 * 1.02)
    fake_job["progress"] = replace(running, status="stopped")
    widget.refresh()
    assert widget.figure.layout.xaxis.range[1] == pytest.approx(2 * 1.02)  # 2 iterations


def test_learning_curves_scale_to_the_evaluated_values(fake_job):
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)
    low, high = widget.figure.layout.yaxis.range
    evaluated = [y for c in fake_job["progress"].configs for side in ("training", "validation")
                 for y in c.series(side, "loss").y]
    assert low <= min(evaluated) and max(evaluated) <= high < 1.1  # the hops reach 1.2


def test_learning_curves_table_is_narrow_and_agrees_with_the_header(fake_job):
    first = config(1, [0.5], lr=0.1, status="training")
    fake_job["progress"] = replace(job_progress(
        replace(first, iteration=1.5), config(2, [0.6], lr=0.001, status="training"),
        status="running"), iterations_done=1)
    widget = LearningCurves("dbname=none", fake_job["job"], live=False)
    keys = [key for key, _ in columns_of(widget.progress)]
    assert "batch_size" not in keys and "learning_rate" in keys  # one value: no column
    assert "every configuration: Adam · batch 16 · epochs 1" in widget.table.value
    assert "iteration 1.5 of 2" in widget.header.value
    assert "<td>1.5</td>" in widget.table.value
    for button in (widget.order_button, widget.stop_config_button, widget.stop_job_button):
        assert button.layout.width == "auto"  # labels are not cut


def test_a_failed_call_leaves_the_notebook_bar_red(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load whose every file failed counted them all (100%), yet made nothing: red."""
    import tqdm.auto
    import tqdm.notebook

    from gpdl_jupyter.progress import progress_bar

    made: list = []

    class Recorded(tqdm.notebook.tqdm):  # the notebook's own bar, kept for the asserts
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    with pytest.raises(UsageError), progress_bar("file", "loading bad") as update:
        update(4, 4, 4)
        raise UsageError("no image could be read")
    with progress_bar("file", "loading good") as update:
        update(4, 4)
    styles = [bar.container.children[1].bar_style for bar in made]
    assert styles == ["danger", "success"]


def test_a_small_upload_is_shown_scaled_up_sharply_as_stored_images_are():
    from PIL import Image

    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
    shown = Image.open(io.BytesIO(topk_module.shown_upload(to_png(gray))))
    assert shown.size == (196, 196) and shown.mode == "L"  # 7 × 28 ≥ 192
    assert (np.asarray(shown)[::7, ::7] == gray[:, :, 0]).all()
    assert (np.asarray(shown)[6::7, 6::7] == gray[:, :, 0]).all()  # blocks, not a blur
    rgba = io.BytesIO()
    Image.new("RGBA", (10, 12), (200, 10, 30, 128)).save(rgba, format="PNG")
    shown = Image.open(io.BytesIO(topk_module.shown_upload(rgba.getvalue())))
    assert shown.size == (160, 192) and shown.mode == "RGB"
    large = io.BytesIO()
    Image.new("RGB", (300, 200)).save(large, format="JPEG")
    assert topk_module.shown_upload(large.getvalue()) == large.getvalue()
    assert topk_module.shown_upload(b"not an image") == b"not an image"
