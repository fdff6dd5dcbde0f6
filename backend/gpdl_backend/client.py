"""Client-side database helpers shared by the drivers: connect, sessions, names, errors.

Runs in the client (CLI, notebook), never inside the server.
"""

from __future__ import annotations

import re
import select
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import connection

from gpdl_backend import errors
from gpdl_backend.engine import strip_segment_suffix

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_IDENTIFIER = 63
# Suffixes gpdl appends to a user's table name (errors, summaries, ...).
LONGEST_SUFFIX = len("_progress")
GPDL_SCHEMA = "gpdl"


def connect(dsn: str, application_name: str = "gpdl", **kwargs: Any):
    """Open a psycopg2 connection tagged with ``application_name``."""
    try:
        return tracked(psycopg2.connect(dsn, application_name=application_name, **kwargs))
    except psycopg2.OperationalError as error:
        raise errors.FatalError(f"cannot connect to the database: {error}".strip()) from error


_SCOPES: list[list[Any]] = []  # the cancel scopes open in this process


def tracked(conn: Any) -> Any:
    """Record ``conn`` in every open cancel scope (any thread); returns it."""
    for opened in list(_SCOPES):
        opened.append(conn)
    return conn


@contextmanager
def cancel_scope() -> Iterator[Callable[[], None]]:
    """A function that cancels the statements of every connection opened meanwhile.

    A SQL API call runs its driver in a thread and keeps the backend's own
    thread free to notice the caller's cancel request; this is how that
    request reaches the driver's sessions (each then fails and cleans up).
    One statement runs at a time in a backend, so a process-wide record is exact.
    """
    opened: list[Any] = []
    _SCOPES.append(opened)

    def cancel() -> None:
        for conn in list(opened):
            if not conn.closed:
                with suppress(psycopg2.Error):
                    conn.cancel()

    try:
        yield cancel
    finally:
        _SCOPES.remove(opened)


@contextmanager
def session(
    dsn: str,
    application_name: str = "gpdl",
    *,
    autocommit: bool = False,
    readonly: bool = False,
) -> Iterator[connection]:
    """One unit of work on its own connection.

    Committed at the end (unless ``autocommit``), rolled back on any error,
    always closed; a server error comes out as the gpdl error it carries
    (``raise_from_server``).

    Args:
        dsn: where to connect.
        application_name: the connection's ``application_name``. Defaults to "gpdl".
        autocommit: run each statement in its own transaction. Defaults to False.
        readonly: refuse writes. Defaults to False.

    Raises:
        FatalError: the server cannot be reached, or a server error without a gpdl one.
        GpdlError: the gpdl error a server-side function raised.

    Example:
        >>> with session(dsn) as conn, conn.cursor() as cur:
        ...     cur.execute("SELECT 1")
    """
    conn = connect(dsn, application_name)
    try:
        if autocommit or readonly:
            conn.set_session(readonly=readonly or None, autocommit=autocommit)
        yield conn
        if not autocommit:
            conn.commit()
    except BaseException as error:
        with suppress(psycopg2.Error):  # a lost connection: keep the error that led here
            conn.rollback()
        if isinstance(error, psycopg2.Error):
            raise_from_server(error)
        raise
    finally:
        conn.close()


@dataclass(frozen=True)
class TableName:
    """A validated, optionally schema-qualified table name."""

    schema: str | None
    name: str

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name) if self.schema else sql.Identifier(self.name)

    def with_suffix(self, suffix: str) -> TableName:
        return TableName(self.schema, self.name + suffix)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def table_name(text: str) -> TableName:
    """Parse and check a user's table name: ``name`` or ``schema.name``.

    Only letters, digits and underscores, not starting with a digit, short
    enough for gpdl's suffixes; anything else is refused before work starts.

    Raises:
        UsageError: the name is unsafe or too long.
    """
    if isinstance(text, str) and not text.strip():
        raise errors.UsageError(f"unsafe table name {text!r}: it is empty; give a table's name")
    parts = text.split(".") if isinstance(text, str) else []
    if not 1 <= len(parts) <= 2 or not all(_NAME.fullmatch(p) for p in parts):
        raise errors.UsageError(
            f"unsafe table name {text!r}: use letters, digits and underscores, "
            "optionally schema-qualified (schema.table)"
        )
    if len(parts[-1]) + LONGEST_SUFFIX > MAX_IDENTIFIER:
        raise errors.UsageError(
            f"table name {text!r} is too long: at most {MAX_IDENTIFIER - LONGEST_SUFFIX} "
            "characters, leaving room for gpdl's suffixes"
        )
    if len(parts) == 2 and parts[0] == GPDL_SCHEMA:  # names are quoted: "GPDL" is another
        raise errors.UsageError(
            f"table name {text!r}: schema {GPDL_SCHEMA} holds gpdl's own objects; "
            "put your tables in another schema")
    return TableName(parts[0], parts[1]) if len(parts) == 2 else TableName(None, parts[0])


def table_exists(cur, table: TableName) -> bool:
    """Whether ``table`` exists (in the search path when unqualified)."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table.identifier.as_string(cur),))
    return bool(cur.fetchone()[0])


_RELATION_KINDS = {"v": "a view", "m": "a materialized view", "f": "a foreign table",
                   "S": "a sequence", "i": "an index", "c": "a composite type"}


def check_writable(cur, table: TableName) -> None:
    """Refuse a table gpdl may not create, replace or append to, before any work starts.

    The schema must exist and not be the system's (``pg_*``,
    ``information_schema``, ``gp_toolkit``), whether named or found through
    the search path; an existing relation must be a table, not a view.

    Raises:
        UsageError: one line naming what is wrong.
    """
    found = _relation(cur, table)
    if found is not None:
        schema, _, kind = found
    elif table.schema is None:
        cur.execute("SELECT current_schema()")
        schema, kind = cur.fetchone()[0], None
        if schema is None:
            raise errors.UsageError(f"no schema for table {table}: the search_path names none "
                                    "that exists; write it as schema.table")
    else:
        schema, kind = table.schema, None
        cur.execute("SELECT to_regnamespace(%s) IS NOT NULL",
                    (sql.Identifier(schema).as_string(cur),))
        if not cur.fetchone()[0]:
            raise errors.UsageError(f"schema {schema} does not exist: create it "
                                    f"(CREATE SCHEMA {schema}) or name another")
    if schema.startswith("pg_") or schema in ("information_schema", "gp_toolkit"):
        raise errors.UsageError(f"table {table} is in the system schema {schema}; "
                                "put your tables in a schema of your own")
    if kind is not None and kind not in ("r", "p"):
        raise errors.UsageError(f"{schema}.{table.name} is "
                                f"{_RELATION_KINDS.get(kind, 'not a table')}, not a table; "
                                "name a table or a new name")


def qualified(cur, table: TableName) -> TableName:
    """``table`` with its schema, as the search path finds it.

    Raises:
        UsageError: there is no such table.
    """
    found = _relation(cur, table)
    if found is None:
        raise errors.UsageError(f"table {table} does not exist")
    return TableName(found[0], found[1])


def columns_of(cur, table: TableName) -> dict[str, str]:
    """Column name -> type category (``A`` for arrays) of ``table``, in column order."""
    cur.execute("SELECT a.attname, t.typcategory FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum", (table.identifier.as_string(cur),))
    return dict(cur.fetchall())


def _relation(cur, table: TableName) -> tuple[str, str, str] | None:
    """``(schema, name, relkind)`` of the relation ``table`` names, as the search path finds it."""
    cur.execute("SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                (table.identifier.as_string(cur),))
    return cur.fetchone()


_SERVER_ERROR = re.compile(r"^(?:gpdl_backend\.errors\.)?(UsageError|ImageDecodeError|"
                           r"UnitFailedError|FatalError): (.*)$", re.S)


def server_error(error: psycopg2.Error) -> errors.GpdlError | None:
    """The gpdl error a plpython function raised, recovered from a server error.

    PL/Python puts the exception in the primary message, or, when it escapes
    a set-returning function's iterator, in the detail ("error fetching next
    item from iterator").
    """
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    detail = getattr(diag, "message_detail", None)
    for message in (primary or str(error), detail):
        match = _SERVER_ERROR.match(message.strip()) if message else None
        if match:
            cls = getattr(errors, match.group(1))
            return cls(match.group(2).strip())
    return None


def raise_from_server(error: psycopg2.Error) -> NoReturn:
    """Re-raise a server error as the gpdl error it carries, else as FatalError."""
    mapped = server_error(error)
    if mapped is not None:
        raise mapped from error
    raise errors.FatalError(str(error).strip()) from error


def execute_async(
    dsn: str,
    statement: sql.Composable | str,
    on_notice: Callable[[str], None] | None = None,
    on_connect: Callable[[Any], None] | None = None,
    poll_seconds: float = 0.2,
) -> int:
    """Run one statement on its own autocommit connection, streaming NOTICEs.

    psycopg2 only hands notices over while it polls an asynchronous
    connection, so this is how a long server-side call reports progress.

    Args:
        dsn: where to connect.
        statement: the statement to run.
        on_notice: called with each notice's message as it arrives.
        on_connect: called with the connection once open (to allow cancel()).
        poll_seconds: how long to wait for the socket between checks.

    Returns:
        The statement's rowcount.
    """
    conn = connect_async(dsn, poll_seconds)
    try:
        if on_connect:
            on_connect(conn)
        return execute_on(conn, statement, on_notice=on_notice, poll_seconds=poll_seconds
                          ).rowcount
    finally:
        conn.close()


def connect_async(dsn: str, poll_seconds: float = 0.2):
    """Open an asynchronous (autocommit) connection for ``execute_on``.

    Raises:
        FatalError: the server cannot be reached.
    """
    try:
        conn = tracked(psycopg2.connect(dsn, async_=1, application_name="gpdl"))
        _wait(conn, poll_seconds)
    except psycopg2.OperationalError as error:
        raise errors.FatalError(f"cannot connect to the database: {error}".strip()) from error
    # psycopg2 keeps only the last 50 notices in a list: take all of them.
    conn.notices = deque()
    return conn


def execute_on(
    conn,
    statement: sql.Composable | str,
    params: Sequence[Any] | None = None,
    on_notice: Callable[[str], None] | None = None,
    poll_seconds: float = 0.2,
):
    """Run one statement on an asynchronous connection, streaming its NOTICEs.

    An exception while waiting (one raised by ``on_notice``, a
    KeyboardInterrupt) cancels the statement on the server before it propagates.

    Args:
        conn: a connection from ``connect_async``.
        statement: the statement to run.
        params: its parameters. Defaults to None.
        on_notice: called with each notice's message as it arrives.
        poll_seconds: how long to wait for the socket between checks.

    Returns:
        The cursor, its results ready to fetch.

    Raises:
        psycopg2.Error: the statement failed on the server.
    """
    cur = conn.cursor()
    cur.execute(statement if isinstance(statement, str) else statement.as_string(conn), params)
    done = False
    try:
        while not done:
            done = _poll_once(conn, poll_seconds)
            while conn.notices:
                notice = conn.notices.popleft()
                if on_notice:
                    on_notice(strip_segment_suffix(notice.split(":", 1)[-1]))
    except BaseException:
        if not done:
            _cancel_quietly(conn)  # closing alone leaves the statement running
        raise
    return cur


def _cancel_quietly(conn) -> None:
    """Ask the server to cancel ``conn``'s running statement, ignoring failures."""
    try:
        if not conn.closed:
            conn.cancel()
    except psycopg2.Error:
        pass


def _wait(conn, poll_seconds: float) -> None:
    while not _poll_once(conn, poll_seconds):
        pass


def _poll_once(conn, poll_seconds: float) -> bool:
    state = conn.poll()
    if state == psycopg2.extensions.POLL_OK:
        return True
    if state == psycopg2.extensions.POLL_READ:
        select.select([conn.fileno()], [], [], poll_seconds)
    elif state == psycopg2.extensions.POLL_WRITE:
        select.select([], [conn.fileno()], [], poll_seconds)
    return False
