"""What every API function shares: finding the database."""

from __future__ import annotations

from gpdl_jupyter import connection


def resolve(dsn: str | None, show_sql: bool) -> str:
    """Resolve the database; ``show_sql`` never starts the embedded server."""
    return connection.resolve_dsn(dsn, start_embedded=not show_sql)
