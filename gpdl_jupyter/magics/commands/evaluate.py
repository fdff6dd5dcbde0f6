"""``%gpdl evaluate MODEL_TABLE PACKED OUTPUT [--mst-key K]``: loss and metrics on a table."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "loss and metrics of a trained configuration on a packed table (all segments)"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("model_table", type=table_argument, help="trained model table")
    parser.add_argument("test_table", type=table_argument,
                        help="packed table with the model's classes")
    parser.add_argument("output", type=table_argument, help="the table to create")
    parser.add_argument("--mst-key", type=int,
                        help="the configuration (default: the table's only one)")


def run(args: argparse.Namespace, context: Context) -> Any:
    return api.evaluate(args.model_table, args.test_table, args.output,
                        mst_key=args.mst_key, dsn=args.dsn, show_sql=args.show_sql)
