"""Keras models inside the server: build from JSON, describe, (de)serialize state.

Weights travel as the float32 values of ``model.get_weights()`` concatenated
(MADlib's format). Optimizer state travels beside them, each optimizer
variable's raw values in order, so that a configuration hopping from segment
to segment trains exactly as if it had stayed in one process.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from gpdl_backend.errors import UsageError


def import_keras() -> Any:
    """Import Keras (TensorFlow backend) quietly; a few seconds the first time."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def arch_key(model_arch: str) -> str:
    """A short stable key of an architecture's JSON (for caches)."""
    return hashlib.sha1(model_arch.encode()).hexdigest()[:16]


def build_model(model_arch: str | dict) -> Any:
    """A fresh Keras model from its JSON.

    Raises:
        UsageError: the JSON is not a model Keras can build (Keras's message),
            or the model has no input shape (nothing to train).
    """
    keras = import_keras()
    text = model_arch if isinstance(model_arch, str) else json.dumps(model_arch)
    try:
        json.loads(text)
    except (TypeError, ValueError) as error:
        raise UsageError(f"model architecture is not valid JSON: {error}") from error
    try:
        model = keras.models.model_from_json(text)
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise UsageError(f"Keras cannot build this model: {type(error).__name__}: "
                         f"{message}") from error
    if not isinstance(model, keras.Model):  # Keras hands plain JSON values back as they are
        raise UsageError("Keras cannot build this model: the JSON describes a "
                         f"{type(model).__name__}, not a Keras model (expected the output "
                         "of model.to_json())")
    if not model.built:  # e.g. a Sequential without layers or without an Input
        raise UsageError("Keras cannot build this model: it has no input shape; start it "
                         "with keras.Input(shape=...) (a Sequential without layers has none)")
    return model


def describe(model: Any) -> dict:
    """Input shape, class count, parameter count and layers of a model."""
    input_shape = [int(v) for v in model.inputs[0].shape[1:]] if model.inputs else None
    outputs = model.outputs[0].shape if model.outputs else None
    return {
        "input_shape": input_shape,
        "num_classes": int(outputs[-1]) if outputs is not None else None,
        "num_params": int(model.count_params()),
        "layers": [
            {"name": layer.name, "type": type(layer).__name__,
             "output_shape": _shape_of(layer)}
            for layer in model.layers
        ],
    }


def _shape_of(layer: Any) -> list | None:
    try:
        return [None if v is None else int(v) for v in layer.output.shape]
    except (AttributeError, ValueError):
        return None


def check_fits_data(model: Any, image_shape: list[int], num_classes: int) -> None:
    """Refuse a model whose input or output does not match the packed data.

    Raises:
        UsageError: naming the mismatch.
    """
    info = describe(model)
    if info["input_shape"] is not None and list(info["input_shape"]) != list(image_shape):
        raise UsageError(f"the model's input shape {info['input_shape']} does not match "
                         f"the images' {list(image_shape)}")
    if info["num_classes"] != num_classes:
        raise UsageError(f"the model outputs {info['num_classes']} values but the data has "
                         f"{num_classes} classes")


def weights_to_bytes(model: Any) -> bytes:
    """The model's weights as concatenated float32 (MADlib's layout)."""
    return b"".join(np.asarray(w, dtype=np.float32).tobytes() for w in model.get_weights())


def set_weights_from_bytes(model: Any, data: bytes) -> None:
    """Load weights written by ``weights_to_bytes``.

    Raises:
        UsageError: the byte count does not fit the model.
    """
    flat = np.frombuffer(data, dtype=np.float32)
    shapes = [w.shape for w in model.get_weights()]
    expected = sum(int(np.prod(s)) for s in shapes)
    if flat.size != expected:
        raise UsageError(f"weights hold {flat.size} values but the model has {expected}")
    arrays, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(flat[offset:offset + size].reshape(shape))
        offset += size
    model.set_weights(arrays)


def optimizer_state_to_bytes(model: Any) -> bytes:
    """The optimizer's variables (iterations, moments...) as raw bytes, in order."""
    return b"".join(np.asarray(v.numpy()).tobytes() for v in model.optimizer.variables)


def set_optimizer_state(model: Any, data: bytes) -> None:
    """Restore what ``optimizer_state_to_bytes`` wrote (the learning rate included).

    Raises:
        UsageError: the byte count does not fit the optimizer.
    """
    offset = 0
    for variable in model.optimizer.variables:
        current = np.asarray(variable.numpy())
        if offset + current.nbytes > len(data):
            raise UsageError("optimizer state is shorter than the optimizer's variables")
        chunk = np.frombuffer(data, dtype=current.dtype, count=current.size, offset=offset)
        variable.assign(chunk.reshape(current.shape))
        offset += current.nbytes
    if offset != len(data):
        raise UsageError(f"optimizer state has {len(data)} bytes, the optimizer {offset}")
