"""What every API function shares: finding the database, running one SQL call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg2

from gpdl_backend.client import connect_async, execute_on, raise_from_server, table_name
from gpdl_jupyter import connection
from gpdl_jupyter.sqltext import SqlCall


def resolve(dsn: str | None, show_sql: bool) -> str:
    """Resolve the database; ``show_sql`` never starts the embedded server."""
    return connection.resolve_dsn(dsn, start_embedded=not show_sql)


def check_tables(*names: str | None) -> None:
    """Refuse unsafe table names here, before the server is asked (None: not given)."""
    for name in names:
        if name is not None:
            table_name(name)


def run_call(dsn: str, call: SqlCall,
             on_notice: Callable[[str], None] | None = None) -> Any:
    """Run one ``SELECT gpdl.<function>(...)``; its single value, NOTICEs streamed.

    Raises:
        GpdlError: the error the server-side function raised (UsageError, ...).
    """
    return _run(dsn, call, on_notice, lambda cur: cur.fetchone()[0])


def run_rows(dsn: str, call: SqlCall) -> list[dict[str, Any]]:
    """Run one ``SELECT * FROM gpdl.<function>(...)``; its rows as dicts."""
    def rows(cur) -> list[dict[str, Any]]:
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    return _run(dsn, call, None, rows)


def _run(dsn: str, call: SqlCall, on_notice: Callable[[str], None] | None,
         result: Callable[[Any], Any]) -> Any:
    conn = connect_async(dsn)
    try:
        cur = execute_on(conn, call.text, call.params or None, on_notice=on_notice)
        return result(cur)
    except psycopg2.Error as error:
        raise_from_server(error)
    finally:
        conn.close()
