"""The architecture editor's model: a list of layer specs ↔ a Keras Sequential model.

``LayerSpec`` is a plain value (no Keras); ``build`` turns a list of them into
a Keras model in the client (Keras is imported lazily, the first time), with
every layer's output shape and parameter count, or names the layer Keras
refused and why. ``specs_from_json`` reads a saved Sequential architecture
back into specs, keeping every setting the editor does not show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gpdl_backend.errors import UsageError

LAYER_TYPES = ("Conv2D", "MaxPooling2D", "Dense", "Dropout", "Flatten", "BatchNormalization",
               "GlobalAveragePooling2D")
"""The layer types the editor offers."""
ACTIVATIONS = ("relu", "softmax", "sigmoid", "tanh", "linear", "elu", "selu", "gelu", "swish")
FIELDS = {"Conv2D": ("units", "kernel", "activation"), "MaxPooling2D": ("kernel",),
          "Dense": ("units", "activation"), "Dropout": ("rate",)}
"""The editable fields of each type (``units`` are a Conv2D's filters, ``kernel`` a
MaxPooling2D's pool size)."""
DEFAULTS: dict[str, dict[str, Any]] = {
    "Conv2D": {"units": 32, "kernel": 3, "activation": "relu"},
    "MaxPooling2D": {"kernel": 2},
    "Dense": {"units": 64, "activation": "relu"},
    "Dropout": {"rate": 0.25},
}
_NOT_KEPT = ("name", "batch_input_shape", "batch_shape", "input_shape")
MAX_MESSAGE = 300
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CALLING = re.compile(r"^Exception encountered when calling [\w.]+\(\)\.\s*")


@dataclass(frozen=True)
class LayerSpec:
    """One layer as the editor shows it.

    Attributes:
        kind: the Keras class name, e.g. ``"Conv2D"``.
        units: a Dense layer's units or a Conv2D's filters. Defaults to 64.
        kernel: a Conv2D's kernel size or a MaxPooling2D's pool size. Defaults to 3.
        activation: Dense / Conv2D activation. Defaults to ``"relu"``.
        rate: a Dropout's rate. Defaults to 0.25.
        base: the layer's saved Keras config (settings not shown are kept).
            Defaults to none.
        raw: a saved layer of a type the editor does not offer, kept as is
            (it can be moved or dropped, not edited). Defaults to None.
    """

    kind: str
    units: int = 64
    kernel: int = 3
    activation: str = "relu"
    rate: float = 0.25
    base: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    raw: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def editable(self) -> bool:
        return self.raw is None and self.kind in LAYER_TYPES

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields that mean something for this type."""
        return FIELDS.get(self.kind, ()) if self.editable else ()

    def to_keras(self) -> dict[str, Any]:
        """The layer as Keras serializes it (``class_name`` and ``config``)."""
        if self.raw is not None:
            return dict(self.raw)
        config = {k: v for k, v in self.base.items() if k not in _NOT_KEPT}
        kind = self.kind
        if kind == "Conv2D":
            config.update(filters=self.units, kernel_size=[self.kernel, self.kernel],
                          activation=self.activation)
        elif kind == "MaxPooling2D":
            if config.get("strides") == config.get("pool_size"):
                config["strides"] = None  # follows the pool size, as by default
            config["pool_size"] = [self.kernel, self.kernel]
        elif kind == "Dense":
            config.update(units=self.units, activation=self.activation)
        elif kind == "Dropout":
            config["rate"] = self.rate
        return {"module": "keras.layers", "class_name": kind, "config": config,
                "registered_name": None}

    def describe(self) -> str:
        """A short text: ``Conv2D 32 3×3 relu``."""
        if self.kind == "Conv2D":
            return f"Conv2D {self.units} {self.kernel}×{self.kernel} {self.activation}"
        if self.kind == "MaxPooling2D":
            return f"MaxPooling2D {self.kernel}×{self.kernel}"
        if self.kind == "Dense":
            return f"Dense {self.units} {self.activation}"
        if self.kind == "Dropout":
            return f"Dropout {self.rate:g}"
        return self.kind


def new_layer(kind: str, **fields: Any) -> LayerSpec:
    """A layer of ``kind`` with that type's defaults, then ``fields``.

    Raises:
        UsageError: an unknown type or field, or a value out of range.
    """
    if kind not in LAYER_TYPES:
        raise UsageError(f"unknown layer type {kind!r}; choose {', '.join(LAYER_TYPES)}")
    return edited(LayerSpec(kind, **DEFAULTS.get(kind, {})), **fields)


def edited(spec: LayerSpec, **fields: Any) -> LayerSpec:
    """``spec`` with new field values (``kind`` switches to that type's defaults).

    Raises:
        UsageError: a field that does not exist, or a bad value.
    """
    if spec.raw is not None and fields:
        raise UsageError(f"a {spec.kind} layer cannot be edited here, only moved or dropped")
    kind = fields.pop("kind", spec.kind)
    if kind != spec.kind:
        if kind not in LAYER_TYPES:
            raise UsageError(f"unknown layer type {kind!r}; choose {', '.join(LAYER_TYPES)}")
        spec = LayerSpec(kind, **DEFAULTS.get(kind, {}))
    unknown = [name for name in fields if name not in ("units", "kernel", "activation", "rate")]
    if unknown:
        raise UsageError(f"layers have no field {unknown[0]!r}")
    _check_fields(fields)
    return replace(spec, **fields)


def default_layers(num_classes: int, input_shape: Sequence[int] = (28, 28, 1)) -> list[LayerSpec]:
    """A small CNN for ``num_classes`` classes (a starting point to edit).

    One or two convolution + pooling blocks, as many as the image size allows.
    """
    size, filters = min(int(v) for v in input_shape[:2]), 32
    layers: list[LayerSpec] = []
    while len(layers) < 4 and (size >= 6 or (size >= 4 and not layers)):
        layers += [new_layer("Conv2D", units=filters), new_layer("MaxPooling2D")]
        size, filters = (size - 2) // 2, filters * 2
    return [*layers, new_layer("Flatten"), new_layer("Dense", units=64),
            new_layer("Dropout", rate=0.25),
            new_layer("Dense", units=num_classes, activation="softmax")]


def specs_from_json(model_arch: str | Mapping[str, Any]) -> tuple[list[int] | None,
                                                                   list[LayerSpec]]:
    """The input shape and layers of a saved Sequential model's JSON.

    Raises:
        UsageError: not JSON, or not a Sequential model.
    """
    try:
        arch = json.loads(model_arch) if isinstance(model_arch, str) else dict(model_arch)
    except ValueError as error:
        raise UsageError(f"model architecture is not valid JSON: {error}") from error
    if arch.get("class_name") != "Sequential":
        raise UsageError(f"only Sequential models can be edited here, not "
                         f"{arch.get('class_name')!r} models")
    config = arch.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers", [])
    input_shape = None
    specs = []
    for layer in layers:
        kind, settings = layer.get("class_name"), dict(layer.get("config") or {})
        shape = settings.get("batch_shape") or settings.get("batch_input_shape")
        if shape and input_shape is None:
            input_shape = [int(v) for v in shape[1:]]
        if kind == "InputLayer":
            continue
        specs.append(_spec_of(kind, settings, layer))
    return input_shape, specs


@dataclass(frozen=True)
class LayerInfo:
    """One built layer: its name, type, output shape and parameter count."""

    name: str
    kind: str
    output_shape: tuple[int | None, ...]
    params: int


@dataclass(frozen=True)
class Built:
    """A model Keras built from the specs."""

    model_json: str
    num_params: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int | None, ...]
    layers: tuple[LayerInfo, ...]


class LayerError(UsageError):
    """Keras refused one layer (``index`` in the list, 0-based)."""

    def __init__(self, index: int, kind: str, message: str) -> None:
        super().__init__(f"layer {index + 1} ({kind}): {message}")
        self.index = index
        self.reason = message


def build(specs: Sequence[LayerSpec], input_shape: Sequence[int]) -> Built:
    """Build the model in Keras (imported on first use), layer by layer.

    Raises:
        UsageError: an empty model or a bad input shape.
        LayerError: the first layer Keras refused, with Keras's message.
    """
    shape = check_input_shape(input_shape)
    if not specs:
        raise UsageError("the model has no layers: add one")
    from gpdl_backend.keras_model import import_keras

    keras = import_keras()
    model = keras.Sequential()
    model.add(keras.Input(shape=shape))
    for index, spec in enumerate(specs):
        try:
            model.add(keras.layers.deserialize(spec.to_keras()))
        except Exception as error:
            raise LayerError(index, spec.kind, keras_message(error)) from error
    infos = tuple(LayerInfo(layer.name, type(layer).__name__, _shape(layer.output.shape),
                            int(layer.count_params())) for layer in model.layers)
    return Built(model.to_json(), int(model.count_params()), shape, infos[-1].output_shape,
                 infos)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``(height, width, channels)`` as positive integers.

    Raises:
        UsageError: anything else.
    """
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"input_shape must be (height, width, channels), not {input_shape!r}")
    return shape


def keras_message(error: BaseException) -> str:
    """Keras's message, on one line, without its call details, not too long."""
    text = _ANSI.sub("", str(error)).split("Arguments received by")[0]
    text = _CALLING.sub("", " ".join(text.split())).strip() or type(error).__name__
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE - 1] + "…"
    return text


def _shape(shape: Any) -> tuple[int | None, ...]:
    return tuple(None if v is None else int(v) for v in shape)


def _spec_of(kind: str, settings: dict[str, Any], layer: Mapping[str, Any]) -> LayerSpec:
    if kind not in LAYER_TYPES:
        return LayerSpec(kind, raw=dict(layer))
    values: dict[str, Any] = dict(DEFAULTS.get(kind, {}))
    if kind in ("Conv2D", "Dense"):
        values["units"] = int(settings.get("filters" if kind == "Conv2D" else "units", 0))
        activation = settings.get("activation", "linear")
        values["activation"] = activation if isinstance(activation, str) else "linear"
    if kind == "Conv2D":
        values["kernel"] = _first(settings.get("kernel_size"), 3)
    if kind == "MaxPooling2D":
        values["kernel"] = _first(settings.get("pool_size"), 2)
    if kind == "Dropout":
        values["rate"] = float(settings.get("rate", 0.25))
    return LayerSpec(kind, base=settings, **values)


def _first(value: Any, default: int) -> int:
    if isinstance(value, list | tuple) and value:
        return int(value[0])
    return default if value is None else int(value)


def _check_fields(fields: Mapping[str, Any]) -> None:
    for name in ("units", "kernel"):
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise UsageError(f"{name} must be a positive integer, not {value!r}")
    rate = fields.get("rate")
    if rate is not None and not (isinstance(rate, int | float) and 0 <= rate < 1):
        raise UsageError(f"rate must be in [0, 1), not {rate!r}")
    activation = fields.get("activation")
    if activation is not None and not isinstance(activation, str):
        raise UsageError(f"activation must be a name such as 'relu', not {activation!r}")
