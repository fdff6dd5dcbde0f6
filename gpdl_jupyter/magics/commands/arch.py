"""``%gpdl arch TABLE``: the architecture editor; with a model, add it to the table.

- ``%gpdl arch TABLE [--model-id ID] [--select MST_TABLE]``: the editor
  widget (on model ID, else a small CNN); saves new models to TABLE, and
  "add to selection" adds them to MST_TABLE.
- ``%%gpdl arch TABLE --name cnn`` with the model's JSON (``model.to_json()``)
  as the cell body, or ``%gpdl arch TABLE --from model`` naming a notebook
  variable (a ``keras.Model``, its JSON or a dict): add it; shows the new model_id.
- ``%gpdl arch TABLE --delete ID``: delete one.
"""

from __future__ import annotations

import argparse
from typing import Any

from gpdl_backend.errors import UsageError
from gpdl_jupyter import api
from gpdl_jupyter.magics.commands.context import Context
from gpdl_jupyter.magics.parsing import CommandParser
from gpdl_jupyter.sqltext import ShownSql
from gpdl_jupyter.usage import table_argument

HELP = "edit architectures (widget), or add one from the cell body / --from VARIABLE"
BODY = "content"


def add_arguments(parser: CommandParser, context: Context) -> None:
    parser.add_argument("table", type=table_argument,
                        help="model architecture table (created when missing)")
    parser.add_argument("--from", dest="source", metavar="VARIABLE",
                        help="notebook variable holding a keras.Model, its JSON or a dict")
    parser.add_argument("--name", help="name of the model")
    parser.add_argument("--description", help="description of the model")
    parser.add_argument("--model-id", type=int,
                        help="adding: the model_id to use (default: next); editor: the "
                        "model to start from")
    parser.add_argument("--select", metavar="MST_TABLE", type=table_argument,
                        help="editor: the model selection table new models are added to")
    parser.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"),
                        help="editor: the images' shape (default: the model's)")
    parser.add_argument("--num-classes", type=int,
                        help="editor: classes of the data (default: the model's)")
    parser.add_argument("--with-weights", action="store_true",
                        help="also store the keras.Model's current weights (warm start)")
    parser.add_argument("--delete", type=int, metavar="MODEL_ID", help="delete this model")


def _model(args: argparse.Namespace, context: Context) -> Any | None:
    body = (context.cell or "").strip()
    if args.source and body:
        raise UsageError("give the model either as the cell body or with --from, not both")
    if args.source:
        if args.source not in context.user_ns:
            raise UsageError(f"--from {args.source}: no such variable in the notebook")
        return context.user_ns[args.source]
    return body or None


def run(args: argparse.Namespace, context: Context) -> Any:
    if args.delete is not None:
        return api.delete_model(args.table, args.delete, dsn=args.dsn, show_sql=args.show_sql)
    model = _model(args, context)
    if model is not None:
        return api.load_model(args.table, model, with_weights=args.with_weights,
                              name=args.name, description=args.description,
                              model_id=args.model_id, dsn=args.dsn, show_sql=args.show_sql)
    if args.show_sql:
        return ShownSql(f"-- the architecture editor on {args.table}; saving runs "
                        f"load_keras_model: %gpdl arch {args.table} --from MODEL --show-sql "
                        "shows its SQL")
    from gpdl_jupyter.widgets import ArchitectureEditor

    return ArchitectureEditor(
        api.dsn(args.dsn), args.table, model=args.model_id, input_shape=args.input_shape,
        num_classes=args.num_classes, model_selection_table=args.select, theme=context.theme)
