"""``%gpdl stop OUTPUT [--mst-key K]``: stop a job, or one configuration of it."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "stop a training job (or one configuration); resume continues it"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("output", type=table_argument, help="the job's model output table")
    parser.add_argument("--mst-key", type=int, help="stop this configuration only")


def run(args: argparse.Namespace, context: Context) -> Any:
    shown = api.stop(args.output, mst_key=args.mst_key, dsn=args.dsn, show_sql=args.show_sql)
    if shown is None:
        which = f"configuration {args.mst_key} of " if args.mst_key is not None else ""
        print(f"stop requested for {which}{args.output}: running units finish first")
    return shown
