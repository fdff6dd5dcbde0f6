"""Plain SQL as a psql user sends it: one statement per connection, and gpdl's refusals."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend.client import server_error
from gpdl_backend.errors import UsageError


def run(dsn: str, statement: str | sql.Composable, params: tuple = (),
        setup: Sequence[str | sql.Composable] = ()) -> list[tuple]:
    """One statement on its own autocommit connection (after ``setup``, e.g. SET ROLE)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for step in setup:
                cur.execute(step)
            cur.execute(statement, params or None)  # no params: a % is a %
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def refusal(dsn: str, statement: str | sql.Composable, params: tuple = (),
            setup: Sequence[str | sql.Composable] = ()) -> str:
    """The one-line error a refused statement gives, checked to be gpdl's own UsageError."""
    with pytest.raises(psycopg2.Error) as caught:
        run(dsn, statement, params, setup)
    message = caught.value.diag.message_primary
    assert "\n" not in message
    assert isinstance(server_error(caught.value), UsageError), message
    return message
