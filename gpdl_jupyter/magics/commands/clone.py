"""``%gpdl clone OUTPUT --mst-key K [--compile-params S] [--fit-params S] [--iterations N]``.

Adds a configuration to a running search, warm-started from ``K``'s weights.
"""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "add a configuration to a running search, warm-started from another's weights"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("output", type=table_argument, help="the search's model output table")
    parser.add_argument("--mst-key", type=int, required=True, help="the configuration to clone")
    parser.add_argument("--compile-params",
                        help="the clone's compile parameters (default: the source's)")
    parser.add_argument("--fit-params", help="the clone's fit parameters (default: the source's)")
    parser.add_argument("--iterations", type=int,
                        help="the clone's budget (default: the source's)")


def run(args: argparse.Namespace, context: Context) -> Any:
    result = api.clone(args.output, args.mst_key, compile_params=args.compile_params,
                       fit_params=args.fit_params, iterations=args.iterations, dsn=args.dsn,
                       show_sql=args.show_sql)
    if not args.show_sql:
        print(f"mst {result} of {args.output}: a clone of mst {args.mst_key}")
    return result
