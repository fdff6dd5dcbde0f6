"""SQL as text, for ``show_sql``: render the backend's composed statements without running them.

The backend composes its statements from :mod:`psycopg2.sql` objects.
psycopg2 needs an open connection to turn those into text; :func:`render`
does it offline, quoting the way the server reads it (identifiers always in
double quotes as psycopg2 does, strings with doubled single quotes). Values
only known once the work runs (the class values a preprocessor reads, a
buffer size it computes) are :class:`Param` markers and render as ``:name``.

Example::

    text = render(sql.SQL("SELECT * FROM {}").format(sql.Identifier("train")))
    # 'SELECT * FROM "train"'
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import adapt

from gpdl_backend import engine as engines
from gpdl_backend.client import connect
from gpdl_backend.errors import GpdlError

__all__ = ["Param", "ShownSql", "SqlCall", "call_text", "engine_for", "function_call", "render",
           "shown"]


@dataclass(frozen=True)
class Param:
    """A value the work computes while it runs; renders as ``:name``."""

    name: str


class ShownSql(str):
    """What a call would run, as text; notebooks show it as highlighted SQL.

    Example:
        >>> print(ShownSql("SELECT 1"))
        SELECT 1
    """

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return f"<pre><code class='language-sql'>{html.escape(str(self))}</code></pre>"


def shown(lines: Iterable[str | sql.Composable]) -> ShownSql:
    """Join statements and comments into one ``ShownSql``; statements end with ``;``."""
    parts = []
    for line in lines:
        text = line if isinstance(line, str) else render(line) + ";"
        parts.append(text)
    return ShownSql("\n".join(parts))


@dataclass(frozen=True)
class SqlCall:
    """One call of a gpdl SQL function: the statement's text and its binary parameters.

    Every value is a literal in the text except bytes (an image, weights), which
    are ``%s`` parameters; the text is then what psycopg2 takes as a template
    (``%`` written ``%%``). ``shown()`` is the text that runs.
    """

    text: str
    params: tuple[bytes, ...] = ()

    def shown(self) -> ShownSql:
        notes = [f"\n-- parameter {i}: {len(value)} bytes"
                 for i, value in enumerate(self.params, start=1)]
        return ShownSql(self.text + ";" + "".join(notes))


def function_call(function: str, *args: Any, rows: bool = False, **named: Any) -> SqlCall:
    """``SELECT gpdl.<function>(...)`` (``rows``: ``SELECT * FROM ...``): the statement that runs.

    Named arguments use SQL's ``name => value``; None-valued named arguments
    are left out (the function's default applies).

    Example:
        >>> function_call("stop_job", "models", mst_key=2).text
        "SELECT gpdl.stop_job('models', mst_key => 2)"
    """
    binary = any(isinstance(v, bytes | bytearray | memoryview)
                 for v in (*args, *named.values()))
    params: list[bytes] = []

    def value(item: Any) -> str:
        if isinstance(item, bytes | bytearray | memoryview):
            params.append(bytes(item))
            return "%s"
        text = literal(item)
        return text.replace("%", "%%") if binary else text

    values = [value(item) for item in args]
    values += [f"{name} => {value(item)}" for name, item in named.items() if item is not None]
    call = f"gpdl.{function}({', '.join(values)})"
    return SqlCall(f"SELECT * FROM {call}" if rows else f"SELECT {call}", tuple(params))


def call_text(function: str, dsn: str, *args: Any, **kwargs: Any) -> str:
    """A comment line naming a client-side step (a file write, a check), its DSN masked."""
    from gpdl_jupyter.connection import mask_password

    shown_args = [repr(mask_password(dsn))] + [repr(a) for a in args]
    shown_args += [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"-- {function}({', '.join(shown_args)})"


def render(composable: sql.Composable) -> str:
    """The text of a composed statement, as psycopg2 would send it (no connection needed).

    ``%(name)s`` placeholders are kept as they are: the values are passed
    separately, as parameters.
    """
    if isinstance(composable, sql.Composed):
        return "".join(render(part) for part in composable.seq)
    if isinstance(composable, sql.SQL):
        return composable.string
    if isinstance(composable, sql.Identifier):
        return ".".join(_quote_ident(name) for name in composable.strings)
    if isinstance(composable, sql.Literal):
        return literal(composable.wrapped)
    if isinstance(composable, sql.Placeholder):
        return f"%({composable.name})s" if composable.name else "%s"
    raise TypeError(f"cannot render {type(composable).__name__}")


def literal(value: Any) -> str:
    """A Python value as an SQL literal (strings, numbers, lists, None, ``Param``)."""
    if isinstance(value, Param):
        return f":{value.name}"
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return "ARRAY[" + ",".join(literal(item) for item in value) + "]"
    return adapt(value).getquoted().decode()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def engine_for(dsn: str, num_segments: int | None = None) -> tuple[engines.Engine, str]:
    """The server's engine, probed read-only; an assumed PostgreSQL one when unreachable.

    Returns:
        ``(engine, note)``; ``note`` is a comment line saying which server the
        text is for.
    """
    try:
        conn = connect(dsn, connect_timeout=3)
    except GpdlError:
        engine = engines.Engine(engines.POSTGRESQL, "", tuple(range(num_segments or 1)))
        return engine, (f"-- server not reachable: shown for PostgreSQL with "
                        f"{engine.num_segments} virtual segment(s)")
    try:
        conn.autocommit = True
        engine = engines.probe(conn, num_segments)
    except psycopg2.Error as error:
        raise GpdlError(f"cannot probe the server: {str(error).strip()}") from error
    finally:
        conn.close()
    return engine, f"-- on {engine.title} with {engine.num_segments} segment(s)"
