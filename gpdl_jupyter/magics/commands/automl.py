"""``%%gpdl automl SOURCE OUTPUT MST_TABLE --arch ARCH``: a search over a YAML search space.

The body is ``select``'s: ``model_ids``, ``compile`` and ``fit`` grids (lists
of choices, ranges ``[low, high, 'linear' | 'log' | 'log_near_one']``), plus
``method`` (hyperband, hyperopt, asha), ``params`` (MADlib's text, or a
mapping such as ``{R: 9, eta: 3}``) and ``seed``. ``--plan`` shows the
brackets, rungs, units and ETA without starting (the ETA from the latest job on
SOURCE, else from a probe training the space's first configuration on one
buffer). Example::

    %%gpdl automl train_packed search search_mst --arch arch --validation test_packed
    method: asha
    params: {R: 9, eta: 3, num_configs: 27}
    model_ids: [1, 2]
    compile:
      loss: [categorical_crossentropy]
      optimizer_params_list:
        - optimizer: [Adam]
          lr: [1e-4, 1e-2, log]
      metrics: [accuracy]
    fit:
      batch_size: [32, 64]
      epochs: [1]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from gpdl_backend.errors import UsageError
from gpdl_jupyter import api
from gpdl_jupyter.magics.commands._training import show_job
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser, parse_body
from gpdl_jupyter.usage import table_argument

HELP = "search configurations with Hyperband, ASHA or TPE (YAML search space); live curves"
BODY = "content"

KEYS = {
    "model_ids": "model_ids", "model_id_list": "model_ids",
    "compile": "compile_params_grid", "compile_params_grid": "compile_params_grid",
    "fit": "fit_params_grid", "fit_params_grid": "fit_params_grid",
    "method": "automl_method", "automl_method": "automl_method",
    "params": "automl_params", "automl_params": "automl_params",
    "seed": "random_state", "random_state": "random_state",
}
"""Body key (short ones and MADlib's names) -> ``api.automl`` argument."""
OPTIONS = ("model_ids", "automl_method", "automl_params", "random_state")


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("source", type=table_argument, help="packed training table")
    parser.add_argument("output", type=table_argument,
                        help="model output table (plus _info, _summary, _progress)")
    parser.add_argument("mst_table", type=table_argument,
                        help="model selection table the search writes")
    parser.add_argument("--arch", type=table_argument, help="model architecture table")
    parser.add_argument("--model-ids", type=int, nargs="+", help="architecture ids")
    parser.add_argument("--method", dest="automl_method",
                        choices=["hyperband", "hyperopt", "asha"],
                        help="search method (default hyperband)")
    parser.add_argument("--params", dest="automl_params",
                        help="MADlib's automl_params, e.g. 'R=9, eta=3'")
    parser.add_argument("--seed", dest="random_state", type=int, help="seed of the search")
    parser.add_argument("--validation", type=table_argument,
                        help="packed validation table (the search ranks by its loss)")
    parser.add_argument("--metrics-frequency", type=int,
                        help="also evaluate every N iterations (default: at each rung)")
    parser.add_argument("--use-gpus", action="store_true", help="one GPU per segment")
    parser.add_argument("--no-caching", action="store_true",
                        help="do not keep the data in the server processes' memory")
    parser.add_argument("--name", help="free text kept in the summary")
    parser.add_argument("--description", help="free text kept in the summary")
    parser.add_argument("--space", metavar="FILE",
                        help="YAML file of the search space (instead of a cell body)")
    parser.add_argument("--plan", action="store_true",
                        help="show the brackets, rungs, units and ETA; do not start")
    parser.add_argument("--wait", action="store_true", help="block until the search ends")


def settings(args: argparse.Namespace, body: str | None) -> dict[str, Any]:
    """``api.automl``'s search arguments from the options and the cell body.

    Raises:
        UsageError: an unknown body key, a setting given twice, or one missing.

    Example:
        >>> options = argparse.Namespace(model_ids=[1], automl_method="asha",
        ...     automl_params=None, random_state=None)
        >>> body = "params: {R: 9, eta: 3}\\ncompile: {loss: [mse]}\\nfit: {batch_size: [8]}"
        >>> settings(options, body)["automl_params"]
        'R=9, eta=3'
    """
    values: dict[str, Any] = {}
    for key, value in parse_body(body or "", "automl cell body").items():
        name = KEYS.get(key)
        if name is None:
            raise UsageError(f"unknown key {key!r} in the automl cell body; use "
                             f"{', '.join(sorted(set(KEYS) - set(KEYS.values())))} "
                             "or MADlib's names")
        if name in values:
            raise UsageError(f"{key!r}: {name} is given twice in the cell body")
        values[name] = value
    for name in OPTIONS:
        option = getattr(args, name)
        if option is None:
            continue
        if name in values and values[name] != option:
            raise UsageError(f"{name} is given both as an option ({option!r}) and in the "
                             f"cell body ({values[name]!r})")
        values[name] = option
    if isinstance(values.get("automl_params"), Mapping):
        values["automl_params"] = ", ".join(
            f"{key}={value}" for key, value in values["automl_params"].items())
    if isinstance(values.get("model_ids"), int):
        values["model_ids"] = [values["model_ids"]]
    return values


def start(args: argparse.Namespace, body: str | None) -> Any:
    """Start the search (or, with ``--plan``, return its plan): what the magic and CLI run."""
    if args.space is not None:
        if body and body.strip():
            raise UsageError("give the search space either in the cell body or with "
                             "--space FILE, not both")
        try:
            with open(args.space, encoding="utf-8") as file:
                body = file.read()
        except OSError as error:
            raise UsageError(f"cannot read --space {args.space}: {error.strerror}") from None
    values = settings(args, body)
    if args.plan:
        # The whole space, or none of it: with it the server can probe the unit time.
        space = dict(model_arch_table=args.arch, model_ids=values.get("model_ids"),
                     compile_params_grid=values.get("compile_params_grid"),
                     fit_params_grid=values.get("fit_params_grid"))
        if None in (args.arch, space["model_ids"], space["compile_params_grid"]):
            space = {}
        return api.automl_plan(values.get("automl_method", "hyperband"),
                               values.get("automl_params"), source_table=args.source,
                               dsn=args.dsn, show_sql=args.show_sql, **space)
    missing = [how for name, how in (("model_ids", "--model-ids or model_ids:"),
                                      ("compile_params_grid", "compile: in the space"),
                                      ("fit_params_grid", "fit: in the space"))
               if values.get(name) is None]
    if args.arch is None:
        missing.insert(0, "--arch TABLE")
    if missing:
        raise UsageError(f"automl needs {', '.join(missing)}")
    return api.automl(
        args.source, args.output, args.arch, args.mst_table, values.pop("model_ids"),
        validation_table=args.validation, metrics_compute_frequency=args.metrics_frequency,
        use_gpus=args.use_gpus, name=args.name, description=args.description,
        use_caching=not args.no_caching, dsn=args.dsn, show_sql=args.show_sql, **values)


def run(args: argparse.Namespace, context: Context) -> Any:
    result = start(args, context.cell)
    if args.show_sql or args.plan:
        return result
    return show_job(result, args.wait, context)
