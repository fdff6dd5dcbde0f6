"""``%gpdl jobs``: the training jobs the database knows, from ``gpdl.jobs``."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser

HELP = "the training jobs in the database: owner, state (lost when the driver died), units"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("--state", help="only jobs in this state (running, lost, ...)")


def run(args: argparse.Namespace, context: Context) -> Any:
    return api.jobs(state=args.state, dsn=args.dsn, show_sql=args.show_sql)
