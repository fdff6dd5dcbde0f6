"""``%gpdl connect [URL_OR_ALIAS]``: choose the database of the following commands."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser

HELP = "choose and check the database (URL, jupysql alias, or none: the default order)"
BODY = "none"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("url", nargs="?", metavar="URL_OR_ALIAS",
                        help="postgresql://user:password@host:port/db, a jupysql "
                        "connection alias; none: jupysql's active connection, "
                        "$DATABASE_URL, else the embedded server")


def run(args: argparse.Namespace, context: Context) -> Any:
    url = args.url or None
    if args.show_sql:
        return api.connect(url or args.dsn, show_sql=True)
    found = api.connect(url or args.dsn)
    context.set_dsn(url or args.dsn or "")
    return found
