"""Architectures and configurations: ``load_model``, ``delete_model``, ``select_models``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gpdl_backend.errors import UsageError
from gpdl_backend.selection import ModelConfig
from gpdl_jupyter.api._common import check_tables, resolve, run_call
from gpdl_jupyter.results import Table
from gpdl_jupyter.sqltext import ShownSql, function_call


def _arch_json(model: Any) -> str:
    """JSON text of a Keras model, a dict or JSON text."""
    if isinstance(model, str):
        return model
    if isinstance(model, Mapping):
        return json.dumps(model)
    to_json = getattr(model, "to_json", None)
    if callable(to_json):
        return to_json()
    raise UsageError(f"a model must be a keras.Model, its JSON or a dict, not "
                     f"{type(model).__name__}")


def load_model(
    model_arch_table: str,
    model: Any,
    *,
    with_weights: bool = False,
    name: str | None = None,
    description: str | None = None,
    model_id: int | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> int | ShownSql:
    """Add an architecture to a (MADlib) model architecture table, created when missing.

    Args:
        model_arch_table: the architecture table.
        model: a ``keras.Model``, its JSON (``model.to_json()``) or the parsed dict.
        with_weights: also store the Keras model's current weights (for warm
            starts). Defaults to False.
        name: free text naming it. Defaults to None.
        description: free text describing it. Defaults to None.
        model_id: the id to use. Defaults to None (the next one).
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        The new ``model_id``.

    Raises:
        UsageError: not a model Keras can build (with Keras's message), a
            taken ``model_id``, a bad table.

    Example:
        >>> load_model("arch", keras.Sequential([...]), name="cnn")
        1
    """
    check_tables(model_arch_table)
    url = resolve(dsn, show_sql)
    text = _arch_json(model)
    weights = None
    if with_weights:
        if isinstance(model, str | Mapping):
            raise UsageError("with_weights needs a keras.Model, not its JSON")
        from gpdl_backend.keras_model import weights_to_bytes

        weights = weights_to_bytes(model)
    call = function_call("load_keras_model", model_arch_table, text, weights, name,
                         description, model_id)
    if show_sql:
        return call.shown()
    return run_call(url, call)


def delete_model(model_arch_table: str, model_id: int, *, dsn: str | None = None,
                 show_sql: bool = False) -> ShownSql | None:
    """Delete one architecture; the table is dropped once empty (as MADlib does).

    Example:
        >>> delete_model("arch", 2)
    """
    call = function_call("delete_keras_model", model_arch_table, model_id)
    if show_sql:
        return call.shown()
    run_call(resolve(dsn, show_sql), call)
    return None


def read_model(model_arch_table: str, model_id: int, *,
               dsn: str | None = None) -> dict[str, Any]:
    """One architecture: ``{"model_id", "model_arch", "name", "description", "has_weights"}``.

    Raises:
        UsageError: no such table or ``model_id``.
    """
    from gpdl_backend.model_tables import read_keras_model

    return read_keras_model(resolve(dsn, False), model_arch_table, model_id)


def add_to_selection(model_selection_table: str, model_id: int, *, dsn: str | None = None,
                     show_sql: bool = False) -> list[ModelConfig] | ShownSql:
    """Add one architecture with every (compile, fit) pair already in a selection table.

    One call of ``gpdl.add_model_to_selection``; pairs already there for this
    model are not added again.

    Returns:
        The configurations added (none when all were there).

    Example:
        >>> [c.mst_key for c in add_to_selection("mst", 3)]
        [9, 10]
    """
    check_tables(model_selection_table)
    call = function_call("add_model_to_selection", model_selection_table, model_id)
    if show_sql:
        return call.shown()
    return [ModelConfig(**row) for row in run_call(resolve(dsn, show_sql), call)]


def _is_lists(compile_params: Any, fit_params: Any) -> bool:
    """Explicit MADlib strings (lists of str) rather than grids (dicts or dict literals)."""
    def is_list(value: Any) -> bool:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)

    if is_list(compile_params) and is_list(fit_params):
        return True
    if isinstance(compile_params, Mapping | str) and isinstance(fit_params, Mapping | str):
        return False
    raise UsageError("compile_params and fit_params must both be grids (dicts) or both be "
                     "lists of MADlib parameter strings")


def select_models(
    model_selection_table: str,
    model_arch_table: str,
    model_ids: Sequence[int],
    *,
    compile_params: Mapping[str, Any] | Sequence[str] | str,
    fit_params: Mapping[str, Any] | Sequence[str] | str,
    search_type: str = "grid",
    num_configs: int | None = None,
    random_state: int | None = None,
    if_exists: str | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Table | ShownSql:
    """Write a model selection table: grid or random search, or explicit lists.

    Grids (dicts) go to MADlib's ``generate_model_configs``; lists of
    parameter strings to ``load_model_selection_table`` (every model id ×
    compile string × fit string).

    Args:
        model_selection_table: the table to write (plus ``_summary``).
        model_arch_table: the architecture table the ids refer to.
        model_ids: architecture ids.
        compile_params: a grid such as ``{"loss": ["categorical_crossentropy"],
            "optimizer_params_list": [{"optimizer": ["Adam"], "lr": [1e-3, 1e-4]}],
            "metrics": ["accuracy"]}``, or a list of MADlib strings such as
            ``["loss='categorical_crossentropy', optimizer='Adam(lr=0.001)',
            metrics=['accuracy']"]``.
        fit_params: a grid such as ``{"batch_size": [64, 128], "epochs": [1]}`` or
            a list of strings such as ``["batch_size=64, epochs=1"]``.
        search_type: grids only: ``"grid"`` or ``"random"``. Defaults to ``"grid"``.
        num_configs: random search: how many. Defaults to None.
        random_state: random search seed. Defaults to None.
        if_exists: ``"fail"``, ``"replace"`` or ``"append"``. Defaults to None:
            ``"append"`` for grids (MADlib's behaviour), ``"fail"`` for lists.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        The configurations written (``mst_key, model_id, compile_params,
        fit_params``), shown as a table.

    Raises:
        UsageError: a malformed grid or string, unknown model ids, an existing
            table with ``if_exists="fail"``.

    Example:
        >>> select_models("mst", "arch", [1, 2],
        ...               compile_params={"loss": ["categorical_crossentropy"],
        ...                               "optimizer": ["Adam", "RMSprop"],
        ...                               "metrics": ["accuracy"]},
        ...               fit_params={"batch_size": [64, 128]})
    """
    check_tables(model_selection_table, model_arch_table)
    url = resolve(dsn, show_sql)
    lists = _is_lists(compile_params, fit_params)
    exists = if_exists or ("fail" if lists else "append")
    ids = list(model_ids)
    if lists:
        call = function_call("load_model_selection_table", model_arch_table,
                             model_selection_table, ids, list(compile_params),
                             list(fit_params), if_exists=exists)
    else:
        call = function_call("generate_model_configs", model_arch_table,
                             model_selection_table, ids, grid_text(compile_params),
                             grid_text(fit_params), search_type, num_configs, random_state,
                             if_exists=exists)
    if show_sql:
        return call.shown()
    return Table([ModelConfig(**row) for row in run_call(url, call)])


def grid_text(grid: Mapping[str, Any] | str) -> str:
    """A grid as MADlib writes it in SQL: a Python dict literal."""
    return grid if isinstance(grid, str) else repr(dict(grid))
