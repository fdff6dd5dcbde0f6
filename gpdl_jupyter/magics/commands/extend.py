"""``%gpdl extend OUTPUT --mst-key K --iterations N``: train a search's configuration more."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "train a configuration of a running search N more iterations"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("output", type=table_argument, help="the search's model output table")
    parser.add_argument("--mst-key", type=int, required=True, help="the configuration")
    parser.add_argument("--iterations", type=int, required=True, help="iterations to add")


def run(args: argparse.Namespace, context: Context) -> Any:
    result = api.extend(args.output, args.mst_key, args.iterations, dsn=args.dsn,
                        show_sql=args.show_sql)
    if not args.show_sql:
        print(f"mst {args.mst_key} of {args.output} trains to iteration {result}")
    return result
