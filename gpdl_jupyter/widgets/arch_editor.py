"""Edit a model's layers, see shapes and parameters live, save it, add it to a selection.

The model is built with Keras in the client (imported the first time it is
needed) to show every layer's output shape and parameter count and Keras's
own error, next to the layer it refused. Saving goes through
``gpdl.load_keras_model`` (checked again inside the database);
"Add to selection" through ``gpdl.add_model_to_selection`` (the API's calls).

Example::

    editor = ArchitectureEditor(dsn, "model_arch_library", model=1,
                                model_selection_table="mst_table", on_retrain=retrain)
    editor.add_layer("Dropout", rate=0.3)
    editor.save(name="cnn + dropout")           # -> the new model_id
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
from traitlets import Int, List, TraitError, Unicode, observe, validate

from gpdl_backend.errors import UsageError
from gpdl_backend.selection import ModelConfig
from gpdl_jupyter import api

from ._layers import (
    ACTIVATIONS,
    LAYER_TYPES,
    Built,
    LayerError,
    LayerSpec,
    build,
    check_input_shape,
    default_layers,
    edited,
    new_layer,
    specs_from_json,
)
from ._support import auto_width, error_output, guarded, style_tag
from .theme import Theme, get_theme

__all__ = ["ArchitectureEditor"]

RetrainHook = Callable[["ArchitectureEditor", list[ModelConfig]], object]


def _narrow() -> widgets.Layout:
    """A new Layout per field: one shared Layout would hide a field in every row at once."""
    return widgets.Layout(width="7em")


class ArchitectureEditor(widgets.VBox):
    """A Sequential model's layers as an editable list, with live shapes and parameters.

    Args:
        dsn: where the database is.
        model_arch_table: the architecture table new models are saved to.
        model: a ``model_id`` in ``model_arch_table``, a Keras JSON (text or
            dict), or None for a small CNN. Defaults to None.
        input_shape: ``(height, width, channels)``. Defaults to the model's,
            else ``(28, 28, 1)``.
        num_classes: classes of the data (the last layer should output as
            many). Defaults to the model's output size, else 10.
        model_selection_table: where "Add to selection" adds the saved model,
            with every (compile, fit) pair already there. Defaults to None.
        on_retrain: called as ``on_retrain(editor, configs)`` after the model
            was added to the selection (e.g. to train the new configurations).
            Defaults to None.
        theme: ``"notebook"``, ``"presentation"`` or a ``Theme``. Defaults to notebook.

    Raises:
        UsageError: the model is not a Sequential model, or no such ``model_id``.
    """

    layers = List(help="the layers, as LayerSpec values")
    input_shape = List(help="(height, width, channels)")
    num_classes = Int(10, help="classes of the data")
    num_params = Int(None, allow_none=True, help="parameters of the model as built")
    error = Unicode("", help="Keras's or the database's last refusal; empty when fine")
    warning = Unicode("", help="what would make training refuse this model")
    # Not ``model_id``: ipywidgets identifies every widget by its ``model_id`` property.
    saved_model_id = Int(None, allow_none=True, help="the model_id it was last saved as")

    def __init__(self, dsn: str, model_arch_table: str,
                 model: int | str | Mapping[str, Any] | None = None,
                 input_shape: Sequence[int] | None = None, num_classes: int | None = None,
                 model_selection_table: str | None = None,
                 on_retrain: RetrainHook | None = None,
                 theme: Theme | str | None = None, **kwargs: Any) -> None:
        self.dsn = dsn
        self.model_arch_table = model_arch_table
        self.model_selection_table = model_selection_table
        self.on_retrain = on_retrain
        self.theme = get_theme(theme)
        self.built: Built | None = None
        self.added: list[ModelConfig] = []
        self._rows: list[_LayerRow] = []
        self._saved_json: str | None = None
        self._ready = False
        specs, saved_shape, saved_classes, name = self._initial(model, num_classes)

        self.summary = widgets.HTML()
        self.problem = widgets.HTML()
        self.list_box = widgets.VBox()
        self.add_kind = widgets.Dropdown(options=LAYER_TYPES, value="Dense",
                                         layout=widgets.Layout(width="14em"))
        self.add_button = widgets.Button(description="Add layer", icon="plus",
                                         layout=auto_width())
        self.name_text = widgets.Text(value=name, placeholder="model name",
                                      description="Name")
        self.save_button = widgets.Button(description="Save as new model", icon="save",
                                          button_style="primary", layout=auto_width())
        self.select_button = widgets.Button(
            description="Add to selection and retrain" if on_retrain else "Add to selection",
            icon="plus-square", button_style="success", layout=auto_width(),
            disabled=model_selection_table is None,
            tooltip="adds the saved model with every (compile, fit) pair of "
                    f"{model_selection_table or 'the model selection table'}")
        self.status = widgets.HTML()
        self.errors = error_output()
        header = widgets.HTML(
            "<b>#</b> · type · units/filters · kernel/pool · activation · rate · "
            "move · drop · output shape · parameters")
        super().__init__(children=[
            style_tag(self.theme.css()), self.summary, header, self.list_box, self.problem,
            widgets.HBox([self.add_kind, self.add_button]),
            widgets.HBox([self.name_text, self.save_button, self.select_button]),
            self.status, self.errors], **kwargs)
        self.add_class(self.theme.css_class)
        self.add_class("gpdl-arch-editor")

        self.add_button.on_click(guarded(self.errors, self._set_error,
                                         lambda _: self.add_layer(self.add_kind.value)))
        self.save_button.on_click(guarded(self.errors, self._set_error,
                                          lambda _: self.save(self.name_text.value or None)))
        self.select_button.on_click(guarded(self.errors, self._set_error,
                                            lambda _: self.add_to_selection()))
        self.num_classes = num_classes or saved_classes or 10
        self.input_shape = list(check_input_shape(input_shape or saved_shape or (28, 28, 1)))
        self.layers = specs if specs is not None else default_layers(self.num_classes,
                                                                     self.input_shape)
        self._ready = True
        self._sync_rows()
        self._rebuild()

    # --- public API -------------------------------------------------------------------
    def add_layer(self, kind: str, index: int | None = None, **fields: Any) -> None:
        """Insert a layer of ``kind`` (with its defaults, then ``fields``).

        Args:
            kind: one of ``LAYER_TYPES``.
            index: where (0-based). Defaults to None: before the output layer
                (a last Dense with ``num_classes`` units), else at the end.

        Raises:
            UsageError: an unknown type or field, or a bad index.
        """
        layers = list(self.layers)
        if index is None:
            last = layers[-1] if layers else None
            output = last is not None and last.kind == "Dense" and \
                last.units == self.num_classes
            index = len(layers) - 1 if output else len(layers)
        if not 0 <= index <= len(layers):
            raise UsageError(f"index must be in 0..{len(layers)}, not {index}")
        layers.insert(index, new_layer(kind, **fields))
        self.layers = layers

    def set_layer(self, index: int, **fields: Any) -> None:
        """Change fields of layer ``index`` (``kind=`` switches its type).

        Raises:
            UsageError: a bad index, field or value.
        """
        layers = list(self.layers)
        layers[self._index(index)] = edited(layers[index], **fields)
        self.layers = layers

    def drop_layer(self, index: int) -> None:
        """Remove layer ``index``.

        Raises:
            UsageError: a bad index.
        """
        layers = list(self.layers)
        del layers[self._index(index)]
        self.layers = layers

    def move_layer(self, index: int, offset: int) -> None:
        """Move layer ``index`` up (``offset < 0``) or down; stops at the ends."""
        layers = list(self.layers)
        spec = layers.pop(self._index(index))
        layers.insert(max(0, min(len(layers), index + offset)), spec)
        self.layers = layers

    def model_json(self) -> str:
        """The model's Keras JSON.

        Raises:
            UsageError: Keras refuses the model (its message, and which layer).
        """
        if self.built is None:
            raise UsageError(self.error or "the model is not built yet")
        return self.built.model_json

    def save(self, name: str | None = None, description: str | None = None) -> int:
        """Save the model as a new row of ``model_arch_table``; returns its ``model_id``.

        Raises:
            UsageError: Keras or the database refuses the model.
        """
        text = self.model_json()
        model_id = api.load_model(self.model_arch_table, text, name=name,
                                  description=description or self._description(), dsn=self.dsn)
        self._saved_json = text
        self.saved_model_id = model_id
        self.status.value = (f"saved as model_id <b>{model_id}</b> in "
                             f"{html.escape(self.model_arch_table)}")
        return model_id

    def add_to_selection(self, model_selection_table: str | None = None) -> list[ModelConfig]:
        """Add the model with every (compile, fit) pair of a model selection table.

        Saves the model first when it changed since the last save. Then calls
        ``on_retrain(editor, configs)`` when given.

        Returns:
            The configurations added.

        Raises:
            UsageError: no selection table given, or the database refuses.
        """
        table = model_selection_table or self.model_selection_table
        if not table:
            raise UsageError("no model_selection_table to add the model to")
        if self.saved_model_id is None or self._saved_json != self.model_json():
            self.save(self.name_text.value or None)
        configs = api.add_to_selection(table, self.saved_model_id, dsn=self.dsn)
        self.added = configs
        keys = ", ".join(str(c.mst_key) for c in configs) or "none (all were there)"
        self.status.value = (f"model_id <b>{self.saved_model_id}</b> added to "
                             f"{html.escape(table)}: mst_key {keys}")
        if self.on_retrain is not None:
            self.on_retrain(self, configs)
        return configs

    # --- validation and observers --------------------------------------------------------
    @validate("input_shape")
    def _check_shape(self, proposal: dict) -> list[int]:
        try:
            return list(check_input_shape(proposal["value"]))
        except UsageError as error:
            raise TraitError(str(error)) from None

    @validate("num_classes")
    def _check_classes(self, proposal: dict) -> int:
        if proposal["value"] < 1:
            raise TraitError("num_classes must be at least 1")
        return proposal["value"]

    @validate("layers")
    def _check_layers(self, proposal: dict) -> list[LayerSpec]:
        if not all(isinstance(spec, LayerSpec) for spec in proposal["value"]):
            raise TraitError("layers must be LayerSpec values")
        return list(proposal["value"])

    @observe("layers", "input_shape", "num_classes")
    def _model_changed(self, change: dict) -> None:
        if self._ready and change["old"] != change["new"]:
            self._sync_rows()
            self._rebuild()

    # --- internals -------------------------------------------------------------------------
    def _initial(self, model: int | str | Mapping[str, Any] | None,
                 num_classes: int | None) -> tuple[list[LayerSpec] | None, list[int] | None,
                                                   int | None, str]:
        """Layers, input shape, output size and name of the starting model."""
        if model is None:
            return None, None, None, ""
        name = ""
        if isinstance(model, int) and not isinstance(model, bool):
            saved = api.read_model(self.model_arch_table, model, dsn=self.dsn)
            arch: str | Mapping[str, Any] = saved["model_arch"]
            name = f"{saved['name'] or 'model ' + str(model)} (edited)"
        else:
            arch = model
        shape, specs = specs_from_json(arch)
        last = specs[-1] if specs else None
        classes = last.units if last is not None and last.kind == "Dense" else None
        return specs, shape, classes, name

    def _index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or \
                not 0 <= index < len(self.layers):
            raise UsageError(f"no layer {index!r}: layers are 0..{len(self.layers) - 1}")
        return index

    def _set_error(self, message: str) -> None:
        if self.error != message:
            self.error = message

    def _description(self) -> str:
        return " → ".join(spec.describe() for spec in self.layers)

    def _sync_rows(self) -> None:
        while len(self._rows) < len(self.layers):
            self._rows.append(_LayerRow(self, len(self._rows)))
        if len(self._rows) > len(self.layers):
            for row in self._rows[len(self.layers):]:
                row.box.close()
            del self._rows[len(self.layers):]
        for row, spec in zip(self._rows, self.layers, strict=True):
            row.show(spec, len(self.layers))
        boxes = tuple(row.box for row in self._rows)
        if self.list_box.children != boxes:
            self.list_box.children = boxes

    def _rebuild(self) -> None:
        for row in self._rows:
            row.result("", "", None)
        try:
            built = build(self.layers, self.input_shape)
        except LayerError as error:
            self.built, self.num_params = None, None
            self._rows[error.index].result("✗", "", error.reason)
            self._show_problem(str(error), "")
            return
        except UsageError as error:
            self.built, self.num_params = None, None
            self._show_problem(str(error), "")
            return
        self.built = built
        self.num_params = built.num_params
        for row, info in zip(self._rows, built.layers, strict=True):
            row.result(_shape_text(info.output_shape), f"{info.params:,}", None)
        self.summary.value = (
            f"<b>{built.num_params:,}</b> parameters · input "
            f"{_shape_text((None, *built.input_shape))} → output "
            f"{_shape_text(built.output_shape)} · {len(built.layers)} layers")
        self._show_problem("", self._mismatch(built))

    def _mismatch(self, built: Built) -> str:
        out = built.output_shape
        if len(out) != 2:
            return (f"the model outputs {_shape_text(out)}: end with Flatten or "
                    f"GlobalAveragePooling2D and a Dense layer of {self.num_classes} units")
        if out[-1] != self.num_classes:
            return (f"the model outputs {out[-1]} values but the data has "
                    f"{self.num_classes} classes: the last Dense layer needs "
                    f"{self.num_classes} units")
        last = self.layers[-1]
        if last.kind == "Dense" and last.activation != "softmax":
            return "the last layer's activation is not softmax (categorical crossentropy " \
                   "expects probabilities)"
        return ""

    def _show_problem(self, error: str, warning: str) -> None:
        if self.error != error:
            self.error = error
        if self.warning != warning:
            self.warning = warning
        if error:
            self.summary.value = "<b>the model does not build</b>"
            text = f'<span style="color:#d62728">✗ {html.escape(error)}</span>'
        elif warning:
            text = f'<span style="color:#b35900">⚠ {html.escape(warning)}</span>'
        else:
            text = ""
        if self.problem.value != text:
            self.problem.value = text


class _LayerRow:
    """The widgets of one layer; edits go back to the editor as new specs."""

    def __init__(self, editor: ArchitectureEditor, index: int) -> None:
        self.editor = editor
        self.index = index
        self._showing = False
        self.number = widgets.Label(f"{index + 1}", layout=widgets.Layout(width="2.5em"))
        self.kind = widgets.Dropdown(options=LAYER_TYPES, layout=widgets.Layout(width="14em"))
        self.units = widgets.BoundedIntText(min=1, max=1_000_000, layout=_narrow())
        self.kernel = widgets.BoundedIntText(min=1, max=1024, layout=_narrow())
        self.activation = widgets.Dropdown(options=ACTIVATIONS, layout=widgets.Layout(
            width="8em"))
        self.rate = widgets.BoundedFloatText(min=0.0, max=0.99, step=0.05, layout=_narrow())
        self.up = widgets.Button(icon="arrow-up", layout=widgets.Layout(width="3em"),
                                 tooltip="move up")
        self.down = widgets.Button(icon="arrow-down", layout=widgets.Layout(width="3em"),
                                   tooltip="move down")
        self.drop = widgets.Button(icon="trash", layout=widgets.Layout(width="3em"),
                                   tooltip="drop this layer", button_style="danger")
        self.shape = widgets.Label(layout=widgets.Layout(width="11em"))
        self.params = widgets.Label(layout=widgets.Layout(width="8em"))
        self.message = widgets.HTML()
        self.box = widgets.VBox([widgets.HBox([
            self.number, self.kind, self.units, self.kernel, self.activation, self.rate,
            self.up, self.down, self.drop, self.shape, self.params]), self.message])
        report = guarded(editor.errors, editor._set_error, self._edited)
        for control in (self.kind, self.units, self.kernel, self.activation, self.rate):
            control.observe(report, names="value")
        self.up.on_click(guarded(editor.errors, editor._set_error,
                                 lambda _: editor.move_layer(self.index, -1)))
        self.down.on_click(guarded(editor.errors, editor._set_error,
                                   lambda _: editor.move_layer(self.index, 1)))
        self.drop.on_click(guarded(editor.errors, editor._set_error,
                                   lambda _: editor.drop_layer(self.index)))

    def show(self, spec: LayerSpec, count: int) -> None:
        """Show ``spec`` (setting only what differs, without echoing edits back)."""
        self._showing = True
        try:
            options = LAYER_TYPES if spec.editable else (spec.kind,)
            if self.kind.options != options:
                self.kind.options = options
            activations = ACTIVATIONS if spec.activation in ACTIVATIONS else (
                *ACTIVATIONS, spec.activation)
            if self.activation.options != activations:
                self.activation.options = activations
            values = {self.kind: spec.kind, self.units: spec.units, self.kernel: spec.kernel,
                      self.activation: spec.activation, self.rate: spec.rate}
            for control, value in values.items():
                if control.value != value:
                    control.value = value
            self.kind.disabled = not spec.editable
            for name in ("units", "kernel", "activation", "rate"):
                visible = "visible" if name in spec.fields else "hidden"
                control = getattr(self, name)
                if control.layout.visibility != visible:
                    control.layout.visibility = visible
            self.up.disabled = self.index == 0
            self.down.disabled = self.index == count - 1
        finally:
            self._showing = False

    def result(self, shape: str, params: str, message: str | None) -> None:
        """Show this layer's output shape and parameters, or Keras's refusal."""
        if self.shape.value != shape:
            self.shape.value = shape
        if self.params.value != params:
            self.params.value = params
        text = "" if not message else \
            f'<span style="color:#d62728">↳ Keras: {html.escape(message)}</span>'
        if self.message.value != text:
            self.message.value = text

    def _edited(self, change: dict) -> None:
        if self._showing or change["old"] == change["new"]:
            return
        spec = self.editor.layers[self.index]
        if change["owner"] is self.kind:
            self.editor.set_layer(self.index, kind=change["new"])
            return
        name = next(n for n in ("units", "kernel", "activation", "rate")
                    if getattr(self, n) is change["owner"])
        if name in spec.fields:
            self.editor.set_layer(self.index, **{name: change["new"]})


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if v is None else str(v) for v in shape) + ")"

