"""``%%gpdl select MST_TABLE --arch ARCH_TABLE``: configurations from a YAML or dict body.

Body keys: ``model_ids``; ``compile`` and ``fit`` as grids (name -> list of
values; ``optimizer_params_list``; ranges ``[low, high, 'log']`` for random
search) or as lists of MADlib strings; ``search`` (grid/random),
``num_configs``, ``seed``. Options give the same settings; setting one twice
is refused. Example::

    %%gpdl select mst --arch arch
    model_ids: [1, 2]
    compile:
      loss: [categorical_crossentropy]
      optimizer_params_list:
        - optimizer: [Adam, RMSprop]
          lr: [1e-3, 1e-4]
      metrics: [accuracy]
    fit:
      batch_size: [64, 128]
      epochs: [1]
"""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_backend.errors import UsageError
from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser, parse_body
from gpdl_jupyter.usage import table_argument

HELP = "write a model selection table: grid/random search or lists, from a YAML/dict body"
BODY = "content"

KEYS = {
    "model_ids": "model_ids", "model_id_list": "model_ids",
    "compile": "compile_params", "compile_params": "compile_params",
    "compile_params_grid": "compile_params", "compile_params_list": "compile_params",
    "fit": "fit_params", "fit_params": "fit_params", "fit_params_grid": "fit_params",
    "fit_params_list": "fit_params",
    "search": "search_type", "search_type": "search_type",
    "num_configs": "num_configs",
    "seed": "random_state", "random_state": "random_state",
    "arch": "model_arch_table", "model_arch_table": "model_arch_table",
    "if_exists": "if_exists",
}
"""Body key (MADlib's names and short ones) -> ``api.select_models`` argument."""


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("table", type=table_argument, help="model selection table to write")
    parser.add_argument("--arch", dest="model_arch_table", type=table_argument,
                        help="model architecture table")
    parser.add_argument("--model-ids", type=int, nargs="+", help="architecture ids")
    parser.add_argument("--search", dest="search_type", choices=["grid", "random"],
                        help="search over the grids (default grid)")
    parser.add_argument("--num-configs", type=int, help="random search: how many")
    parser.add_argument("--seed", dest="random_state", type=int, help="random search seed")
    parser.add_argument("--if-exists", choices=["fail", "replace", "append"],
                        help="default: append for grids (MADlib), fail for lists")


def settings(args: argparse.Namespace, body: str | None) -> dict[str, Any]:
    """The ``api.select_models`` arguments from the options and the cell body.

    Raises:
        UsageError: an unknown body key, a setting given twice, or one missing.

    Example:
        >>> options = argparse.Namespace(model_arch_table="arch", model_ids=[1],
        ...     search_type=None, num_configs=None, random_state=None, if_exists=None)
        >>> body = "compile: {loss: [mse], optimizer: [adam]}\\nfit: {batch_size: [8]}"
        >>> settings(options, body)["fit_params"]
        {'batch_size': [8]}
    """
    values: dict[str, Any] = {}
    for key, value in parse_body(body or "", "select cell body").items():
        name = KEYS.get(key)
        if name is None:
            raise UsageError(f"unknown key {key!r} in the select cell body; use "
                             f"{', '.join(sorted(set(KEYS) - set(KEYS.values())))} "
                             "or MADlib's names")
        if name in values:
            raise UsageError(f"{key!r}: {name} is given twice in the cell body")
        values[name] = value
    for name in ("model_arch_table", "model_ids", "search_type", "num_configs",
                 "random_state", "if_exists"):
        option = getattr(args, name)
        if option is None:
            continue
        if name in values and values[name] != option:
            raise UsageError(f"{name} is given both as an option ({option!r}) and in the "
                             f"cell body ({values[name]!r})")
        values[name] = option
    if isinstance(values.get("model_ids"), int):
        values["model_ids"] = [values["model_ids"]]
    missing = [how for name, how in (("model_arch_table", "--arch TABLE"),
                                      ("model_ids", "--model-ids or model_ids:"),
                                      ("compile_params", "compile: in the cell body"),
                                      ("fit_params", "fit: in the cell body"))
               if values.get(name) is None]
    if missing:
        raise UsageError(f"select needs {', '.join(missing)}")
    return values


def run(args: argparse.Namespace, context: Context) -> Any:
    values = settings(args, context.cell)
    return api.select_models(
        args.table, values.pop("model_arch_table"), values.pop("model_ids"),
        compile_params=values.pop("compile_params"), fit_params=values.pop("fit_params"),
        dsn=args.dsn, show_sql=args.show_sql, **values)
