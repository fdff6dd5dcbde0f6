"""``%gpdl status [OUTPUT]``: a training job's state; without OUTPUT, the database's."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "a training job's progress and metrics; without a job, which database and segments"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("output", nargs="?", type=table_argument,
                        help="the job's model output table")


def run(args: argparse.Namespace, context: Context) -> Any:
    if args.output is None:
        return api.info(dsn=args.dsn, show_sql=args.show_sql)
    return api.status(args.output, dsn=args.dsn, show_sql=args.show_sql)
