"""Choosing and describing the database: ``connect``, ``dsn``, ``info``."""

from __future__ import annotations

from gpdl_jupyter import connection
from gpdl_jupyter.api._common import resolve
from gpdl_jupyter.sqltext import ShownSql, shown


def connect(dsn: str | None = None, *, show_sql: bool = False
            ) -> connection.ConnectionInfo | ShownSql:
    """Choose the database for the following calls, and check it.

    Args:
        dsn: a URL (``postgresql://user:pw@host:5432/db``; SQLAlchemy's
            ``postgresql+psycopg2://`` too), a libpq ``key=value`` string or a
            jupysql connection alias. Defaults to None: the first of jupysql's
            active connection, ``$DATABASE_URL``, the embedded server (started).
        show_sql: describe instead of connecting. Defaults to False.

    Returns:
        A ``ConnectionInfo`` (engine, segments, gpdl version; password hidden).

    Raises:
        FatalError: the server cannot be reached.

    Example:
        >>> connect("postgresql://gpdl@127.0.0.1:54329/gpdl")
        postgresql://gpdl@127.0.0.1:54329/gpdl: postgresql (PostgreSQL 15.8), 2 segments, gpdl 0.1.0
    """
    if dsn is None:
        connection.CURRENT.reset()  # look past an earlier choice
    url = resolve(dsn, show_sql)
    if show_sql:
        return _probe_sql(url)
    found = connection.check_connection(url)
    connection.CURRENT.set(url)
    return found


def dsn(url: str | None = None) -> str:
    """The database URL a call given ``dsn=url`` uses (may start the embedded server).

    Args:
        url: an explicit URL or jupysql alias. Defaults to None: the
            connection chosen with ``connect``, jupysql's, ``$DATABASE_URL``,
            else the embedded server.

    Example:
        >>> dsn()
        'postgresql://gpdl:...@127.0.0.1:54329/gpdl'
    """
    return connection.resolve_dsn(url)


def info(*, dsn: str | None = None, show_sql: bool = False
         ) -> connection.ConnectionInfo | ShownSql:
    """Describe the database (engine, segments, gpdl version) without choosing it.

    Example:
        >>> info().num_segments
        2
    """
    url = resolve(dsn, show_sql)
    if show_sql:
        return _probe_sql(url)
    return connection.check_connection(url)


def _probe_sql(url: str) -> ShownSql:
    """What ``connect`` and ``info`` run: a read-only probe of the server."""
    return shown([
        f"-- connect to {connection.mask_password(url)} and describe the server (read-only)",
        "SELECT version();",
        "SELECT gpdl.version();",
    ])
