"""Client helpers without a database: table names and server error mapping."""

from __future__ import annotations

import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend import errors
from gpdl_backend.client import (
    LONGEST_SUFFIX,
    MAX_IDENTIFIER,
    TableName,
    raise_from_server,
    server_error,
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
