"""Model-selection configurations: MADlib-style parameter strings and grid/random search.

A *configuration* (MADlib's "mst") is one model architecture with one set of
Keras compile parameters and one set of fit parameters. This module parses and
validates the parameter strings MADlib users write, e.g.
``loss='categorical_crossentropy', optimizer='Adam(lr=0.001)', metrics=['accuracy']``
and ``batch_size=64, epochs=10``, writes them back in one canonical form, and
generates the rows of a model selection table the way MADlib's
``load_model_selection_table`` (explicit lists, cross product) and
``generate_model_configs`` (grid or random search) do.

Decisions, where MADlib and Keras 3 differ:

* Strings are parsed with :mod:`ast` and only literal values are accepted; nothing
  is ever evaluated.
* Optimizer names are case-insensitive (``adam``, ``rmsprop``, ``sgd``) and stored
  under Keras's class name; ``lr`` is an alias of ``learning_rate``.
* ``decay`` (Keras 2's per-step learning-rate decay, which Keras 3 silently ignores)
  is kept and applied as ``InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)``,
  Keras 2's own formula ``lr / (1 + decay * iterations)``. Its step counter is the
  optimizer's, so it restarts whenever the trainer builds a fresh optimizer.
* Several metrics may be compiled (MADlib allows one): the first is MADlib's
  ``metric``, the others are computed alongside it; a metric listed twice is
  refused. Custom functions are not supported.
* The packed tables hold class indexes. ``sparse_*`` losses train on them as they
  are; any other loss (MADlib's ``categorical_crossentropy``) gets one-hot labels:
  see :attr:`CompileParams.sparse_labels`. A categorical metric must agree with the
  loss (no ``sparse_categorical_accuracy`` with ``categorical_crossentropy``).
* Stored strings are canonical (:func:`format_compile_params`,
  :func:`format_fit_params`), for explicit lists too, so the table shows exactly
  what runs and equivalent spellings collapse to one configuration.
* Rows are ordered model id, then compile parameters, then fit parameters, and
  repeated configurations are dropped (MADlib's table is unique on them).

Keras is imported lazily, only by the functions that need its knowledge of
optimizer, loss and metric names; everything else is pure Python and numpy.

Example:
    >>> configs = generate_model_configs(
    ...     [1, 2],
    ...     {"loss": ["categorical_crossentropy"],
    ...      "optimizer_params_list": [{"optimizer": ["Adam", "RMSprop"], "lr": [1e-3, 1e-4]}],
    ...      "metrics": ["accuracy"]},
    ...     {"batch_size": [64, 128], "epochs": [1]},
    ... )
    >>> len(configs)
    16
    >>> configs[0].compile_params
    "loss='categorical_crossentropy',optimizer='Adam(learning_rate=0.001)',metrics=['accuracy']"
"""

from __future__ import annotations

import ast
import inspect
import itertools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from gpdl_backend.errors import UsageError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DISTRIBUTIONS",
    "CompileParams",
    "FitParams",
    "ModelConfig",
    "build_optimizer",
    "check_search_grids",
    "compile_kwargs",
    "fit_kwargs",
    "format_compile_params",
    "format_fit_params",
    "generate_model_configs",
    "load_model_selection",
    "parse_compile_params",
    "parse_fit_params",
]

DEFAULT_BATCH_SIZE = 32
"""Keras's and MADlib's default ``batch_size``."""
DEFAULT_EPOCHS = 1
"""Default ``epochs``: passes over a segment's partition per visit."""
DISTRIBUTIONS = ("linear", "log", "log_near_one")
"""Sampling types of a random-search range ``[low, high, type]``."""

OPTIMIZER_PARAMS_LIST = "optimizer_params_list"
_COMPILE_KEYS = ("loss", "optimizer", "metrics")
_FIT_KEYS = ("batch_size", "epochs", "shuffle", "class_weight", "verbose")
_REFUSED_FIT_KEYS = {
    "callbacks": "callbacks cannot run inside the database",
    "steps_per_epoch": "every visit covers the whole partition",
    "initial_epoch": "every visit covers the whole partition",
    "validation_split": "validation uses the validation table",
    "validation_data": "validation uses the validation table",
}
_OPTIMIZER_ALIASES = {"lr": "learning_rate"}
_NOT_OPTIMIZER_ARGS = frozenset({"self", "name", "args", "kwargs"})
_NOT_OPTIMIZERS = frozenset({"Optimizer", "LossScaleOptimizer", "MultiOptimizer"})
_COMPILE_ONLY_METRICS = frozenset({"accuracy", "acc", "crossentropy", "ce"})
_INTEGER_PARAMS = frozenset({"batch_size", "epochs"})
_MAX_DRAWS_PER_CONFIG = 100


@dataclass(frozen=True)
class CompileParams:
    """Validated Keras compile parameters of one configuration.

    Attributes:
        optimizer: Keras optimizer class name, e.g. ``"Adam"``.
        optimizer_kwargs: Keyword arguments of the optimizer (``lr`` already renamed
            ``learning_rate``; ``decay`` kept, see :func:`build_optimizer`). Read-only.
        loss: Keras loss name, e.g. ``"categorical_crossentropy"``.
        metrics: Metric names, in order; the first is the one MADlib's columns
            report. Defaults to none.
        original: The string this was parsed from; not part of equality.
            Defaults to ``""``.
    """

    optimizer: str
    optimizer_kwargs: dict[str, Any] = field(hash=False)
    loss: str
    metrics: tuple[str, ...] = ()
    original: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer_kwargs", dict(self.optimizer_kwargs))

    @property
    def sparse_labels(self) -> bool:
        """True when the loss takes class indexes (``sparse_*``), False for one-hot labels."""
        return _is_sparse(self.loss)


@dataclass(frozen=True)
class FitParams:
    """Validated Keras fit parameters of one configuration.

    Attributes:
        batch_size: Rows per gradient step. Defaults to 32.
        epochs: Passes over the segment's partition per visit. Defaults to 1.
        shuffle: Shuffle rows before each pass. Defaults to True.
        class_weight: Weight per class index, or None. Defaults to None.
        original: The string this was parsed from; not part of equality.
            Defaults to ``""``.
    """

    batch_size: int = DEFAULT_BATCH_SIZE
    epochs: int = DEFAULT_EPOCHS
    shuffle: bool = True
    class_weight: dict[int, float] | None = field(default=None, hash=False)
    original: str = field(default="", compare=False)


@dataclass(frozen=True)
class ModelConfig:
    """One row of a model selection table (MADlib's column names).

    Attributes:
        mst_key: Key of the configuration, from 1.
        model_id: Architecture id in the model architecture table.
        compile_params: Canonical compile parameter string.
        fit_params: Canonical fit parameter string.
    """

    mst_key: int
    model_id: int
    compile_params: str
    fit_params: str


# --------------------------------------------------------------------------- parsing


def parse_compile_params(text: str) -> CompileParams:
    """Parse and validate a MADlib/Keras compile parameter string.

    Args:
        text: Comma-separated ``name=value`` pairs: ``loss`` and ``optimizer``
            (required) and ``metrics`` (optional). The optimizer is a quoted or bare
            call such as ``'Adam(lr=0.001)'``, ``'adam'`` or
            ``Adam(learning_rate=1e-3)``; only literal values are accepted.

    Returns:
        The validated parameters, with ``original`` set to ``text``.

    Raises:
        UsageError: The string is malformed or not a literal, a parameter is
            unknown or missing, or Keras knows no such optimizer, argument, loss
            or metric.

    Example:
        >>> cp = parse_compile_params(
        ...     "loss='categorical_crossentropy', optimizer='Adam(lr=0.001)', metrics=['accuracy']")
        >>> cp.optimizer, cp.optimizer_kwargs, cp.metrics
        ('Adam', {'learning_rate': 0.001}, ('accuracy',))
    """
    nodes = _keyword_nodes(text, "compile params")
    _check_keys(nodes, _COMPILE_KEYS, {}, "compile parameter")
    if "optimizer" not in nodes or "loss" not in nodes:
        raise UsageError(
            f"compile params {text!r} need both loss=... and optimizer=..., e.g. "
            "loss='categorical_crossentropy', optimizer='Adam(learning_rate=0.001)'"
        )
    optimizer, kwargs = _parse_optimizer(nodes["optimizer"])
    loss = _literal(nodes["loss"], "loss")
    metrics = _literal(nodes["metrics"], "metrics") if "metrics" in nodes else None
    return _make_compile_params(optimizer, kwargs, loss, metrics, original=text)


def parse_fit_params(text: str) -> FitParams:
    """Parse and validate a MADlib/Keras fit parameter string.

    Args:
        text: Comma-separated ``name=value`` pairs among ``batch_size`` (int > 0,
            default 32), ``epochs`` (int > 0, default 1), ``shuffle`` (bool, default
            True), ``class_weight`` (dict of class index to weight) and ``verbose``
            (accepted for MADlib compatibility and ignored). May be empty.

    Returns:
        The validated parameters, with ``original`` set to ``text``.

    Raises:
        UsageError: The string is malformed or not a literal, a parameter is
            unknown or refused (e.g. ``callbacks``), or a value is invalid.

    Example:
        >>> params = parse_fit_params("batch_size=64, epochs=10")
        >>> params.batch_size, params.epochs, params.shuffle
        (64, 10, True)
    """
    nodes = _keyword_nodes(text, "fit params")
    values = {name: _literal(node, name) for name, node in nodes.items()}
    return _make_fit_params(values, original=text)


def format_compile_params(params: CompileParams) -> str:
    """Write compile parameters in canonical form (the form stored in tables).

    Args:
        params: Parameters to write.

    Returns:
        ``loss=...,optimizer='Name(learning_rate=...,...)',metrics=[...]``, with
        ``learning_rate`` first and other optimizer arguments sorted by name.

    Example:
        >>> format_compile_params(parse_compile_params("optimizer='sgd(lr=0.1)', loss='mse'"))
        "loss='mse',optimizer='SGD(learning_rate=0.1)'"
    """
    names = sorted(params.optimizer_kwargs, key=lambda name: (name != "learning_rate", name))
    arguments = ",".join(f"{name}={_format_value(params.optimizer_kwargs[name])}" for name in names)
    parts = [f"loss={params.loss!r}", f"optimizer={f'{params.optimizer}({arguments})'!r}"]
    if params.metrics:
        parts.append(f"metrics={list(params.metrics)!r}")
    return ",".join(parts)


def format_fit_params(params: FitParams) -> str:
    """Write fit parameters in canonical form (the form stored in tables).

    Args:
        params: Parameters to write.

    Returns:
        ``batch_size=...,epochs=...``, followed by ``shuffle`` and
        ``class_weight`` when they differ from their defaults.

    Example:
        >>> format_fit_params(FitParams(batch_size=64))
        'batch_size=64,epochs=1'
    """
    parts = [f"batch_size={params.batch_size}", f"epochs={params.epochs}"]
    if not params.shuffle:
        parts.append("shuffle=False")
    if params.class_weight is not None:
        weights = {index: _format_value(w) for index, w in sorted(params.class_weight.items())}
        parts.append("class_weight={" + ",".join(f"{i}:{w}" for i, w in weights.items()) + "}")
    return ",".join(parts)


# ----------------------------------------------------------------- Keras objects


def build_optimizer(params: CompileParams) -> Any:
    """Build the Keras optimizer of a configuration.

    ``decay`` becomes ``InverseTimeDecay(learning_rate, decay_steps=1,
    decay_rate=decay)``, i.e. Keras 2's ``lr / (1 + decay * iterations)``.

    Args:
        params: Validated compile parameters.

    Returns:
        A new ``keras.optimizers.Optimizer`` instance.

    Raises:
        UsageError: Keras refuses the arguments.

    Example:
        >>> type(build_optimizer(parse_compile_params("optimizer='rmsprop', loss='mse'"))).__name__
        'RMSprop'
    """
    import keras

    optimizer_class = _optimizer_classes()[params.optimizer.lower()]
    kwargs = dict(params.optimizer_kwargs)
    decay = kwargs.pop("decay", None)
    if decay:
        initial = kwargs.get(
            "learning_rate", inspect.signature(optimizer_class).parameters["learning_rate"].default
        )
        kwargs["learning_rate"] = keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=initial, decay_steps=1, decay_rate=decay
        )
    try:
        return optimizer_class(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"Keras refused the optimizer of {format_compile_params(params)!r}: {exc}"
        ) from exc


def compile_kwargs(params: CompileParams) -> dict[str, Any]:
    """Keyword arguments for ``model.compile`` (a fresh optimizer each call).

    Args:
        params: Validated compile parameters.

    Returns:
        ``{"optimizer": ..., "loss": ..., "metrics": [...]}``.

    Example:
        >>> sorted(compile_kwargs(parse_compile_params("optimizer='adam', loss='mse'")))
        ['loss', 'metrics', 'optimizer']
    """
    return {
        "optimizer": build_optimizer(params),
        "loss": params.loss,
        "metrics": list(params.metrics),
    }


def fit_kwargs(params: FitParams) -> dict[str, Any]:
    """Keyword arguments for ``model.fit`` (silent: ``verbose=0``).

    Args:
        params: Validated fit parameters.

    Returns:
        ``batch_size``, ``epochs``, ``shuffle``, ``verbose`` and, when set,
        ``class_weight``.

    Example:
        >>> fit_kwargs(FitParams(batch_size=64))
        {'batch_size': 64, 'epochs': 1, 'shuffle': True, 'verbose': 0}
    """
    kwargs: dict[str, Any] = {
        "batch_size": params.batch_size,
        "epochs": params.epochs,
        "shuffle": params.shuffle,
        "verbose": 0,
    }
    if params.class_weight is not None:
        kwargs["class_weight"] = dict(params.class_weight)
    return kwargs


# ------------------------------------------------------------------ configurations


def load_model_selection(
    model_ids: Sequence[int], compile_params_list: Sequence[str], fit_params_list: Sequence[str]
) -> list[ModelConfig]:
    """Configurations for every model id x compile string x fit string (MADlib's
    ``load_model_selection_table``).

    Every string is validated before anything is produced. Model ids are sorted
    and repeated ones dropped, as are configurations repeated after
    canonicalization.

    Args:
        model_ids: Architecture ids.
        compile_params_list: Compile parameter strings (see :func:`parse_compile_params`).
        fit_params_list: Fit parameter strings (see :func:`parse_fit_params`).

    Returns:
        Configurations ordered by model id, compile string, fit string, with
        ``mst_key`` from 1 and canonical strings.

    Raises:
        UsageError: A list is empty or not a list of strings, or one string is
            invalid (the error names its list, index and text).

    Example:
        >>> configs = load_model_selection(
        ...     [1], ["loss='mse', optimizer='Adam(lr=0.1)'"], ["batch_size=4", "batch_size=8"])
        >>> [(c.mst_key, c.fit_params) for c in configs]
        [(1, 'batch_size=4,epochs=1'), (2, 'batch_size=8,epochs=1')]
    """
    ids = _check_model_ids(model_ids)
    compiles = [
        format_compile_params(params)
        for params in _parse_all(compile_params_list, "compile_params_list", parse_compile_params)
    ]
    fits = [
        format_fit_params(params)
        for params in _parse_all(fit_params_list, "fit_params_list", parse_fit_params)
    ]
    return _numbered(itertools.product(ids, compiles, fits))


def generate_model_configs(
    model_ids: Sequence[int],
    compile_params_grid: Mapping[str, Any] | str,
    fit_params_grid: Mapping[str, Any] | str,
    search_type: str = "grid",
    num_configs: int | None = None,
    random_state: int | None = None,
) -> list[ModelConfig]:
    """Configurations from a grid or random search (MADlib's ``generate_model_configs``).

    Each grid maps a parameter name to a list of values. In the compile grid,
    ``optimizer_params_list`` is a list of dicts, each mapping ``optimizer`` and
    that optimizer's arguments (e.g. ``lr``) to lists of values, so different
    optimizers can have different arguments. For random search a list may
    instead be a range ``[low, high, 'linear' | 'log' | 'log_near_one']``:
    ``log`` samples ``10**U(log10 low, log10 high)`` and ``log_near_one`` samples
    ``1 - 10**U(log10(1 - high), log10(1 - low))``; ranges of ``batch_size`` and
    ``epochs`` are rounded to integers.

    Grid search yields every combination, ordered by model id, compile grid
    (keys in the given order, ``optimizer_params_list`` entries in turn), fit
    grid. Random search draws ``num_configs`` distinct configurations with
    ``numpy.random.default_rng(random_state)``: per configuration a model id, then
    each compile key in order (for ``optimizer_params_list``: one entry, then its
    keys), then each fit key; a repeated draw is drawn again.

    Args:
        model_ids: Architecture ids (sorted, repeats dropped).
        compile_params_grid: Compile grid, or its Python-literal string.
        fit_params_grid: Fit grid, or its Python-literal string. May be empty.
        search_type: ``"grid"`` or ``"random"``, or a prefix such as ``"rand"``.
            Defaults to ``"grid"``.
        num_configs: Number of configurations; required for random search and
            refused for grid search. Defaults to None.
        random_state: Seed of random search, for reproducible output; refused for
            grid search. Defaults to None (a fresh seed).

    Returns:
        Configurations with ``mst_key`` from 1 and canonical strings.

    Raises:
        UsageError: Malformed grid, a range in a grid search, bad search options,
            more random configurations asked for than the grid holds, or an
            invalid resulting configuration (the error names the bad piece).

    Example:
        >>> configs = generate_model_configs(
        ...     [1], {"loss": ["mse"], "optimizer_params_list": [{"optimizer": ["SGD"],
        ...     "lr": [1e-4, 1e-1, "log"]}]}, {"batch_size": [64]},
        ...     search_type="random", num_configs=3, random_state=42)
        >>> len(configs)
        3
    """
    ids, compile_grid, fit_grid = check_search_grids(
        model_ids, compile_params_grid, fit_params_grid
    )
    kind = _search_kind(search_type)
    if kind == "grid":
        if num_configs is not None or random_state is not None:
            raise UsageError(
                "num_configs and random_state apply to random search only; "
                "leave them unset for grid search"
            )
        return _grid_search(ids, compile_grid, fit_grid)
    if isinstance(num_configs, bool) or not isinstance(num_configs, int) or num_configs < 1:
        raise UsageError(f"random search needs num_configs, an integer > 0, got {num_configs!r}")
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, int)
    ):
        raise UsageError(f"random_state must be an integer or None, got {random_state!r}")
    return _random_search(ids, compile_grid, fit_grid, num_configs, random_state)


def check_search_grids(
    model_ids: Sequence[int],
    compile_params_grid: Mapping[str, Any] | str,
    fit_params_grid: Mapping[str, Any] | str,
) -> tuple[list[int], dict[str, Any], dict[str, list]]:
    """Validate the model ids and grids of a search (what :func:`generate_model_configs`
    checks before drawing anything).

    Args:
        model_ids: Architecture ids.
        compile_params_grid: Compile grid, or its Python-literal string.
        fit_params_grid: Fit grid, or its Python-literal string. May be empty.

    Returns:
        The sorted distinct ids, the compile grid (name -> list of values;
        ``optimizer_params_list`` -> list of such dicts) and the fit grid.

    Raises:
        UsageError: Bad model ids, a malformed grid or range, or an unknown key.

    Example:
        >>> check_search_grids([2, 1, 2], "{'loss': ['mse']}", {})
        ([1, 2], {'loss': ['mse']}, {})
    """
    ids = _check_model_ids(model_ids)
    compile_grid = _check_grid(compile_params_grid, "compile_params_grid", compile_side=True)
    _check_keys(compile_grid, (*_COMPILE_KEYS, OPTIMIZER_PARAMS_LIST), {}, "compile parameter")
    fit_grid = _check_grid(fit_params_grid, "fit_params_grid", compile_side=False)
    _check_keys(fit_grid, _FIT_KEYS, _REFUSED_FIT_KEYS, "fit parameter")
    return ids, compile_grid, fit_grid


# ------------------------------------------------------------------------ internals


def _keyword_nodes(text: str, what: str) -> dict[str, ast.expr]:
    """Split ``name=value, ...`` into unevaluated value nodes, by parsing only."""
    if not isinstance(text, str):
        raise UsageError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        return {}
    hint = "expected comma-separated name=value pairs"
    try:
        tree = ast.parse(f"_(\n{text.strip()}\n)", mode="eval")
    except SyntaxError as exc:
        raise UsageError(f"invalid {what} {text!r}: {hint} ({exc.msg})") from None
    call = tree.body
    if (
        not isinstance(call, ast.Call)
        or not isinstance(call.func, ast.Name)
        or call.func.id != "_"
        or call.args
        or any(keyword.arg is None for keyword in call.keywords)
    ):
        raise UsageError(f"invalid {what} {text!r}: {hint}")
    return _unique_keywords(call.keywords, what)


def _unique_keywords(keywords: list[ast.keyword], what: str) -> dict[str, ast.expr]:
    """Keyword nodes by name; the parser alone does not refuse a repeated name."""
    nodes: dict[str, ast.expr] = {}
    for keyword in keywords:
        if keyword.arg in nodes:
            raise UsageError(f"{what}: {keyword.arg!r} is given twice")
        if keyword.arg:
            nodes[keyword.arg] = keyword.value
    return nodes


def _literal(node: ast.expr, name: str) -> Any:
    """Evaluate a literal node safely (numbers, strings, lists, dicts, ...)."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise UsageError(
            f"{name} must be a literal value (number, string, list, ...), got {ast.unparse(node)!r}"
        ) from None


def _check_keys(
    values: Mapping[str, Any], accepted: Iterable[str], refused: Mapping[str, str], what: str
) -> None:
    accepted = tuple(accepted)
    for name in values:
        if name in refused:
            raise UsageError(f"{what} {name!r} is not supported: {refused[name]}")
        if name not in accepted:
            raise UsageError(f"unknown {what} {name!r}; accepted: {', '.join(accepted)}")


def _parse_optimizer(value: ast.expr | str) -> tuple[str, dict[str, Any]]:
    """Read ``'Adam(lr=0.001)'``, ``'adam'`` or a bare ``Adam(...)`` node."""
    hint = "e.g. optimizer='Adam(learning_rate=0.001)'"
    node: ast.expr = value if isinstance(value, ast.expr) else ast.Constant(value)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, str):
            raise UsageError(f"optimizer must be a name with arguments, {hint}")
        try:
            node = ast.parse(node.value.strip(), mode="eval").body
        except SyntaxError:
            raise UsageError(f"invalid optimizer {node.value!r}, {hint}") from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.args or any(keyword.arg is None for keyword in node.keywords):
            raise UsageError(f"optimizer arguments must be named, {hint}")
        nodes = _unique_keywords(node.keywords, "optimizer")
        return node.func.id, {name: _literal(value, name) for name, value in nodes.items()}
    raise UsageError(f"invalid optimizer {ast.unparse(node)!r}, {hint}")


def _make_compile_params(
    optimizer: str, kwargs: Mapping[str, Any], loss: Any, metrics: Any, original: str
) -> CompileParams:
    """Validate the pieces of a compile configuration against Keras."""
    classes = _optimizer_classes()
    if not isinstance(optimizer, str) or optimizer.lower() not in classes:
        valid = ", ".join(sorted(cls.__name__ for cls in classes.values()))
        raise UsageError(f"unknown optimizer {optimizer!r}; valid optimizers: {valid}")
    optimizer_class = classes[optimizer.lower()]
    loss = _check_loss(loss)
    metrics = _check_metrics(metrics)
    for metric in metrics:
        if "categorical" in metric.lower() and _is_sparse(metric) != _is_sparse(loss):
            labels = "class indexes" if _is_sparse(loss) else "one-hot labels"
            raise UsageError(
                f"metric {metric!r} does not fit loss {loss!r}, which trains on {labels}; "
                "use metrics=['accuracy']"
            )
    return CompileParams(
        optimizer=optimizer_class.__name__,
        optimizer_kwargs=_check_optimizer_kwargs(optimizer_class, kwargs),
        loss=loss,
        metrics=metrics,
        original=original,
    )


def _is_sparse(name: str) -> bool:
    return name.lower().startswith("sparse")


def _check_optimizer_kwargs(optimizer_class: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(optimizer_class).parameters
    valid = [name for name in parameters if name not in _NOT_OPTIMIZER_ARGS]
    if "learning_rate" in parameters:
        valid.append("decay")
    checked: dict[str, Any] = {}
    for given, value in kwargs.items():
        name = _OPTIMIZER_ALIASES.get(given, given)
        if name in checked:
            raise UsageError(f"optimizer argument {name!r} is given twice (lr is learning_rate)")
        if name not in valid:
            raise UsageError(
                f"optimizer {optimizer_class.__name__} has no argument {given!r}; "
                f"valid arguments: {', '.join(valid)}"
            )
        if value is not None and not isinstance(value, bool | numbers.Real | str):
            raise UsageError(f"optimizer argument {given}={value!r} must be a number, bool or None")
        if name in ("learning_rate", "decay") and (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or value < 0
            or (name == "learning_rate" and value == 0)
        ):
            raise UsageError(f"optimizer argument {given}={value!r} must be a positive number")
        checked[name] = _native(value)
    return checked


def _check_loss(loss: Any) -> str:
    import keras

    if not isinstance(loss, str):
        raise UsageError(
            f"loss must be a loss name such as 'categorical_crossentropy', got {loss!r}"
        )
    try:
        keras.losses.get(loss)
    except (ValueError, TypeError):
        valid = ", ".join(_public_functions(keras.losses))
        raise UsageError(f"unknown loss {loss!r}; valid losses: {valid}") from None
    return loss


def _check_metrics(metrics: Any) -> tuple[str, ...]:
    import keras

    if metrics is None:
        return ()
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list | tuple) or not all(isinstance(m, str) for m in metrics):
        raise UsageError(
            f"metrics must be a list of metric names, e.g. ['accuracy'], got {metrics!r}"
        )
    twice = next((m for i, m in enumerate(metrics) if m in metrics[:i]), None)
    if twice is not None:
        raise UsageError(f"metric {twice!r} is listed twice in {list(metrics)!r}")
    for metric in metrics:
        if metric.lower() in _COMPILE_ONLY_METRICS:
            continue
        try:
            keras.metrics.get(metric)
        except (ValueError, TypeError):
            valid = ", ".join(sorted({*_COMPILE_ONLY_METRICS, *_public_functions(keras.metrics)}))
            raise UsageError(f"unknown metric {metric!r}; valid metrics: {valid}") from None
    return tuple(metrics)


@lru_cache(maxsize=1)
def _optimizer_classes() -> dict[str, type]:
    """Keras's stand-alone optimizer classes, by lower-case name."""
    import keras

    classes = {}
    for name in dir(keras.optimizers):
        candidate = getattr(keras.optimizers, name)
        if (
            isinstance(candidate, type)
            and issubclass(candidate, keras.optimizers.Optimizer)
            and name not in _NOT_OPTIMIZERS
        ):
            classes[name.lower()] = candidate
    return classes


def _public_functions(module: Any) -> list[str]:
    """Lower-case function names of a Keras namespace, without helpers."""
    helpers = {"get", "serialize", "deserialize"}
    return sorted(
        name
        for name in dir(module)
        if name[:1].islower() and name not in helpers and callable(getattr(module, name))
    )


def _make_fit_params(values: Mapping[str, Any], original: str) -> FitParams:
    """Validate fit parameter values (``verbose`` is accepted and dropped)."""
    _check_keys(values, _FIT_KEYS, _REFUSED_FIT_KEYS, "fit parameter")
    for name in ("batch_size", "epochs"):
        value = values.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise UsageError(f"{name} must be an integer > 0, got {value!r}")
    shuffle = values.get("shuffle", True)
    if not isinstance(shuffle, bool):
        raise UsageError(f"shuffle must be True or False, got {shuffle!r}")
    verbose = values.get("verbose", 0)
    if not isinstance(verbose, numbers.Integral):
        raise UsageError(f"verbose must be an integer, got {verbose!r}")
    return FitParams(
        batch_size=int(values.get("batch_size", DEFAULT_BATCH_SIZE)),
        epochs=int(values.get("epochs", DEFAULT_EPOCHS)),
        shuffle=shuffle,
        class_weight=_check_class_weight(values.get("class_weight")),
        original=original,
    )


def _check_class_weight(weights: Any) -> dict[int, float] | None:
    if weights is None:
        return None
    valid = isinstance(weights, Mapping) and all(
        not isinstance(k, bool)
        and isinstance(k, numbers.Integral)
        and k >= 0
        and not isinstance(w, bool)
        and isinstance(w, numbers.Real)
        and w >= 0
        for k, w in weights.items()
    )
    if not valid:
        raise UsageError(
            f"class_weight must map class indexes to weights >= 0, e.g. {{0: 1.0, 1: 2.5}}, "
            f"got {weights!r}"
        )
    return {int(k): float(w) for k, w in weights.items()}


def _native(value: Any) -> Any:
    """Plain Python scalar from a numpy one (numpy 2 reprs are not literals)."""
    return value.item() if isinstance(value, np.generic) else value


def _format_value(value: Any) -> str:
    return repr(_native(value))


def _parse_all(texts: Sequence[str], what: str, parse: Callable[[str], Any]) -> list[Any]:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        raise UsageError(f"{what} must be a non-empty list of strings")
    parsed = []
    for index, text in enumerate(texts):
        try:
            parsed.append(parse(text))
        except UsageError as exc:
            raise UsageError(f"{what}[{index}] {text!r} is invalid: {exc}") from exc
    return parsed


def _check_model_ids(model_ids: Sequence[int]) -> list[int]:
    if isinstance(model_ids, str) or not isinstance(model_ids, Iterable):
        raise UsageError("model_ids must be a list of integers")
    ids = list(model_ids)
    if not ids or any(isinstance(i, bool) or not isinstance(i, numbers.Integral) for i in ids):
        raise UsageError(f"model_ids must be a non-empty list of integers, got {ids!r}")
    return sorted({int(i) for i in ids})


def _numbered(rows: Iterable[tuple[int, str, str]]) -> list[ModelConfig]:
    """Number distinct (model_id, compile, fit) rows from 1, keeping first occurrences."""
    unique = dict.fromkeys(rows)
    return [ModelConfig(key, *row) for key, row in enumerate(unique, start=1)]


def _search_kind(search_type: str) -> str:
    wanted = search_type.strip().lower() if isinstance(search_type, str) else ""
    for kind in ("grid", "random"):
        if wanted and kind.startswith(wanted):
            return kind
    raise UsageError(f"search_type must be 'grid' or 'random', got {search_type!r}")


def _check_grid(grid: Mapping[str, Any] | str, what: str, compile_side: bool) -> dict[str, list]:
    """Normalize a grid: a dict of name -> non-empty list (validates ranges too)."""
    if isinstance(grid, str):
        try:
            grid = ast.literal_eval(grid.strip() or "{}")
        except (ValueError, TypeError, SyntaxError, RecursionError):
            raise UsageError(f"{what} must be a Python dict literal, got {grid!r}") from None
    if not isinstance(grid, Mapping):
        raise UsageError(f"{what} must be a dict of parameter name -> list of values")
    checked: dict[str, list] = {}
    for name, values in grid.items():
        if not isinstance(name, str):
            raise UsageError(f"{what}: parameter names must be strings, got {name!r}")
        if compile_side and name == OPTIMIZER_PARAMS_LIST:
            checked[name] = _check_optimizer_params_list(values, set(grid))
        else:
            checked[name] = _check_values(name, values, what)
    return checked


def _check_optimizer_params_list(entries: Any, top_level: set[str]) -> list[dict[str, list]]:
    if not isinstance(entries, list | tuple) or not entries:
        raise UsageError(f"{OPTIMIZER_PARAMS_LIST} must be a non-empty list of dicts")
    checked = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not entry:
            raise UsageError(
                f"{OPTIMIZER_PARAMS_LIST} entries must be non-empty dicts, got {entry!r}"
            )
        clash = top_level & set(entry)
        if clash:
            raise UsageError(
                f"{', '.join(sorted(clash))} belongs either in {OPTIMIZER_PARAMS_LIST} or "
                "at the top level of compile_params_grid, not both"
            )
        if "optimizer" not in entry:
            raise UsageError(f"every {OPTIMIZER_PARAMS_LIST} entry needs an 'optimizer' list")
        checked.append(
            {name: _check_values(name, vals, OPTIMIZER_PARAMS_LIST) for name, vals in entry.items()}
        )
    return checked


def _check_values(name: Any, values: Any, what: str) -> list:
    if not isinstance(name, str):
        raise UsageError(f"{what}: parameter names must be strings, got {name!r}")
    if not isinstance(values, list | tuple) or not values:
        raise UsageError(f"{what}: values of {name!r} must be a non-empty list, got {values!r}")
    _range_of(name, values)
    return list(values)


def _range_of(name: str, values: Sequence[Any]) -> tuple[float, float, str] | None:
    """``(low, high, distribution)`` when ``values`` is a range, else None."""
    if not (
        len(values) >= 2
        and isinstance(values[-1], str)
        and all(_is_number(value) for value in values[:-1])
    ):
        return None
    if len(values) != 3 or values[-1] not in DISTRIBUTIONS:
        raise UsageError(
            f"{name!r}: a range is [low, high, distribution] with distribution one of "
            f"{', '.join(DISTRIBUTIONS)}; got {list(values)!r}"
        )
    low, high, distribution = float(values[0]), float(values[1]), values[2]
    if not low < high:
        raise UsageError(f"{name!r}: range {list(values)!r} needs low < high")
    if distribution == "log" and low <= 0:
        raise UsageError(f"{name!r}: a 'log' range needs low > 0, got {list(values)!r}")
    if distribution == "log_near_one" and not (low >= 0 and high < 1):
        raise UsageError(f"{name!r}: a 'log_near_one' range needs 0 <= low < high < 1")
    return low, high, distribution


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _grid_choices(name: str, values: list) -> list:
    if _range_of(name, values) is not None:
        raise UsageError(
            f"{name!r}: grid search cannot sample from the range {values!r}; "
            "list the grid points or use search_type='random'"
        )
    return values


def _grid_search(
    ids: list[int], compile_grid: dict[str, list], fit_grid: dict[str, list]
) -> list[ModelConfig]:
    compile_axes = []
    for name, values in compile_grid.items():
        if name == OPTIMIZER_PARAMS_LIST:
            compile_axes.append([choice for entry in values for choice in _product(entry)])
        else:
            compile_axes.append(_grid_choices(name, values))
    compiles = [
        _compile_string(dict(zip(compile_grid, combination, strict=True)))
        for combination in itertools.product(*compile_axes)
    ]
    fits = [_fit_string(choice) for choice in _product(fit_grid)]
    return _numbered(itertools.product(ids, dict.fromkeys(compiles), dict.fromkeys(fits)))


def _product(grid: dict[str, list]) -> list[dict[str, Any]]:
    names = list(grid)
    axes = [_grid_choices(name, grid[name]) for name in names]
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*axes)]


def _random_search(
    ids: list[int],
    compile_grid: dict[str, list],
    fit_grid: dict[str, list],
    num_configs: int,
    random_state: int | None,
) -> list[ModelConfig]:
    compile_size, fit_size = _finite_size(compile_grid), _finite_size(fit_grid)
    size = None if compile_size is None or fit_size is None else len(ids) * compile_size * fit_size
    if size is not None and num_configs > size:
        raise UsageError(
            f"random search asked for {num_configs} configurations but the grid holds only "
            f"{size}; lower num_configs or give ranges"
        )
    rng = np.random.default_rng(random_state)
    rows: dict[tuple[int, str, str], None] = {}
    for _ in range(num_configs * _MAX_DRAWS_PER_CONFIG):
        model_id = ids[int(rng.integers(len(ids)))]
        choice = {}
        for name, values in compile_grid.items():
            if name == OPTIMIZER_PARAMS_LIST:
                entry = values[int(rng.integers(len(values)))]
                choice[name] = {key: _sample(key, vals, rng) for key, vals in entry.items()}
            else:
                choice[name] = _sample(name, values, rng)
        fit = {name: _sample(name, values, rng) for name, values in fit_grid.items()}
        rows[(model_id, _compile_string(choice), _fit_string(fit))] = None
        if len(rows) == num_configs:
            return _numbered(rows)
    raise UsageError(
        f"random search found only {len(rows)} distinct configurations of the "
        f"{num_configs} asked for; lower num_configs or give ranges"
    )


def _finite_size(grid: dict[str, list]) -> int | None:
    """Number of combinations of a checked grid, or None when a range makes it unbounded."""
    size = 1
    for name, values in grid.items():
        if name == OPTIMIZER_PARAMS_LIST:
            counts = [_finite_size(entry) for entry in values]
            if any(count is None for count in counts):
                return None
            size *= sum(count for count in counts if count is not None)
        elif _range_of(name, values) is not None:
            return None
        else:
            size *= len(values)
    return size


def _sample(name: str, values: list, rng: np.random.Generator) -> Any:
    bounds = _range_of(name, values)
    if bounds is None:
        return values[int(rng.integers(len(values)))]
    low, high, distribution = bounds
    if distribution == "linear":
        value = float(rng.uniform(low, high))
    elif distribution == "log":
        value = float(10 ** rng.uniform(math.log10(low), math.log10(high)))
    else:
        value = float(1 - 10 ** rng.uniform(math.log10(1 - high), math.log10(1 - low)))
    if name in _INTEGER_PARAMS:
        return int(min(max(round(value), math.ceil(low)), math.floor(high)))
    return value


def _compile_string(choice: dict[str, Any]) -> str:
    """Canonical compile string of one grid choice (validated)."""
    values = dict(choice)
    optimizer_params = values.pop(OPTIMIZER_PARAMS_LIST, None)
    if optimizer_params is not None:
        optimizer_params = dict(optimizer_params)
        values["optimizer"] = optimizer_params.pop("optimizer")
    _check_keys(values, _COMPILE_KEYS, {}, "compile parameter")
    if "optimizer" not in values or "loss" not in values:
        raise UsageError("compile_params_grid needs 'loss' and an optimizer")
    optimizer = values["optimizer"]
    if not isinstance(optimizer, str):
        raise UsageError(f"optimizer must be a name such as 'Adam', got {optimizer!r}")
    name, kwargs = _parse_optimizer(optimizer)
    for key, value in (optimizer_params or {}).items():
        if key in kwargs:
            raise UsageError(f"optimizer argument {key!r} is given twice, also in {optimizer!r}")
        kwargs[key] = value
    params = _make_compile_params(name, kwargs, values["loss"], values.get("metrics"), "")
    return format_compile_params(params)


def _fit_string(choice: dict[str, Any]) -> str:
    """Canonical fit string of one grid choice (validated)."""
    return format_fit_params(_make_fit_params({k: _native(v) for k, v in choice.items()}, ""))
