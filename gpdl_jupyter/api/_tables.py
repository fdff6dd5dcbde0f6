"""Housekeeping: ``drop_tables`` (a clean slate for a notebook that runs again)."""

from __future__ import annotations

from psycopg2 import sql

from gpdl_backend.client import TableName, session, table_name
from gpdl_backend.errors import UsageError
from gpdl_jupyter.api._common import resolve
from gpdl_jupyter.sqltext import ShownSql, call_text, shown

COMPANIONS = ("_summary", "_info", "_progress", "_errors")
"""The tables gpdl writes beside a table it makes: a packed table's and a model
selection table's ``_summary``; a training job's ``_info``, ``_summary`` and
``_progress``; an image table's ``_errors``."""


def _candidates(tables: tuple[str, ...], companions: bool) -> list[TableName]:
    names = [table_name(t) for t in tables]
    suffixes = ("", *COMPANIONS) if companions else ("",)
    return [name.with_suffix(suffix) for name in names for suffix in suffixes]


def drop_tables(
    *tables: str,
    companions: bool = True,
    dsn: str | None = None,
    show_sql: bool = False,
) -> list[str] | ShownSql:
    """Drop tables, and the companion tables gpdl made beside them; missing ones are skipped.

    Stop a training job before dropping its tables.

    Args:
        *tables: table names (``name`` or ``schema.name``).
        companions: also drop ``<table>_summary``, ``_info``, ``_progress`` and
            ``_errors`` where they exist. Defaults to True.
        dsn: the database. Defaults to None (the usual resolution order).
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        The tables dropped (empty when none existed).

    Raises:
        UsageError: an unsafe table name, or no table given.

    Example:
        >>> drop_tables("models", "mst", "arch")
        ['models', 'models_summary', 'models_info', 'models_progress', 'mst', 'mst_summary', 'arch']
    """
    if not tables:
        raise UsageError("name at least one table to drop")
    candidates = _candidates(tables, companions)
    url = resolve(dsn, show_sql)
    statement = sql.SQL("DROP TABLE IF EXISTS {}").format(
        sql.SQL(", ").join(name.identifier for name in candidates))
    if show_sql:
        return shown([call_text("gpdl_jupyter.api.drop_tables", url, *tables,
                                companions=companions), statement])
    with session(url) as conn, conn.cursor() as cur:
        existing = []
        for name in candidates:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL",
                        (name.identifier.as_string(cur),))
            if cur.fetchone()[0]:
                existing.append(name)
        if existing:
            cur.execute(sql.SQL("DROP TABLE {}").format(
                sql.SQL(", ").join(name.identifier for name in existing)))
    return [str(name) for name in existing]
