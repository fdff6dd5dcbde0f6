"""``%gpdl drop TABLE...``: drop tables and their gpdl companions (a clean slate)."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "drop tables and the _summary/_info/_progress/_errors tables gpdl made beside them"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("tables", nargs="+", metavar="TABLE", type=table_argument,
                        help="tables to drop")
    parser.add_argument("--only", action="store_true",
                        help="drop the named tables only, not their companions")


def run(args: argparse.Namespace, context: Context) -> Any:
    dropped = api.drop_tables(*args.tables, companions=not args.only, dsn=args.dsn,
                              show_sql=args.show_sql)
    if args.show_sql:
        return dropped
    print(f"dropped {', '.join(dropped)}" if dropped else "nothing to drop")
    return None
