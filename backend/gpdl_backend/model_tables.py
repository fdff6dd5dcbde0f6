"""Model architecture and model selection tables, MADlib-compatible (runs in the client).

- ``load_keras_model`` / ``delete_keras_model`` keep a *model architecture table*
  (``model_id SERIAL PRIMARY KEY, model_arch JSON, model_weights BYTEA, name,
  description, __internal_madlib_id__``), MADlib's layout. An architecture is
  checked by building it with Keras inside the server (``gpdl.model_info``), so a
  refusal carries Keras's own message.
- ``load_model_selection_table`` (explicit lists, cross product) and
  ``generate_model_configs`` (grid or random search) write a *model selection
  table* (``mst_key SERIAL PRIMARY KEY, model_id, compile_params, fit_params``) and
  its ``_summary`` (``model_arch_table, object_table``). The parsing and search
  live in :mod:`gpdl_backend.selection`; this module checks the model ids
  against the architecture table and writes the rows, all in one transaction.

Decisions where MADlib leaves room:

* ``generate_model_configs`` appends to an existing selection table by default
  (MADlib's behaviour); ``mst_key`` continues where the table left off and a
  configuration already in the table is not added again.
* ``load_model_selection_table`` refuses an existing table unless
  ``if_exists='replace'``.

Example::

    model_id = load_keras_model(dsn, "model_arch_library", model.to_json(), name="cnn")
    generate_model_configs(
        dsn, "model_arch_library", "mst_table", [model_id],
        {"loss": ["categorical_crossentropy"],
         "optimizer_params_list": [{"optimizer": ["Adam"], "lr": [1e-3, 1e-4]}],
         "metrics": ["accuracy"]},
        {"batch_size": [64, 128], "epochs": [1]})
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg2
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend import selection
from gpdl_backend.client import (
    TableName,
    check_writable,
    columns_of,
    session,
    table_exists,
    table_name,
)
from gpdl_backend.errors import UsageError

__all__ = [
    "ARCH_COLUMNS",
    "SELECTION_COLUMNS",
    "add_model_to_selection",
    "delete_keras_model",
    "generate_model_configs",
    "load_keras_model",
    "load_model_selection_table",
    "read_keras_model",
]

ARCH_COLUMNS = ("model_id", "model_arch", "model_weights", "name", "description",
                "__internal_madlib_id__")
"""Columns of a model architecture table, in MADlib's order."""
SELECTION_COLUMNS = ("mst_key", "model_id", "compile_params", "fit_params")
"""Columns of a model selection table, in MADlib's order."""
SELECTION_SUMMARY_COLUMNS = ("model_arch_table", "object_table")
_IF_EXISTS = ("fail", "replace", "append")


def load_keras_model(
    dsn: str,
    model_arch_table: str,
    model_arch: str | Mapping[str, Any],
    model_weights: bytes | None = None,
    name: str | None = None,
    description: str | None = None,
    model_id: int | None = None,
) -> int:
    """Add a Keras architecture (and optional initial weights) to an architecture table.

    The table is created when missing. The architecture must be a model Keras
    can build; weights, when given, must be the model's float32 weights
    concatenated (``keras_model.weights_to_bytes``), used for warm starts.

    Args:
        dsn: where the database is.
        model_arch_table: the architecture table, ``name`` or ``schema.name``.
        model_arch: the model's JSON (``model.to_json()``) or its parsed dict.
        model_weights: initial weights. Defaults to None (fresh initialization).
        name: free text naming the model. Defaults to None.
        description: free text describing it. Defaults to None.
        model_id: the id to use. Defaults to None (the next serial value).

    Returns:
        The new row's ``model_id``.

    Raises:
        UsageError: a bad table name, a table without the MADlib columns, JSON
            that is not a model Keras can build (with Keras's message), weights
            of the wrong size, or a ``model_id`` already taken.

    Example:
        >>> load_keras_model(dsn, "model_arch_library", model.to_json(), name="cnn")
        1
    """
    table = table_name(model_arch_table)
    text = _arch_text(model_arch)
    if model_weights is not None and not isinstance(model_weights, bytes | bytearray | memoryview):
        raise UsageError(f"model_weights must be bytes, not {type(model_weights).__name__}")
    if model_id is not None and (isinstance(model_id, bool) or not isinstance(model_id, int)):
        raise UsageError(f"model_id must be an integer, not {model_id!r}")
    with session(dsn) as conn:
        engine = engines.probe(conn)
        with conn.cursor() as cur:
            _ensure_arch_table(cur, engine, table)  # undone with the rest on failure
            if model_id is not None:
                cur.execute(sql.SQL("SELECT 1 FROM {} WHERE model_id = %s").format(
                    table.identifier), (model_id,))
                if cur.fetchone():
                    raise UsageError(f"model_id {model_id} is already in {table}")
            info = _model_info(cur, text)
            if model_weights is not None:
                _check_weights_size(bytes(model_weights), info)
            columns = [sql.Identifier(c) for c in ARCH_COLUMNS[1:]]
            values = [text, _binary(model_weights), name, description,
                      f"__gpdl_{secrets.token_hex(12)}__"]
            if model_id is not None:
                columns.insert(0, sql.Identifier("model_id"))
                values.insert(0, model_id)
            cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING model_id").format(
                table.identifier, sql.SQL(", ").join(columns),
                sql.SQL(", ").join(sql.Placeholder() * len(values))), values)
            new_id = cur.fetchone()[0]
            if model_id is not None:
                _advance_serial(cur, table, "model_id")
    return int(new_id)


def delete_keras_model(dsn: str, model_arch_table: str, model_id: int) -> None:
    """Delete one architecture; drop the table once it is empty (as MADlib does).

    Args:
        dsn: where the database is.
        model_arch_table: the architecture table.
        model_id: the id to delete.

    Raises:
        UsageError: the table does not exist, is not an architecture table, or
            has no such ``model_id``.

    Example:
        >>> delete_keras_model(dsn, "model_arch_library", 1)
    """
    table = table_name(model_arch_table)
    with session(dsn) as conn, conn.cursor() as cur:
        check_arch_table(cur, table)
        cur.execute(sql.SQL("DELETE FROM {} WHERE model_id = %s").format(table.identifier),
                    (model_id,))
        if cur.rowcount == 0:
            raise UsageError(f"model_id {model_id} is not in {table}")
        cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(table.identifier))
        if cur.fetchone()[0]:
            cur.execute(sql.SQL("DROP TABLE {}").format(table.identifier))


def load_model_selection_table(
    dsn: str,
    model_arch_table: str,
    model_selection_table: str,
    model_id_list: Sequence[int],
    compile_params_list: Sequence[str],
    fit_params_list: Sequence[str],
    object_table: str | None = None,
    if_exists: str = "fail",
) -> list[selection.ModelConfig]:
    """Write every model id x compile string x fit string (MADlib's explicit lists).

    Args:
        dsn: where the database is.
        model_arch_table: the architecture table the ids refer to.
        model_selection_table: the table to write (plus ``<table>_summary``).
        model_id_list: architecture ids; each must be in ``model_arch_table``.
        compile_params_list: compile parameter strings, e.g.
            ``"loss='categorical_crossentropy', optimizer='Adam(lr=0.001)',
            metrics=['accuracy']"``.
        fit_params_list: fit parameter strings, e.g. ``"batch_size=64, epochs=1"``.
        object_table: MADlib's table of custom functions, recorded in the
            summary. Defaults to None.
        if_exists: ``"fail"`` (default), ``"replace"`` or ``"append"``.

    Returns:
        The configurations written, with their ``mst_key``.

    Raises:
        UsageError: bad names, strings or options, unknown model ids, or an
            existing table with ``if_exists='fail'``. Nothing is written then.

    Example:
        >>> load_model_selection_table(
        ...     dsn, "model_arch_library", "mst_table", [1, 2],
        ...     ["loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy']"],
        ...     ["batch_size=64, epochs=1", "batch_size=128, epochs=1"])
    """
    configs = selection.load_model_selection(model_id_list, compile_params_list, fit_params_list)
    return _write_selection(dsn, model_arch_table, model_selection_table, configs,
                            object_table, if_exists)


def generate_model_configs(
    dsn: str,
    model_arch_table: str,
    model_selection_table: str,
    model_id_list: Sequence[int],
    compile_params_grid: Mapping[str, Any] | str,
    fit_params_grid: Mapping[str, Any] | str,
    search_type: str = "grid",
    num_configs: int | None = None,
    random_state: int | None = None,
    object_table: str | None = None,
    if_exists: str = "append",
) -> list[selection.ModelConfig]:
    """Write configurations from a grid or random search (MADlib's ``generate_model_configs``).

    See :func:`gpdl_backend.selection.generate_model_configs` for the grid
    syntax (value lists, ``optimizer_params_list``, ranges ``[lo, hi, 'log']``).

    Args:
        dsn: where the database is.
        model_arch_table: the architecture table the ids refer to.
        model_selection_table: the table to write (plus ``<table>_summary``).
        model_id_list: architecture ids; each must be in ``model_arch_table``.
        compile_params_grid: compile grid, a dict or its Python-literal string.
        fit_params_grid: fit grid, a dict or its Python-literal string.
        search_type: ``"grid"`` or ``"random"`` (or a prefix). Defaults to ``"grid"``.
        num_configs: configurations to draw (random search only). Defaults to None.
        random_state: seed of random search. Defaults to None.
        object_table: recorded in the summary. Defaults to None.
        if_exists: ``"append"`` (default, MADlib's behaviour: ``mst_key``
            continues and configurations already present are skipped),
            ``"replace"`` or ``"fail"``.

    Returns:
        The configurations written, with their ``mst_key``.

    Raises:
        UsageError: a malformed grid or search option, unknown model ids, an
            existing table with ``if_exists='fail'``, or appending to a table
            made for another architecture table.

    Example:
        >>> generate_model_configs(
        ...     dsn, "model_arch_library", "mst_table", [1],
        ...     {"loss": ["categorical_crossentropy"],
        ...      "optimizer_params_list": [{"optimizer": ["Adam"], "lr": [1e-4, 1e-2, "log"]}],
        ...      "metrics": ["accuracy"]},
        ...     {"batch_size": [64, 128]}, search_type="random", num_configs=4, random_state=1)
    """
    configs = selection.generate_model_configs(
        model_id_list, compile_params_grid, fit_params_grid, search_type=search_type,
        num_configs=num_configs, random_state=random_state)
    return _write_selection(dsn, model_arch_table, model_selection_table, configs,
                            object_table, if_exists)


def read_keras_model(dsn: str, model_arch_table: str, model_id: int) -> dict[str, Any]:
    """One architecture of a model architecture table.

    Returns:
        ``{"model_id", "model_arch" (JSON text), "name", "description",
        "has_weights"}``.

    Raises:
        UsageError: the table is missing or not an architecture table, or has
            no such ``model_id``.

    Example:
        >>> read_keras_model(dsn, "model_arch_library", 1)["name"]
        'cnn'
    """
    table = table_name(model_arch_table)
    with session(dsn) as conn, conn.cursor() as cur:
        check_arch_table(cur, table)
        cur.execute(sql.SQL(
            "SELECT model_id, model_arch::text, name, description, "
            "model_weights IS NOT NULL FROM {} WHERE model_id = %s").format(
            table.identifier), (model_id,))
        row = cur.fetchone()
    if row is None:
        raise UsageError(f"model_id {model_id} is not in {table}")
    return dict(zip(("model_id", "model_arch", "name", "description", "has_weights"), row,
                    strict=True))


def add_model_to_selection(dsn: str, model_selection_table: str,
                           model_id: int) -> list[selection.ModelConfig]:
    """Add one architecture with every (compile, fit) pair already in a selection table.

    The new rows get the next ``mst_key`` values; pairs the table already has
    for this ``model_id`` are not added again. The architecture must be in the
    table's architecture table (named in ``<table>_summary``).

    Args:
        dsn: where the database is.
        model_selection_table: an existing model selection table.
        model_id: the architecture to add.

    Returns:
        The configurations added (none when all were there).

    Raises:
        UsageError: the table or its summary is missing or empty, or the
            architecture table has no such ``model_id``.

    Example:
        >>> [c.mst_key for c in add_model_to_selection(dsn, "mst_table", 3)]
        [9, 10, 11, 12]
    """
    target = table_name(model_selection_table)
    summary = target.with_suffix("_summary")
    with session(dsn) as conn, conn.cursor() as cur:
        for table in (target, summary):
            if not table_exists(cur, table):
                raise UsageError(f"model selection table {table} does not exist")
        cur.execute(sql.SQL("SELECT model_arch_table, object_table FROM {} LIMIT 1").format(
            summary.identifier))
        recorded = cur.fetchone()
        cur.execute(sql.SQL(
            "SELECT compile_params, fit_params FROM {} GROUP BY compile_params, fit_params "
            "ORDER BY min(mst_key)").format(target.identifier))
        pairs = cur.fetchall()
    if recorded is None or not pairs:
        raise UsageError(f"{target} holds no configurations to copy")
    configs = [selection.ModelConfig(i, model_id, compile_params, fit_params)
               for i, (compile_params, fit_params) in enumerate(pairs, start=1)]
    return _write_selection(dsn, recorded[0], str(target), configs, recorded[1], "append")


# ------------------------------------------------------------------------ internals


def _arch_text(model_arch: str | Mapping[str, Any]) -> str:
    """The architecture as JSON text, refusing what is not JSON at all."""
    if isinstance(model_arch, Mapping):
        return json.dumps(model_arch)
    if not isinstance(model_arch, str):
        raise UsageError(f"model_arch must be JSON text or a dict, not {type(model_arch).__name__}")
    try:
        json.loads(model_arch)
    except ValueError as error:
        raise UsageError(f"model architecture is not valid JSON: {error}") from error
    return model_arch


def _model_info(cur, text: str) -> dict:
    """Build the architecture with Keras in the server; its description."""
    cur.execute("SELECT gpdl.model_info(%s::json)", (text,))
    value = cur.fetchone()[0]
    return json.loads(value) if isinstance(value, str) else value


def _check_weights_size(weights: bytes, info: dict) -> None:
    expected = 4 * int(info["num_params"])
    if len(weights) != expected:
        raise UsageError(
            f"model_weights has {len(weights)} bytes but the model's {info['num_params']} "
            f"float32 parameters take {expected}")


def _binary(data: bytes | None) -> Any:
    return None if data is None else psycopg2.Binary(bytes(data))


def _ensure_arch_table(cur, engine: engines.Engine, table: TableName) -> None:
    if table_exists(cur, table):
        check_arch_table(cur, table)
        return
    cur.execute(sql.SQL(
        "CREATE TABLE {} (model_id SERIAL PRIMARY KEY, model_arch JSON, model_weights BYTEA, "
        "name TEXT, description TEXT, __internal_madlib_id__ TEXT){}"
    ).format(table.identifier, engine.distributed_by("model_id")))


def check_arch_table(cur, table: TableName) -> None:
    if not table_exists(cur, table):
        raise UsageError(f"model architecture table {table} does not exist")
    missing = [c for c in ARCH_COLUMNS if c not in columns_of(cur, table)]
    if missing:
        raise UsageError(f"{table} is not a model architecture table: missing columns "
                         f"{', '.join(missing)}")


def _advance_serial(cur, table: TableName, column: str) -> None:
    """Move a SERIAL past the largest value, after an explicit insert."""
    cur.execute(sql.SQL(
        "SELECT setval(pg_get_serial_sequence(%s, %s), (SELECT max({col}) FROM {table}))"
    ).format(col=sql.Identifier(column), table=table.identifier),
        (table.identifier.as_string(cur), column))


def _write_selection(
    dsn: str,
    model_arch_table: str,
    model_selection_table: str,
    configs: list[selection.ModelConfig],
    object_table: str | None,
    if_exists: str,
) -> list[selection.ModelConfig]:
    """Check the ids and write the configurations and summary in one transaction."""
    arch = table_name(model_arch_table)
    target = table_name(model_selection_table)
    summary = target.with_suffix("_summary")
    objects = str(table_name(object_table)) if object_table is not None else None
    if if_exists not in _IF_EXISTS:
        raise UsageError(f"if_exists must be one of {_IF_EXISTS}, not {if_exists!r}")
    with session(dsn) as conn:
        engine = engines.probe(conn)
        with conn.cursor() as cur:
            check_arch_table(cur, arch)
            check_model_ids(cur, arch, sorted({c.model_id for c in configs}))
            check_writable(cur, target)
            exists = table_exists(cur, target) or table_exists(cur, summary)
            if exists and if_exists == "fail":
                raise UsageError(f"model selection table {target} already exists; pass "
                                 "if_exists='replace' or 'append'")
            if exists and if_exists == "replace":
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                    target.identifier, summary.identifier))
            if exists and if_exists == "append":
                configs = _appended(cur, target, summary, arch, configs)
            else:
                create_selection_tables(cur, engine, target, summary, arch, objects)
            _insert_configs(cur, target, configs)
    return configs


def check_model_ids(cur, arch: TableName, model_ids: list[int]) -> None:
    cur.execute(sql.SQL("SELECT model_id FROM {} WHERE model_id = ANY(%s)").format(
        arch.identifier), (model_ids,))
    known = {row[0] for row in cur.fetchall()}
    missing = [i for i in model_ids if i not in known]
    if missing:
        raise UsageError(f"model ids {missing} are not in model architecture table {arch}")


def create_selection_tables(cur, engine: engines.Engine, target: TableName,
                             summary: TableName, arch: TableName, objects: str | None) -> None:
    cur.execute(sql.SQL(
        "CREATE TABLE {} (mst_key SERIAL PRIMARY KEY, model_id INTEGER, compile_params TEXT, "
        "fit_params TEXT){}"
    ).format(target.identifier, engine.distributed_by("mst_key")))
    cur.execute(sql.SQL("CREATE TABLE {} (model_arch_table TEXT, object_table TEXT){}").format(
        summary.identifier, engine.distributed_replicated()))
    cur.execute(sql.SQL("INSERT INTO {} (model_arch_table, object_table) VALUES (%s, %s)").format(
        summary.identifier), (str(arch), objects))


def _appended(cur, target: TableName, summary: TableName, arch: TableName,
              configs: list[selection.ModelConfig]) -> list[selection.ModelConfig]:
    """The configurations to add to an existing table, keyed after its last one."""
    for table, columns in ((target, SELECTION_COLUMNS), (summary, ("model_arch_table",))):
        if not table_exists(cur, table):
            raise UsageError(f"cannot append: {table} is missing; pass if_exists='replace'")
        missing = [c for c in columns if c not in columns_of(cur, table)]
        if missing:
            raise UsageError(f"cannot append: {table} lacks columns {', '.join(missing)}")
    cur.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(target.identifier))
    cur.execute(sql.SQL("SELECT model_arch_table FROM {}").format(summary.identifier))
    recorded = {row[0] for row in cur.fetchall()}
    if recorded and recorded != {str(arch)}:
        raise UsageError(f"cannot append: {target} was made for model architecture table "
                         f"{sorted(recorded)[0]}, not {arch}")
    cur.execute(sql.SQL("SELECT coalesce(max(mst_key), 0) FROM {}").format(target.identifier))
    last = cur.fetchone()[0]
    cur.execute(sql.SQL("SELECT model_id, compile_params, fit_params FROM {}").format(
        target.identifier))
    seen = set(cur.fetchall())
    fresh = [c for c in configs if (c.model_id, c.compile_params, c.fit_params) not in seen]
    return [selection.ModelConfig(last + i, c.model_id, c.compile_params, c.fit_params)
            for i, c in enumerate(fresh, start=1)]


def _insert_configs(cur, target: TableName, configs: list[selection.ModelConfig]) -> None:
    if not configs:
        return
    cur.executemany(sql.SQL(
        "INSERT INTO {} (mst_key, model_id, compile_params, fit_params) VALUES (%s, %s, %s, %s)"
    ).format(target.identifier),
        [(c.mst_key, c.model_id, c.compile_params, c.fit_params) for c in configs])
    _advance_serial(cur, target, "mst_key")
