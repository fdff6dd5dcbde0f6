"""The ``%gpdl`` commands, one small module each, reached through ``COMMANDS``.

A command module has:

- ``HELP``: one line for ``%gpdl --help``;
- ``BODY``: what a ``%%gpdl`` cell body is to it: ``"options"`` (more
  arguments, one or more per line), ``"content"`` (a YAML/JSON/dict body the
  command reads) or ``"none"``;
- ``add_arguments(parser, context)``: its arguments (``--dsn`` and
  ``--show-sql`` are added for every command);
- ``run(args, context)``: calls one function of :mod:`gpdl_jupyter.api` and
  returns what the notebook shows.

Example::

    args = parse("load", ["/data/train", "train_images"], Context())
    COMMANDS["load"].run(args, Context())
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from gpdl_jupyter.magics.commands import (
    arch,
    automl,
    clone,
    connect,
    drop,
    evaluate,
    extend,
    fit,
    gpu,
    jobs,
    load,
    predict,
    preprocess,
    resume,
    select,
    status,
    stop,
)
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser

__all__ = ["COMMANDS", "Context", "overview", "parse", "parser_for"]

COMMANDS: dict[str, ModuleType] = {
    "connect": connect,
    "load": load,
    "preprocess": preprocess,
    "arch": arch,
    "select": select,
    "fit": fit,
    "automl": automl,
    "status": status,
    "jobs": jobs,
    "stop": stop,
    "extend": extend,
    "clone": clone,
    "resume": resume,
    "predict": predict,
    "evaluate": evaluate,
    "gpu": gpu,
    "drop": drop,
}
"""Command name -> module."""


def parser_for(name: str, context: Context) -> CommandParser:
    """The argument parser of command ``name``, defaults taken from ``context``."""
    module = COMMANDS[name]
    parser = CommandParser(prog=f"%gpdl {name}", description=module.HELP)
    module.add_arguments(parser, context)
    parser.add_argument("--dsn", help="database URL or jupysql alias for this command "
                        "(default: GpdlMagic.dsn, %%gpdl connect, jupysql, $DATABASE_URL, "
                        "the embedded server)")
    parser.add_argument("--show-sql", action="store_true",
                        help="show the SQL and driver calls instead of running them")
    return parser


def parse(name: str, words: Sequence[str], context: Context) -> argparse.Namespace:
    """Parse a command's words; ``dsn`` and ``show_sql`` fall back to the context's.

    Raises:
        UsageError: unknown options, missing or malformed arguments.
        HelpShown: ``--help`` printed the help.
    """
    args = parser_for(name, context).parse_args(list(words))
    args.dsn = args.dsn or context.dsn or None
    args.show_sql = bool(args.show_sql or context.show_sql)
    return args


def overview() -> str:
    """The ``%gpdl --help`` text: every command with its line of help."""
    width = max(map(len, COMMANDS))
    lines = ["usage: %gpdl COMMAND [ARGS]   (or %%gpdl COMMAND [ARGS] with a cell body)",
             "", "commands:"]
    lines += [f"  {name.ljust(width)}  {module.HELP}" for name, module in COMMANDS.items()]
    lines += ["", "%gpdl COMMAND --help shows a command's options; {{name}} is replaced by "
              "a notebook variable."]
    return "\n".join(lines)
