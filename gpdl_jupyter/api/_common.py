"""What every API function shares: finding the database, running one SQL call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg2

from gpdl_backend.client import connect_async, execute_on, raise_from_server
from gpdl_jupyter import connection


def resolve(dsn: str | None, show_sql: bool) -> str:
    """Resolve the database; ``show_sql`` never starts the embedded server."""
    return connection.resolve_dsn(dsn, start_embedded=not show_sql)


def run_call(dsn: str, statement: str,
             on_notice: Callable[[str], None] | None = None) -> Any:
    """Run one ``SELECT gpdl.<function>(...)``; its single value, NOTICEs streamed.

    Raises:
        GpdlError: the error the server-side function raised (UsageError, ...).
    """
    conn = connect_async(dsn)
    try:
        cur = execute_on(conn, statement, on_notice=on_notice)
        return cur.fetchone()[0]
    except psycopg2.Error as error:
        raise_from_server(error)
    finally:
        conn.close()
