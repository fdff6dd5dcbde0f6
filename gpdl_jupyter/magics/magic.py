"""``%gpdl`` / ``%%gpdl``: one magic, its options as traitlets, commands through a dict.

The magic splits the line into words and fills ``{{name}}`` in from the
notebook's namespace inside its word (a value is one argument, never options),
hands the words to the command's parser (``gpdl_jupyter.magics.commands``) and
the parsed arguments to the command, which calls one API function. Mistakes
(bad options, unknown tables, gpdl's own errors) become one-line IPython
``UsageError``s chained from the cause; bugs keep their traceback.

Options (``%config GpdlMagic.batch_size = 250``), with defaults from the
nearest ``pyproject.toml``'s ``[tool.gpdl]`` when the IPython configuration
does not set them::

    %load_ext gpdl_jupyter
    %gpdl connect postgresql://gpdl@127.0.0.1:54329/gpdl
    %gpdl load /data/train train_images --resize 32 32
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, validate
from traitlets.config.configurable import Configurable

from gpdl_backend.errors import GpdlError, UsageError
from gpdl_jupyter.magics import commands
from gpdl_jupyter.magics.commands import COMMANDS, Context
from gpdl_jupyter.magics.parsing import HelpShown, body_words, substitute, substitute_words
from gpdl_jupyter.magics.pyproject import find_pyproject, gpdl_options
from gpdl_jupyter.usage import cli_spelling

__all__ = ["GpdlMagic", "one_line"]


def one_line(error: BaseException) -> str:
    """The first line of an error's message (the rest stays on the chained cause)."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0] + (" (…)" if len(lines) > 1 else "")


@magics_class
class GpdlMagic(Magics, Configurable):
    """The ``%gpdl`` line magic and ``%%gpdl`` cell magic.

    Example:
        >>> %gpdl load {{folder}} train_images --resize 32 32     # doctest: +SKIP
    """

    dsn = Unicode(
        "", config=True,
        help="Database URL or jupysql alias for every command. Empty (default): the "
             "connection chosen with %gpdl connect, jupysql's active one, $DATABASE_URL, "
             "else the embedded server.")
    num_segments = Int(
        None, allow_none=True, config=True,
        help="PostgreSQL virtual segments (parallel readers and trainers). None "
             "(default): the count recorded by gpdl install.")
    batch_size = Int(500, config=True, help="Images per row when loading. Defaults to 500.")
    iterations = Int(10, config=True, help="Default --iterations of fit. Defaults to 10.")
    show_sql = Bool(
        False, config=True,
        help="Show the SQL and driver calls of every command instead of running them. "
             "Defaults to False.")
    theme = CaselessStrEnum(
        ["notebook", "presentation"], "notebook", config=True,
        help="Widget theme: 'notebook', or 'presentation' (larger fonts for a projector). "
             "Defaults to 'notebook'.")
    live = Bool(
        True, config=True,
        help="Widgets update themselves from the database while work runs; False draws "
             "them once (tests, static notebooks). Defaults to True.")
    refresh = Float(
        2.0, config=True,
        help="Seconds between two updates of a live widget, at least 0.5. Defaults to 2.0.")

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.pyproject: Path | None = None
        self.load_pyproject()

    # --- options -----------------------------------------------------------------
    @validate("batch_size", "iterations")
    def _positive(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1, "
                             f"not {proposal['value']}")
        return proposal["value"]

    @validate("num_segments")
    def _segments(self, proposal: Any) -> int | None:
        if proposal["value"] is not None and proposal["value"] < 1:
            raise TraitError(f"num_segments must be at least 1 (or None), "
                             f"not {proposal['value']}")
        return proposal["value"]

    @validate("refresh")
    def _refresh(self, proposal: Any) -> float:
        if not proposal["value"] >= 0.5:
            raise TraitError(f"refresh must be at least 0.5 seconds, not {proposal['value']}")
        return proposal["value"]

    def load_pyproject(self, start: Path | None = None) -> Path | None:
        """Take defaults from the nearest ``pyproject.toml``'s ``[tool.gpdl]``.

        Options the IPython configuration sets are kept; unknown keys and bad
        values are warned about, never fatal.

        Returns:
            The file used, or None.
        """
        path = find_pyproject(start)
        self.pyproject = path
        if path is None:
            return None
        try:
            options = gpdl_options(path)
        except UsageError as error:
            warnings.warn(str(error), stacklevel=2)
            return path
        configured = self.config.get(type(self).__name__, {})
        known = self.class_trait_names(config=True)
        for key, value in options.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                warnings.warn(f"{path}: [tool.gpdl] has an unknown option {key!r}{hint}",
                              stacklevel=2)
            elif key not in configured:
                try:
                    setattr(self, key, value)
                except TraitError as error:
                    warnings.warn(f"{path}: [tool.gpdl] {key}: {error}", stacklevel=2)
        return path

    def context(self, cell: str | None) -> Context:
        """The options as they are now, with the cell and the namespace."""
        return Context(
            dsn=self.dsn, show_sql=self.show_sql, num_segments=self.num_segments,
            batch_size=self.batch_size, iterations=self.iterations, theme=self.theme,
            live=self.live, refresh=self.refresh, cell=cell,
            user_ns=self.shell.user_ns if self.shell is not None else {},
            set_dsn=self._set_dsn)

    def _set_dsn(self, dsn: str) -> None:
        self.dsn = dsn

    # --- the magic ---------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    def gpdl(self, line: str, cell: str | None = None) -> Any:
        """Run a gpdl command: ``%gpdl --help`` lists them."""
        try:
            return self.execute(line, cell)
        except HelpShown:
            return None
        except GpdlError as error:  # hints in the options' spelling, as typed here
            raise IPythonUsageError(cli_spelling(one_line(error))) from error

    def execute(self, line: str, cell: str | None = None) -> Any:
        """Substitute, split, parse and run one command (gpdl errors are not converted).

        Raises:
            UsageError: an unknown command, bad arguments, or what the command raises.
        """
        namespace = self.shell.user_ns if self.shell is not None else {}
        words = substitute_words(line, namespace)  # a {{value}} is one word, never options
        if not words or words[0] in ("-h", "--help", "help"):
            print(commands.overview())
            return None
        name, rest = words[0], words[1:]
        module = COMMANDS.get(name)
        if module is None:
            close = difflib.get_close_matches(name, COMMANDS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"%gpdl has no command {name!r}; {hint}commands: "
                             f"{', '.join(COMMANDS)}")
        body = cell
        if body is not None and module.BODY == "options":
            rest += substitute_words(body, namespace, comments=True)
            body = None
        elif body is not None:
            body = substitute(body, namespace)  # content: the YAML / JSON text itself
        if body is not None and module.BODY == "none" and body_words(body):
            raise UsageError(f"%%gpdl {name} takes no cell body; use the line form %gpdl {name}")
        context = self.context(body)
        args = commands.parse(name, rest, context)
        return module.run(args, context)
