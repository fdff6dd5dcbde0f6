"""``%gpdl fit SOURCE OUTPUT MST_TABLE [options]``: train every configuration (MOP).

Returns the live learning-curve widget at once; training goes on in the
background. ``--wait`` blocks until the job ends and shows its final report.
"""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_jupyter import api
from gpdl_jupyter.magics.commands._training import show_job
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.usage import table_argument

HELP = "train every configuration at once (model hopper parallelism); live curves"
BODY = "options"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("source", type=table_argument, help="packed training table")
    parser.add_argument("output", type=table_argument,
                        help="model output table (plus _info, _summary, _progress)")
    parser.add_argument("mst_table", type=table_argument, help="model selection table")
    parser.add_argument("--iterations", type=int, default=context.iterations,
                        help=f"passes over the data (default {context.iterations})")
    parser.add_argument("--validation", type=table_argument, help="packed validation table")
    parser.add_argument("--metrics-frequency", type=int,
                        help="evaluate every N iterations (default: after the last)")
    parser.add_argument("--use-gpus", action="store_true", help="one GPU per segment")
    parser.add_argument("--warm-start", action="store_true",
                        help="start from the weights already in OUTPUT")
    parser.add_argument("--no-caching", action="store_true",
                        help="do not keep the data in the server processes' memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", help="free text kept in the summary")
    parser.add_argument("--description", help="free text kept in the summary")
    parser.add_argument("--wait", action="store_true", help="block until training ends")


def run(args: argparse.Namespace, context: Context) -> Any:
    job = api.fit(
        args.source, args.output, args.mst_table, num_iterations=args.iterations,
        validation_table=args.validation, metrics_compute_frequency=args.metrics_frequency,
        use_gpus=args.use_gpus, warm_start=args.warm_start, name=args.name,
        description=args.description, use_caching=not args.no_caching, seed=args.seed,
        dsn=args.dsn, show_sql=args.show_sql)
    return job if args.show_sql else show_job(job, args.wait, context)
