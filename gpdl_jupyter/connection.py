"""Which database a command talks to.

Resolution order: an explicit URL (or a jupysql alias) → the connection made
with ``connect`` → jupysql's active connection (when jupysql is loaded) →
``$DATABASE_URL`` → the embedded server (started on demand, with the backend
installed).

The one piece of session state, the connection chosen with ``connect``, is
the ``CURRENT`` object; tests call ``CURRENT.reset()``.

Example::

    dsn = resolve_dsn()          # whatever the order above finds
    CURRENT.set("postgresql://gpdl@127.0.0.1:54329/gpdl")
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

from gpdl_backend import engine as engines
from gpdl_backend.client import connect
from gpdl_backend.embedded import EmbeddedServer
from gpdl_backend.errors import UsageError
from gpdl_backend.install import install_if_needed

__all__ = [
    "CURRENT",
    "ConnectionInfo",
    "CurrentConnection",
    "check_connection",
    "embedded_dsn",
    "jupysql_dsn",
    "mask_password",
    "resolve_dsn",
]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PASSWORD = re.compile(r"(://[^:/@]*:)([^@/]*)(@)")  # a URL's user:password@ (as libpq reads it)
_URL_PASSWORD = re.compile(r"([?&]password=)[^&]*")  # ...?password=... in a URL
# libpq key=value: the value is single-quoted (backslash escapes, spaces allowed)
# or runs to the next space; an unterminated quote runs to the end.
_KEYWORD_PASSWORD = re.compile(r"((?:^|(?<=\s))password\s*=\s*)(?:'(?:[^'\\]|\\.)*(?:'|\\?$)"
                               r"|(?:[^\s'\\]|\\.)(?:[^\s\\]|\\.)*\\?)", re.S)


class CurrentConnection:
    """The database chosen with ``connect`` for this kernel (thread-safe).

    Example:
        >>> CURRENT.set("postgresql://127.0.0.1:54329/gpdl")
        >>> CURRENT.dsn
        'postgresql://127.0.0.1:54329/gpdl'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dsn: str | None = None

    @property
    def dsn(self) -> str | None:
        """The chosen URL, or None when none was chosen."""
        with self._lock:
            return self._dsn

    def set(self, dsn: str) -> None:
        """Use ``dsn`` from now on when no explicit URL is given."""
        with self._lock:
            self._dsn = dsn

    def reset(self) -> None:
        """Forget the chosen connection (tests call this between cases)."""
        with self._lock:
            self._dsn = None


CURRENT = CurrentConnection()


def mask_password(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (URLs and key=value strings).

    Reads the password as libpq does: a URL's ``user:password@`` and its
    ``password=`` query parameter; in a key=value string, a quoted value
    (spaces and ``\\'`` escapes inside) or one running to the next space.

    Example:
        >>> mask_password("postgresql://gpdl:secret@127.0.0.1/gpdl")
        'postgresql://gpdl:***@127.0.0.1/gpdl'
        >>> mask_password("host=h password='my secret pw' user=u")
        'host=h password=*** user=u'
    """
    if _URL.match(dsn):
        masked = _PASSWORD.sub(r"\1***\3", dsn, count=1)
        return _URL_PASSWORD.sub(r"\1***", masked)
    return _KEYWORD_PASSWORD.sub(r"\1***", dsn)


def _jupysql_url(connection) -> str | None:
    """A libpq URL for one jupysql connection object, or None if not PostgreSQL."""
    sqlalchemy_conn = getattr(connection, "connection_sqlalchemy", None) \
        if not getattr(connection, "is_dbapi_connection", True) else None
    if sqlalchemy_conn is not None:
        url = sqlalchemy_conn.engine.url
        if url.get_backend_name() != "postgresql":
            return None
        # jupysql keeps SQLAlchemy URLs ("postgresql+psycopg2://..."); libpq wants plain ones.
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    raw = getattr(connection, "_connection", None)  # a DBAPI connection handed to %sql
    info = getattr(raw, "info", None)
    if info is None or not hasattr(info, "dsn_parameters"):
        return None  # not psycopg2
    parameters = dict(info.dsn_parameters)
    if getattr(info, "password", None):
        parameters["password"] = info.password
    keep = ("host", "port", "dbname", "user", "password", "sslmode")
    return " ".join(f"{key}={_quote(parameters[key])}" for key in keep if parameters.get(key))


def _quote(value: str) -> str:
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def jupysql_dsn(alias: str | None = None) -> str | None:
    """The URL of jupysql's active connection (or of its connection ``alias``).

    Reads ``sql.connection.ConnectionManager`` (jupysql 0.11; developer API,
    hence the upper bound on jupysql). Connections to other databases than
    PostgreSQL / Greenplum are ignored.

    Returns:
        A libpq URL or key=value string; None when jupysql is not imported,
        has no such connection, or it is not a PostgreSQL one.
    """
    try:
        from sql.connection import ConnectionManager
    except ImportError:
        return None
    if alias is None:
        connection = getattr(ConnectionManager, "current", None)
    else:
        connection = getattr(ConnectionManager, "connections", {}).get(alias)
    if connection is None:
        return None
    return _jupysql_url(connection)


def embedded_dsn(quiet: bool = True) -> str:
    """Start the embedded server if needed, make sure the backend is installed."""
    server = EmbeddedServer.default()
    dsn = server.start(quiet=quiet)
    install_if_needed(dsn, servers_dir=str(server.servers_dir))
    return dsn


def resolve_dsn(dsn: str | None = None, use_jupysql: bool = True,
                start_embedded: bool = True) -> str:
    """The libpq URL to use, by the resolution order above.

    Args:
        dsn: a URL (``postgresql://...``, also SQLAlchemy's
            ``postgresql+psycopg2://...``), a libpq ``key=value`` string, or
            the alias of a jupysql connection. Defaults to None (look further).
        use_jupysql: consult jupysql's active connection. Defaults to True.
        start_embedded: start the embedded server when it is the answer;
            False returns its URL without starting it (``show_sql``). Defaults
            to True.

    Raises:
        UsageError: ``dsn`` looks like an alias but jupysql has no such connection.

    Example:
        >>> resolve_dsn("postgresql+psycopg2://gpdl@127.0.0.1:54329/gpdl")
        'postgresql://gpdl@127.0.0.1:54329/gpdl'
    """
    if dsn:
        return _explicit(dsn)
    if CURRENT.dsn:
        return CURRENT.dsn
    if use_jupysql:
        found = jupysql_dsn()
        if found:
            return found
    if os.environ.get("DATABASE_URL"):
        return _explicit(os.environ["DATABASE_URL"])
    if not start_embedded:
        server = EmbeddedServer.default()
        return server.dsn() if server.initialized() else \
            f"postgresql://127.0.0.1:{server.port}/gpdl"
    return embedded_dsn()


def _explicit(dsn: str) -> str:
    """A given URL as libpq reads it; a bare word is a jupysql alias."""
    if _URL.match(dsn):
        scheme, rest = dsn.split("://", 1)
        if scheme.startswith(("postgresql+", "postgres+")):
            return f"postgresql://{rest}"
        return dsn
    if "=" in dsn:
        return dsn  # libpq key=value
    found = jupysql_dsn(dsn)
    if found is None:
        raise UsageError(f"{dsn!r} is neither a database URL nor the alias of a jupysql "
                         "PostgreSQL connection")
    return found


@dataclass(frozen=True)
class ConnectionInfo:
    """What a connection reaches: server kind, segments, gpdl version.

    ``repr`` hides the password, so a notebook can show it.
    """

    dsn: str
    engine: str
    server_version: str
    num_segments: int
    gpdl_version: str | None

    def __repr__(self) -> str:
        installed = f"gpdl {self.gpdl_version}" if self.gpdl_version else "gpdl NOT installed"
        return (f"{mask_password(self.dsn)}: {self.engine} "
                f"({self.server_version.split(' on ')[0]}), "
                f"{self.num_segments} segments, {installed}")

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))


def check_connection(dsn: str) -> ConnectionInfo:
    """Connect to ``dsn`` and describe the server (read-only).

    Raises:
        FatalError: the server cannot be reached.
    """
    conn = connect(dsn, connect_timeout=10)
    try:
        conn.autocommit = True
        engine = engines.probe(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT to_regprocedure('gpdl.version()') IS NOT NULL")
            version = None
            if cur.fetchone()[0]:
                cur.execute("SELECT gpdl.version()")
                version = cur.fetchone()[0]
    finally:
        conn.close()
    return ConnectionInfo(dsn, engine.kind, engine.version, engine.num_segments, version)
