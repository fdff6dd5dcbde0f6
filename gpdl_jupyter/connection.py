"""Which database a command talks to.

Resolution order: an explicit URL → jupysql's active connection (when
jupysql is loaded) → ``$DATABASE_URL`` → the embedded server (started on
demand, with the backend installed).
"""

from __future__ import annotations

import os

from gpdl_backend.embedded import EmbeddedServer
from gpdl_backend.install import install


def jupysql_dsn() -> str | None:
    """The URL of jupysql's active connection, if jupysql has one."""
    try:
        from sql.connection import ConnectionManager
    except ImportError:
        return None
    current = getattr(ConnectionManager, "current", None)
    engine = getattr(current, "_engine", None) or getattr(current, "engine", None)
    if engine is None:
        return None
    url = engine.url
    # jupysql keeps SQLAlchemy URLs ("postgresql+psycopg2://..."): libpq wants plain ones.
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def embedded_dsn(quiet: bool = True) -> str:
    """Start the embedded server if needed, make sure the backend is installed."""
    server = EmbeddedServer.default()
    was_running = server.running()
    dsn = server.start(quiet=quiet)
    if not was_running:
        install(dsn, servers_dir=str(server.servers_dir))
    return dsn


def resolve_dsn(dsn: str | None = None, use_jupysql: bool = True) -> str:
    """The libpq URL to use, by the resolution order above."""
    if dsn:
        return dsn
    if use_jupysql:
        found = jupysql_dsn()
        if found:
            return found
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return embedded_dsn()
