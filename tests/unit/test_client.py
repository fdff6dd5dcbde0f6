"""Client helpers without a database: table names, server error mapping, sessions."""

from __future__ import annotations

import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend import client, errors
from gpdl_backend.client import (
    LONGEST_SUFFIX,
    MAX_IDENTIFIER,
    TableName,
    raise_from_server,
    server_error,
    session,
    table_name,
)

LONGEST_NAME = MAX_IDENTIFIER - LONGEST_SUFFIX


@pytest.mark.parametrize(("text", "expected"), [
    ("images", TableName(None, "images")),
    ("_train_1", TableName(None, "_train_1")),
    ("Train", TableName(None, "Train")),
    ("public.images", TableName("public", "images")),
    ("my_schema.t2", TableName("my_schema", "t2")),
    ("a" * LONGEST_NAME, TableName(None, "a" * LONGEST_NAME)),
])
def test_table_name_accepts_safe_names(text: str, expected: TableName) -> None:
    assert table_name(text) == expected
    assert str(table_name(text)) == text


@pytest.mark.parametrize("text", [
    "", ".", "a.", ".a", "a..b", "a.b.c", "1abc", "a b", "a-b", "a;b", "t; DROP TABLE x",
    'a"b', "a'b", "a`b", "a\nb", "a\\b", "a/b", "a*", "a(b)", "é", "a$b", " a", "a ",
    "abc\n", "s.abc\n", "\nabc",
])
def test_table_name_refuses_unsafe_names(text: str) -> None:
    with pytest.raises(errors.UsageError, match="unsafe table name"):
        table_name(text)


@pytest.mark.parametrize("value", [None, 3, b"images", ["images"]])
def test_table_name_refuses_non_strings(value: object) -> None:
    with pytest.raises(errors.UsageError, match="unsafe table name"):
        table_name(value)  # type: ignore[arg-type]


def test_table_name_too_long_leaves_room_for_suffixes() -> None:
    with pytest.raises(errors.UsageError, match="too long"):
        table_name("a" * (LONGEST_NAME + 1))
    with pytest.raises(errors.UsageError, match="too long"):
        table_name("s." + "a" * (LONGEST_NAME + 1))
    assert len(table_name("a" * LONGEST_NAME).with_suffix("_summary").name) <= MAX_IDENTIFIER


def test_table_name_identifier_and_suffix() -> None:
    qualified = table_name("s.t")
    assert qualified.identifier == sql.Identifier("s", "t")
    assert qualified.with_suffix("_errors") == TableName("s", "t_errors")
    assert table_name("t").identifier == sql.Identifier("t")


@pytest.mark.parametrize(("message", "cls"), [
    ("UsageError: no files found at /data", errors.UsageError),
    ("gpdl_backend.errors.UsageError: location s3://b/x does not exist", errors.UsageError),
    ("ImageDecodeError: not an image", errors.ImageDecodeError),
    ("gpdl_backend.errors.UnitFailedError: out of memory", errors.UnitFailedError),
    ("FatalError: the server is broken", errors.FatalError),
])
def test_server_error_recovers_gpdl_errors(message: str, cls: type) -> None:
    mapped = server_error(psycopg2.Error(message))
    assert type(mapped) is cls
    assert str(mapped) == message.split(": ", 1)[1]


def test_server_error_keeps_multiline_messages() -> None:
    mapped = server_error(psycopg2.Error("UsageError: first line\nsecond line\n"))
    assert isinstance(mapped, errors.UsageError)
    assert str(mapped) == "first line\nsecond line"


@pytest.mark.parametrize("message", [
    "relation \"x\" does not exist",
    "ValueError: bad value",
    "ModuleNotFoundError: No module named 'gpdl_backend'",
    "something UsageError: not at the start",
])
def test_server_error_ignores_other_errors(message: str) -> None:
    assert server_error(psycopg2.Error(message)) is None


def test_raise_from_server_maps_and_chains() -> None:
    original = psycopg2.Error("UsageError: bad option")
    with pytest.raises(errors.UsageError, match=r"^bad option$") as info:
        raise_from_server(original)
    assert info.value.__cause__ is original


def test_raise_from_server_turns_the_rest_into_fatal_errors() -> None:
    original = psycopg2.OperationalError("server closed the connection unexpectedly\n")
    with pytest.raises(errors.FatalError, match="server closed the connection") as info:
        raise_from_server(original)
    assert info.value.__cause__ is original


class RecordingConnection:
    """A stand-in connection that records what ``session`` does with it."""

    def __init__(self, fail_rollback: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_rollback = fail_rollback

    def set_session(self, readonly=None, autocommit=None) -> None:
        self.calls.append(f"set_session(readonly={readonly}, autocommit={autocommit})")

    def commit(self) -> None:
        self.calls.append("commit")

    def rollback(self) -> None:
        self.calls.append("rollback")
        if self.fail_rollback:
            raise psycopg2.InterfaceError("connection already closed")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, RecordingConnection]]:
    """The connections ``session`` opens, with the application name each was given."""
    made: list[tuple[str, RecordingConnection]] = []

    def fake_connect(dsn: str, application_name: str = "gpdl") -> RecordingConnection:
        made.append((application_name, RecordingConnection(fail_rollback="lost" in dsn)))
        return made[-1][1]

    monkeypatch.setattr(client, "connect", fake_connect)
    return made


def test_session_commits_and_closes(opened) -> None:
    with session("db") as conn:
        conn.calls.append("work")
    assert opened[0][0] == "gpdl"
    assert conn.calls == ["work", "commit", "close"]


def test_session_sets_autocommit_and_readonly_without_committing(opened) -> None:
    with session("db", "gpdl:progress", readonly=True, autocommit=True) as conn:
        pass
    assert opened[0][0] == "gpdl:progress"
    assert conn.calls == ["set_session(readonly=True, autocommit=True)", "close"]


def test_session_rolls_back_on_any_error(opened) -> None:
    with pytest.raises(errors.UsageError, match="no such table"), session("db") as conn:
        raise errors.UsageError("no such table")
    assert conn.calls == ["rollback", "close"]


def test_session_maps_server_errors(opened) -> None:
    original = psycopg2.Error("UsageError: bad option")
    with pytest.raises(errors.UsageError, match=r"^bad option$") as info, session("db") as conn:
        raise original
    assert info.value.__cause__ is original
    assert conn.calls == ["rollback", "close"]


def test_session_keeps_the_error_when_the_connection_is_gone(opened) -> None:
    with pytest.raises(errors.FatalError, match="server closed") as info, \
            session("lost") as conn:
        raise psycopg2.OperationalError("server closed the connection unexpectedly")
    assert isinstance(info.value.__cause__, psycopg2.OperationalError)
    assert conn.calls == ["rollback", "close"]
