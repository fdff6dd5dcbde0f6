"""``%gpdl resume OUTPUT [--wait]``: continue a stopped or interrupted job."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands._training import show_job
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "continue a stopped, failed or interrupted training job; live curves"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("output", type=table_argument, help="the job's model output table")
    parser.add_argument("--wait", action="store_true", help="block until training ends")


def run(args: argparse.Namespace, context: Context) -> Any:
    job = api.resume(args.output, dsn=args.dsn, show_sql=args.show_sql)
    return job if args.show_sql else show_job(job, args.wait, context)
