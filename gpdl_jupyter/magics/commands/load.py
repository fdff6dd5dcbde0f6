"""``%gpdl load LOCATION TABLE [options]``: images into a table, read by every segment."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.progress import progress_bar
from gpdl_jupyter.usage import table_argument

HELP = "load images from a directory or object store into a table, in parallel"
BODY = "options"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("location", help="directory, glob or URL (s3://, gs://, http(s)://); "
                        "an image's label is its folder's name")
    parser.add_argument("table", type=table_argument, help="image table to create")
    parser.add_argument("--batch-size", type=int, default=context.batch_size,
                        help=f"images per row (default {context.batch_size})")
    parser.add_argument("--server", help="object-store config (credentials) on the database host")
    parser.add_argument("--resize", type=int, nargs=2, metavar=("H", "W"),
                        help="resize every image to H x W")
    parser.add_argument("--color-mode", default="RGB", choices=["RGB", "L"])
    parser.add_argument("--int-pixels", action="store_true",
                        help="also fill the PXF-compatible pixels INT[] column")
    parser.add_argument("--if-exists", default="fail", choices=["fail", "replace", "append"])
    parser.add_argument("--threads", type=int, default=8,
                        help="concurrent remote reads per segment (default 8)")
    parser.add_argument("--segments", type=int, default=context.num_segments,
                        help="PostgreSQL: parallel readers (default: the installed count)")


def run(args: argparse.Namespace, context: Context) -> Any:
    options = dict(batch_size=args.batch_size, server=args.server,
                   resize=tuple(args.resize) if args.resize else None,
                   color_mode=args.color_mode, int_pixels=args.int_pixels,
                   if_exists=args.if_exists, num_segments=args.segments, threads=args.threads,
                   dsn=args.dsn)
    if args.show_sql:
        return api.load_images(args.location, args.table, show_sql=True, **options)
    with progress_bar("file", f"loading {args.table}") as update:
        return api.load_images(args.location, args.table, progress=update, **options)
