"""``%gpdl gpu [--once]``: GPU (or CPU) use of every database host, live."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser

HELP = "GPU use of every database host over time (CPU where there is no GPU)"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("--once", action="store_true",
                        help="a table of the use now instead of the live monitor")


def run(args: argparse.Namespace, context: Context) -> Any:
    if args.once or args.show_sql:
        return api.gpu_usage(dsn=args.dsn, show_sql=args.show_sql)
    from gpdl_jupyter.widgets import GpuMonitor

    return GpuMonitor(api.dsn(args.dsn), live=context.live, refresh=context.refresh,
                      theme=context.theme)
