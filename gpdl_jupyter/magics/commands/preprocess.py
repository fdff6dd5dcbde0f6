"""``%gpdl preprocess SOURCE OUTPUT [--validation-of PACKED]``: pack images into buffers."""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "pack an image table into training (or validation) buffers over the segments"
BODY = "options"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("source", type=table_argument, help="image table (from load)")
    parser.add_argument("output", type=table_argument,
                        help="packed table to create (plus OUTPUT_summary)")
    parser.add_argument("--validation-of", metavar="TRAINING_PACKED", type=table_argument,
                        help="pack as validation data of this packed training table")
    parser.add_argument("--buffer-size", type=int,
                        help="images per buffer (default: an even share per segment)")
    parser.add_argument("--normalizing-const", type=float, default=255.0,
                        help="pixels are divided by this (default 255)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.add_argument("--if-exists", default="fail", choices=["fail", "replace"])
    parser.add_argument("--segments", type=int, default=context.num_segments,
                        help="PostgreSQL virtual segments (default: the installed count)")


def run(args: argparse.Namespace, context: Context) -> Any:
    return api.preprocess(
        args.source, args.output, validation_of=args.validation_of,
        buffer_size=args.buffer_size, normalizing_const=args.normalizing_const,
        num_segments=args.segments, seed=args.seed, if_exists=args.if_exists,
        progress=None if args.show_sql else print, dsn=args.dsn, show_sql=args.show_sql)
