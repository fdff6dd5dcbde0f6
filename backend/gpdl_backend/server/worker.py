"""The per-hop training and evaluation steps, run inside a segment's backend.

``gpdl.train_unit`` / ``gpdl.evaluate_unit`` are row-level functions called
once per packed buffer row of one segment (``WHERE __dist_key__ = k``): the
rows' arrays are gathered into the process-global ``GD`` and, at the last
row, the model trains (or evaluates) and one result row is returned. With
caching, the partition stays in ``GD`` and later hops pass no pixels at all
(``x IS NULL``); a cache miss (Greenplum may recycle idle segment processes)
raises ``CacheMissError``'s message so the driver resends the data.

Each backend keeps TensorFlow imported and its compiled models (one per
architecture + compile parameters) across hops.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpdl_backend import keras_model, selection
from gpdl_backend.errors import UnitFailedError, UsageError

CACHE_MISS = "gpdl cache miss"
_MODELS = "gpdl.models"
_PARTITIONS = "gpdl.partitions"
_PENDING = "gpdl.pending"


@dataclass
class Partition:
    """One segment's share of a packed table, decoded for Keras."""

    x: np.ndarray  # float32, normalized, N×H×W×C
    labels: np.ndarray  # int32 class indexes
    num_classes: int
    _one_hot: np.ndarray | None = field(default=None, repr=False)

    @property
    def one_hot(self) -> np.ndarray:
        if self._one_hot is None:
            self._one_hot = np.eye(self.num_classes, dtype=np.float32)[self.labels]
        return self._one_hot

    def targets(self, sparse: bool) -> np.ndarray:
        return self.labels if sparse else self.one_hot


@dataclass
class CachedModel:
    """A compiled model and its optimizer's state right after building."""

    model: Any
    compile_params: selection.CompileParams
    fresh_optimizer_state: bytes


def setup_tensorflow(GD: Any, threads: int, use_gpus: bool, segment: int) -> None:
    """Import TensorFlow once per backend with its thread count and GPU.

    Raises:
        UsageError: GPUs were asked for but this host has none.
    """
    if GD.get("gpdl.tf_ready"):
        return
    keras_model.import_keras()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:
        pass  # TensorFlow already ran in this backend: keep its threads
    gpus = tf.config.list_physical_devices("GPU")
    if use_gpus:
        if not gpus:
            import socket

            raise UsageError(f"use_gpus was asked for but host {socket.gethostname()} "
                             "has no GPU visible to TensorFlow")
        mine = gpus[segment % len(gpus)]
        try:
            tf.config.set_visible_devices(mine, "GPU")
            tf.config.experimental.set_memory_growth(mine, True)
        except RuntimeError:
            pass  # runtime already initialized with its devices
    elif gpus:
        with contextlib.suppress(RuntimeError):
            tf.config.set_visible_devices([], "GPU")
    GD["gpdl.tf_ready"] = True


def cached_model(GD: Any, model_arch: str, compile_params: str) -> CachedModel:
    """The compiled model for an architecture + compile parameters, built once."""
    models = GD.setdefault(_MODELS, {})
    key = (keras_model.arch_key(model_arch), compile_params)
    if key not in models:
        params = selection.parse_compile_params(compile_params)
        model = keras_model.build_model(model_arch)
        model.compile(**selection.compile_kwargs(params))
        model.optimizer.build(model.trainable_variables)
        models[key] = CachedModel(model, params, keras_model.optimizer_state_to_bytes(model))
    return models[key]


def gather(GD: Any, token: str, cache_key: str, buffer_id: int, num_buffers: int,
           x: bytes | None, y: bytes | None, x_shape: list[int], num_classes: int,
           normalizing_const: float, use_caching: bool) -> Partition | None:
    """Collect one buffer row; the partition once all rows of the query are in.

    Rows passed with ``x IS NULL`` ask for the cached partition instead.

    Args:
        token: unique per query, so rows of an aborted query never mix in.
        cache_key: names the packed table partition (table oid + dist key).
        num_buffers: the rows this query passes.

    Raises:
        UnitFailedError: ``CACHE_MISS`` when the cache was asked for but is gone.
    """
    pending = GD.get(_PENDING)
    if pending is None or pending["token"] != token:
        pending = GD[_PENDING] = {"token": token, "rows": {}}
    pending["rows"][buffer_id] = None if x is None else (x, y, x_shape)
    if len(pending["rows"]) < num_buffers:
        return None
    del GD[_PENDING]
    partitions = GD.setdefault(_PARTITIONS, {})
    rows = [pending["rows"][b] for b in sorted(pending["rows"])]
    if any(row is None for row in rows):
        if cache_key not in partitions:
            raise UnitFailedError(CACHE_MISS)
        return partitions[cache_key]
    partition = _decode(rows, num_classes, normalizing_const)
    if use_caching:
        partitions[cache_key] = partition
    else:
        partitions.pop(cache_key, None)
    return partition


def _decode(rows: list[tuple], num_classes: int, normalizing_const: float) -> Partition:
    images = [np.frombuffer(x, dtype=np.uint8).reshape(shape) for x, _, shape in rows]
    labels = [np.frombuffer(y, dtype=">i2").astype(np.int32) for _, y, _ in rows]
    x = np.concatenate(images).astype(np.float32)
    x /= np.float32(normalizing_const)
    return Partition(x, np.concatenate(labels), num_classes)


def _ready(GD: Any, token: str, cache_key: str, buffer_id: int, num_buffers: int,
           x: bytes | None, y: bytes | None, x_shape: list[int], model_arch: str,
           compile_params: str, num_classes: int, normalizing_const: float, threads: int,
           use_gpus: bool, segment: int,
           use_caching: bool) -> tuple[Partition, CachedModel, float] | None:
    """What a unit needs once the query's last buffer row is in: partition, model, start time.

    None for the rows before the last one.
    """
    setup_tensorflow(GD, threads, use_gpus, segment)
    partition = gather(GD, token, cache_key, buffer_id, num_buffers, x, y, x_shape,
                       num_classes, normalizing_const, use_caching)
    if partition is None:
        return None
    started = time.perf_counter()
    return partition, cached_model(GD, model_arch, compile_params), started


def train_unit(GD: Any, token: str, cache_key: str, buffer_id: int, num_buffers: int,
               x: bytes | None, y: bytes | None, x_shape: list[int], model_arch: str,
               compile_params: str, fit_params: str, weights: bytes | None,
               optimizer_state: bytes | None, num_classes: int, normalizing_const: float,
               seed: int, threads: int, use_gpus: bool, segment: int,
               use_caching: bool) -> list[tuple]:
    """One configuration's sub-epoch(s) on this segment's partition.

    Returns:
        ``[]`` until the last buffer row, then one row
        ``(weights, optimizer_state, loss, metric, images, seconds, metrics)``:
        ``metric`` is the first compiled metric (MADlib's one), ``metrics``
        every compiled metric in the order of the compile parameters.
    """
    ready = _ready(GD, token, cache_key, buffer_id, num_buffers, x, y, x_shape, model_arch,
                   compile_params, num_classes, normalizing_const, threads, use_gpus, segment,
                   use_caching)
    if ready is None:
        return []
    partition, entry, started = ready
    model = entry.model
    if weights is not None:
        keras_model.set_weights_from_bytes(model, weights)
    keras_model.set_optimizer_state(model, optimizer_state or entry.fresh_optimizer_state)
    fit = selection.parse_fit_params(fit_params)
    keras = keras_model.import_keras()
    keras.utils.set_random_seed(seed % (2**31))
    history = model.fit(partition.x, partition.targets(entry.compile_params.sparse_labels),
                        **selection.fit_kwargs(fit))
    loss = float(history.history["loss"][-1])
    metrics = metric_values(history.history, entry.compile_params)
    return [(keras_model.weights_to_bytes(model), keras_model.optimizer_state_to_bytes(model),
             loss, metrics[0] if metrics else None, int(partition.x.shape[0]),
             time.perf_counter() - started, metrics)]


def evaluate_unit(GD: Any, token: str, cache_key: str, buffer_id: int, num_buffers: int,
                  x: bytes | None, y: bytes | None, x_shape: list[int], model_arch: str,
                  compile_params: str, weights: bytes, num_classes: int,
                  normalizing_const: float, threads: int, use_gpus: bool, segment: int,
                  use_caching: bool) -> list[tuple]:
    """Loss and metrics of one configuration on this segment's partition.

    Returns:
        ``[]`` until the last buffer row, then ``(loss, metric, images, seconds,
        metrics)``: ``metric`` is the first compiled metric, ``metrics`` all of them.
    """
    ready = _ready(GD, token, cache_key, buffer_id, num_buffers, x, y, x_shape, model_arch,
                   compile_params, num_classes, normalizing_const, threads, use_gpus, segment,
                   use_caching)
    if ready is None:
        return []
    partition, entry, started = ready
    keras_model.set_weights_from_bytes(entry.model, weights)
    result = entry.model.evaluate(
        partition.x, partition.targets(entry.compile_params.sparse_labels),
        batch_size=1024, verbose=0, return_dict=True)
    metrics = metric_values(result, entry.compile_params)
    return [(float(result["loss"]), metrics[0] if metrics else None,
             int(partition.x.shape[0]), time.perf_counter() - started, metrics)]


def metric_values(results: dict, params: selection.CompileParams) -> list[float | None]:
    """Every compiled metric's value, in the order of ``params.metrics``.

    Keras reports metrics by name and in its own order (``evaluate`` sorts
    them): a metric given as a string is named by that string, so exact names
    come first; a name Keras spelled otherwise falls back to the closest one
    not already taken, as the single-metric trainer always matched.

    Args:
        results: a Keras history (lists; the last value counts) or an
            ``evaluate(return_dict=True)`` result.
        params: the configuration's compile parameters.

    Returns:
        One value per metric (None where Keras reported nothing); ``[]``
        without metrics.

    Example:
        >>> metric_values({"loss": 0.9, "accuracy": 0.5, "mae": 0.3},
        ...               selection.parse_compile_params(
        ...                   "loss='mse', optimizer='adam', metrics=['mae', 'accuracy']"))
        [0.3, 0.5]
    """
    last = {name: float(value[-1] if isinstance(value, list | tuple) else value)
            for name, value in results.items()
            if name != "loss" and not name.startswith("val_")}
    taken = {wanted for wanted in params.metrics if wanted in last}
    values: list[float | None] = []
    for wanted in params.metrics:
        name = wanted if wanted in last else _closest_metric(wanted, [
            n for n in last if n not in taken])
        if name is not None:
            taken.add(name)
        values.append(None if name is None else last[name])
    return values


def _closest_metric(wanted: str, names: list[str]) -> str | None:
    for name in names:
        if name.endswith(wanted) or (wanted in ("acc", "accuracy") and "accuracy" in name):
            return name
    return names[0] if names else None


def init_weights(GD: Any, model_arch: str, compile_params: str, seed: int) -> bytes:
    """Fresh initial weights for a configuration, reproducible for a seed."""
    keras = keras_model.import_keras()
    keras.utils.set_random_seed(seed % (2**31))
    model = keras_model.build_model(model_arch)
    return keras_model.weights_to_bytes(model)


def check_config(model_arch: str, compile_params: str, fit_params: str,
                 image_shape: list[int], num_classes: int) -> str | None:
    """Why a configuration cannot train on this data, or None when it can.

    Everything training would find out later is tried here, before the job
    makes a table: the parameters parse, Keras builds the model, its input and
    output fit the data, ``class_weight`` names only the data's classes, and
    the optimizer is built and takes one step (of zero gradients, on this
    throwaway model), so values Keras refuses (``SGD(momentum=5.0)``,
    ``Adam(beta_1='x')``) are refused now, and every metric is computed once
    on made-up predictions of the model's output shape (Keras builds metrics
    only when it first trains or evaluates).
    """
    try:
        params = selection.parse_compile_params(compile_params)
        fit = selection.parse_fit_params(fit_params)
        model = keras_model.build_model(model_arch)
        keras_model.check_fits_data(model, image_shape, num_classes)
        _check_class_weight(fit, num_classes)
        _check_optimizer(model, params)
        _check_metrics(model, params, num_classes)
    except UsageError as error:
        return str(error)
    return None


def _check_class_weight(fit: selection.FitParams, num_classes: int) -> None:
    outside = sorted(k for k in fit.class_weight or {} if k >= num_classes)
    if outside:
        raise UsageError(f"class_weight names class index {outside[0]} but the data has "
                         f"{num_classes} classes: indexes 0 to {num_classes - 1}, in the "
                         "order of the packed table's class_values")


def _check_optimizer(model: Any, params: selection.CompileParams) -> None:
    """Build the optimizer as training does and apply one step of zero gradients.

    Raises:
        UsageError: Keras refuses the optimizer's arguments, when it is made
            (``build_optimizer``) or when it first updates the weights.
    """
    model.compile(**selection.compile_kwargs(params))
    keras = keras_model.import_keras()
    try:
        model.optimizer.build(model.trainable_variables)
        zeros = [keras.ops.zeros_like(v) for v in model.trainable_variables]
        model.optimizer.apply(zeros, model.trainable_variables)
    except Exception as error:  # TypeError, ValueError, TensorFlow's own errors
        reason = _keras_reason(error)
        arguments = ", ".join(f"{k}={v!r}" for k, v in params.optimizer_kwargs.items())
        raise UsageError(f"Keras refused the optimizer {params.optimizer}({arguments}): "
                         f"{reason or type(error).__name__}") from error


def _check_metrics(model: Any, params: selection.CompileParams, num_classes: int) -> None:
    """Compute every compiled metric on two made-up rows, as training will.

    Raises:
        UsageError: Keras cannot compute a metric on this model's output and
            labels, or reports no value for one.
    """
    if not params.metrics:
        return
    labels = np.arange(2) % num_classes
    targets = labels if params.sparse_labels else np.eye(num_classes, dtype=np.float32)[labels]
    predictions = np.full((2, num_classes), 1.0 / num_classes, dtype=np.float32)
    try:
        results = model.compute_metrics(None, targets, predictions)
    except Exception as error:  # ValueError, TypeError, TensorFlow's own errors
        reason = _keras_reason(error)
        raise UsageError(f"Keras cannot compute metrics={list(params.metrics)!r}: "
                         f"{reason or type(error).__name__}") from error
    values = metric_values({k: float(v) for k, v in results.items()}, params)
    missing = [m for m, v in zip(params.metrics, values, strict=True) if v is None]
    if missing:
        raise UsageError(f"Keras reports no value for metric {missing[0]!r}")


def _keras_reason(error: Exception) -> str:
    """A Keras or TensorFlow error's message without its op and graph noise."""
    return re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", str(error), flags=re.S).strip()


def thread_count(num_segments_on_host: int) -> int:
    """TensorFlow threads per segment: this host's cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, num_segments_on_host))
