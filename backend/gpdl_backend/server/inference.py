"""Prediction inside the server: classes and probabilities for image rows or one image.

``gpdl.predict_rows`` is a row-level function over an image table (many images
per row): it builds the model once per backend (cached in ``GD`` by the hash
of its architecture and weights), predicts the row's images and returns them
in long format, MADlib's ``madlib_keras_predict`` output. ``gpdl.predict_image``
reads one configuration of a trained model table and classifies an uploaded
PNG or JPEG, decoded and resized like the training images.

Runs inside the database server: imports numpy, Pillow and Keras, never a
client driver.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from gpdl_backend import keras_model
from gpdl_backend.errors import UsageError
from gpdl_backend.server import resolver

__all__ = ["PRED_TYPES", "cached_model", "check_fits", "predict_image", "predict_rows",
           "select_classes"]

PRED_TYPES = ("response", "prob", "top_k", "threshold")
"""What ``predict_rows`` returns per image: the top class, every class, the
``k`` best, or the classes with probability at least ``threshold``."""

_MODELS = "gpdl.predict_models"
_MAX_MODELS = 4
_BATCH = 256
_COLOR_MODES = {1: "L", 3: "RGB"}


def cached_model(GD: Any, model_arch: str, weights: bytes | None) -> Any:
    """The Keras model for an architecture and weights, built once per backend.

    The few most recently used models are kept (keyed by the hashes of the
    architecture and the weights), so a backend predicting for one model
    after another does not grow without bound.

    Raises:
        UsageError: Keras cannot build the architecture, or the weights do not fit it.
    """
    models: OrderedDict = GD.setdefault(_MODELS, OrderedDict())
    digest = hashlib.blake2b(bytes(weights), digest_size=16).hexdigest() if weights else ""
    key = (keras_model.arch_key(model_arch), digest)
    if key in models:
        models.move_to_end(key)
        return models[key]
    _quiet_gpus()
    model = keras_model.build_model(model_arch)
    if weights is not None:
        keras_model.set_weights_from_bytes(model, bytes(weights))
    models[key] = model
    while len(models) > _MAX_MODELS:
        models.popitem(last=False)
    return model


def _quiet_gpus() -> None:
    """Let several backends share a GPU: allocate its memory as needed."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        # RuntimeError: TensorFlow already initialized its devices in this backend.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


def select_classes(
    probs: np.ndarray, pred_type: str, k: int | None = None, threshold: float | None = None
) -> list[list[tuple[int, float, int]]]:
    """Per image, the chosen ``(class index, probability, rank)``, best first.

    Ranks count from 1 in order of decreasing probability (ties: lower class
    index first) and are the same whatever ``pred_type`` keeps.

    Args:
        probs: model outputs, one row per image.
        pred_type: one of ``PRED_TYPES``.
        k: classes to keep for ``"top_k"`` (more than the classes keeps all).
        threshold: lowest probability kept for ``"threshold"``.

    Raises:
        UsageError: an unknown ``pred_type`` or a missing ``k`` / ``threshold``.

    Example:
        >>> select_classes(np.array([[0.2, 0.7, 0.1]]), "top_k", k=2)
        [[(1, 0.7, 1), (0, 0.2, 2)]]
    """
    if pred_type not in PRED_TYPES:
        raise UsageError(f"pred_type must be one of {PRED_TYPES}, not {pred_type!r}")
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, axis=1, kind="stable")
    keep = probs.shape[1]
    if pred_type == "response":
        keep = 1
    elif pred_type == "top_k":
        if k is None or k < 1:
            raise UsageError(f"top_k prediction needs k >= 1, not {k!r}")
        keep = min(k, keep)
    elif pred_type == "threshold" and threshold is None:
        raise UsageError("threshold prediction needs a threshold")
    chosen = []
    for row, ranked in zip(probs, order, strict=True):
        picks = [(int(c), float(row[c]), rank) for rank, c in enumerate(ranked[:keep], 1)]
        if pred_type == "threshold":
            picks = [p for p in picks if p[1] >= threshold]
        chosen.append(picks)
    return chosen


def predict_rows(
    GD: Any,
    ids: list[str] | None,
    x: bytes | None,
    dims: list[int] | None,
    model_arch: str,
    weights: bytes | None,
    compile_params: str | None,
    normalizing_const: float | None,
    class_values: list[str],
    pred_type: str,
    k: int | None,
    threshold: float | None,
) -> list[tuple[str, str, int, float, int]]:
    """Predict the images of one image-table row.

    Args:
        ids: one id per image (e.g. the row's ``fullpaths``).
        x: the row's uint8 pixels, N×H×W×C.
        dims: ``{N, H, W, C}``.
        model_arch: the model's JSON.
        weights: the trained weights (``keras_model.weights_to_bytes``).
        compile_params: unused (prediction needs no compiled model); kept so
            a configuration row can be passed as it is. May be NULL.
        normalizing_const: pixels are divided by it, as in training. NULL means 1.
        class_values: class names, by class index.
        pred_type, k, threshold: see ``select_classes``.

    Returns:
        Rows ``(id, class_name, class_value, prob, rank)``; ``class_value`` is
        the class index into ``class_values``.

    Raises:
        UsageError: the images' shape is not the model's input shape, the
            model's output size is not the number of classes, or a corrupt row.
    """
    if x is None or not dims or dims[0] == 0:
        return []
    model = cached_model(GD, model_arch, weights)
    _check_model(model, list(dims[1:]), class_values)
    count = int(dims[0])
    if ids is None or len(ids) != count:
        raise UsageError(f"corrupt image row: {count} images but "
                         f"{0 if ids is None else len(ids)} ids")
    data = bytes(x)
    if len(data) != int(np.prod(dims)):
        raise UsageError(f"corrupt image row: dims {list(dims)} but x has {len(data)} bytes")
    pixels = np.frombuffer(data, dtype=np.uint8).reshape([int(d) for d in dims])
    probs = _predict(model, pixels, normalizing_const)
    rows = []
    for image_id, picks in zip(ids, select_classes(probs, pred_type, k, threshold), strict=True):
        rows.extend((image_id, class_values[c], c, p, rank) for c, p, rank in picks)
    return rows


def predict_image(
    plpy: Any, GD: Any, model_table: str, mst_key: int | None, image: bytes, k: int = 3
) -> list[tuple[str, int, float, int]]:
    """Top-``k`` classes of one PNG/JPEG image for one configuration of a model table.

    Reads ``model_weights, model_arch`` of ``mst_key`` from ``model_table`` and
    ``class_values, normalizing_const`` from ``<model_table>_summary``. The
    image is decoded to the model's colour mode (1 channel: ``L``, 3: ``RGB``)
    and resized (bilinear) to its input height and width.

    Args:
        plpy: the plpython module.
        model_table: the trained model table, ``name`` or ``schema.name``.
        mst_key: the configuration; NULL when the table holds exactly one.
        image: the file's bytes.
        k: classes to return. Defaults to 3.

    Returns:
        Rows ``(class_name, class_value, prob, rank)``, best first.

    Raises:
        UsageError: a missing table or configuration, a model whose input is
            not an image, or ``k < 1``.
        ImageDecodeError: the bytes are not a readable image.
    """
    if k is None or k < 1:
        raise UsageError(f"k must be a positive integer, not {k!r}")
    if image is None:
        raise UsageError("no image given")
    table, summary = _model_tables(plpy, model_table)
    weights, arch = _configuration(plpy, table, model_table, mst_key)
    rows = plpy.execute(f"SELECT class_values, normalizing_const FROM {summary} LIMIT 1")
    if not rows:
        raise UsageError(f"{model_table}_summary is empty")
    class_values = list(rows[0]["class_values"])
    model = cached_model(GD, arch, weights)
    shape = _input_shape(model)
    _check_model(model, shape, class_values)
    if shape[2] not in _COLOR_MODES:
        raise UsageError(f"the model takes {shape[2]} channels; images have 1 (L) or 3 (RGB)")
    pixels = resolver.decode(bytes(image), _COLOR_MODES[shape[2]], (shape[0], shape[1]))
    probs = _predict(model, pixels[np.newaxis], rows[0]["normalizing_const"])
    picks = select_classes(probs, "top_k", k=k)[0]
    return [(class_values[c], c, p, rank) for c, p, rank in picks]


def _predict(model: Any, pixels: np.ndarray, normalizing_const: float | None) -> np.ndarray:
    """Model outputs for uint8 images, normalized as in training, in batches."""
    scale = np.float32(normalizing_const or 1.0)
    outputs = []
    for start in range(0, pixels.shape[0], _BATCH):
        batch = pixels[start:start + _BATCH].astype(np.float32) / scale
        outputs.append(np.asarray(model.predict_on_batch(batch)))
    return np.concatenate(outputs)


def _input_shape(model: Any) -> list[int | None]:
    shape = keras_model.describe(model)["input_shape"]
    _check_image_input(shape)
    return shape


def _check_image_input(shape: list[int | None] | None) -> None:
    if shape is None or len(shape) != 3:
        raise UsageError(f"the model's input {shape} is not an image (height, width, channels)")


def check_fits(input_shape: list[int | None] | None, image_shape: list[int] | None,
               outputs: int | None, num_class_values: int) -> None:
    """Refuse images of another shape than the model's input, or a class count mismatch.

    Pure (no Keras): the client checks ``gpdl.model_info``'s answer with it
    before any table exists, ``predict_rows`` each built model.

    Args:
        input_shape: the model's input, ``[height, width, channels]`` (None: any).
        image_shape: the images' ``[height, width, channels]``; None skips the check
            (no images).
        outputs: the model's output units.
        num_class_values: how many class values name them.

    Raises:
        UsageError: naming the mismatch.

    Example:
        >>> check_fits([8, 8, 3], [8, 8, 3], 3, 3)
    """
    _check_image_input(input_shape)
    if image_shape is not None and any(
            want is not None and want != have
            for want, have in zip(input_shape, image_shape, strict=True)):
        have = "x".join(map(str, image_shape))
        want = "x".join("?" if v is None else str(v) for v in input_shape)
        raise UsageError(f"images are {have} but the model expects {want} (height x width x "
                         "channels); reload the images with resize to the model's input")
    if outputs != num_class_values:
        raise UsageError(f"the model outputs {outputs} values but there are "
                         f"{num_class_values} class values")


def _check_model(model: Any, image_shape: list[int], class_values: list[str]) -> None:
    """``check_fits`` for a built model."""
    info = keras_model.describe(model)
    check_fits(info["input_shape"], image_shape, info["num_classes"], len(class_values))


def _model_tables(plpy: Any, model_table: str) -> tuple[str, str]:
    """Quoted names of a model table and its summary; both must exist."""
    parts = model_table.split(".") if isinstance(model_table, str) else []
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise UsageError(f"bad model table name {model_table!r}")
    quoted = [plpy.quote_ident(p) for p in parts]
    table = ".".join(quoted)
    summary = ".".join([*quoted[:-1], plpy.quote_ident(parts[-1] + "_summary")])
    plan = plpy.prepare("SELECT to_regclass($1) IS NOT NULL AS ok", ["text"])
    for name, shown in ((table, model_table), (summary, f"{model_table}_summary")):
        if not plpy.execute(plan, [name])[0]["ok"]:
            raise UsageError(f"model table {shown} does not exist")
    return table, summary


def _configuration(plpy: Any, table: str, shown: str, mst_key: int | None) -> tuple[Any, str]:
    """``(weights, arch)`` of one configuration of a model table."""
    if mst_key is None:
        rows = plpy.execute(f"SELECT model_weights, model_arch FROM {table} LIMIT 2")
        if not rows:
            raise UsageError(f"{shown} holds no model")
        if len(rows) > 1:
            raise UsageError(f"{shown} holds several configurations; pass mst_key")
    else:
        plan = plpy.prepare(
            f"SELECT model_weights, model_arch FROM {table} WHERE mst_key = $1", ["integer"])
        rows = plpy.execute(plan, [mst_key])
        if not rows:
            raise UsageError(f"mst_key {mst_key} is not in {shown}")
    return rows[0]["model_weights"], rows[0]["model_arch"]
