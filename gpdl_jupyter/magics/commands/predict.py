"""``%gpdl predict MODEL_TABLE``: the top-k widget; ``--table`` / ``--image`` without it.

- ``%gpdl predict models --mst-key 2 -k 3 [--images test_images]``: the top-k
  widget (upload an image, or choose one stored in ``--images``); without
  ``--mst-key``, the best configuration.
- ``%gpdl predict models --mst-key 2 --image cat.png``: the top-k rows of one file.
- ``%gpdl predict models --mst-key 2 --table test_images --output predictions``:
  every image of a table, into a table (MADlib's long format).
"""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_backend.errors import UsageError
from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "top-k classes of an image (widget, --image FILE) or of a table (--table, --output)"
BODY = "options"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("model_table", type=table_argument, help="trained model table (from fit)")
    parser.add_argument("--mst-key", type=int,
                        help="the configuration (default: widget: the best one; --image, "
                        "--table: the table's only one)")
    parser.add_argument("-k", "--k", type=int, default=3, help="classes to show (default 3)")
    parser.add_argument("--images", metavar="IMAGE_TABLE", type=table_argument,
                        help="widget: stored images to choose from")
    parser.add_argument("--image", metavar="FILE", help="predict this image file")
    parser.add_argument("--table", metavar="IMAGE_TABLE", type=table_argument,
                        help="predict every image of a table")
    parser.add_argument("--output", metavar="TABLE", type=table_argument,
                        help="with --table: the table to create")
    parser.add_argument("--pred-type",
                        help="with --table: response (default), prob, an integer k, a threshold")
    parser.add_argument("--if-exists", default="fail", choices=["fail", "replace"])


def run(args: argparse.Namespace, context: Context) -> Any:
    if args.table or args.output:
        if not (args.table and args.output):
            raise UsageError("--table and --output go together")
        if args.image:
            raise UsageError("give --image or --table, not both")
        return api.predict(args.model_table, args.table, args.output,
                           pred_type=args.pred_type or "response", mst_key=args.mst_key,
                           if_exists=args.if_exists,
                           dsn=args.dsn, show_sql=args.show_sql)
    if args.image or args.show_sql:
        return api.predict_image(args.model_table, args.image, mst_key=args.mst_key, k=args.k,
                                 dsn=args.dsn, show_sql=args.show_sql)
    from gpdl_jupyter.widgets import TopK

    return TopK(api.dsn(args.dsn), args.model_table, args.mst_key, k=args.k,
                image_table=args.images, theme=context.theme)
