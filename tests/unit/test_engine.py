"""The SQL ``engine`` builds for PostgreSQL and Greenplum, rendered without a database."""

from __future__ import annotations

import re
from typing import Any

import pytest
from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.engine import GREENPLUM, POSTGRESQL, Engine, greenplum_dist_keys_sql, kind_of
from gpdl_jupyter.sqltext import render

# Syntax newer than PostgreSQL 12 (Greenplum 7's base), as words that must not appear.
NEWER_THAN_PG12 = (
    r"\bMERGE\b", r"\bJSON_TABLE\b", r"\bJSON_OBJECT\b", r"\bIS\s+JSON\b", r"\bANY_VALUE\b",
    r"\bNULLS\s+NOT\s+DISTINCT\b", r"\bSEARCH\s+(DEPTH|BREADTH)\b", r"\bCYCLE\b",
    r"\brange_agg\b", r"\bmultirange\b", r"\bSYSTEM_USER\b", r"\bOR\s+REPLACE\s+TRIGGER\b",
    r"\bstring_to_table\b", r"\btrim_array\b", r"\bdate_bin\b", r"\bunistr\b",
)
GP_ONLY = ("DISTRIBUTED", "gp_dist_random", "gp_execution_segment", "gp_segment_id")

POSTGRES = Engine(POSTGRESQL, "PostgreSQL 15.8", (0, 1, 2))
GREENPLUM_3 = Engine(GREENPLUM, "PostgreSQL 12.12 (Greenplum Database 7.0.0)", (0, 5, 9))
STAGING = sql.Identifier("public", "gpdl_loading_ab12")
COLUMNS = ("fullpaths, names, y, dims, x, pixels, error_paths, error_reasons")
FIELDS = ("(r).fullpaths, (r).names, (r).y, (r).dims, (r).x, (r).pixels, (r).error_paths, "
          "(r).error_reasons")
ARGS = sql.SQL(", ").join([sql.Literal("/data/train"),
                           sql.SQL("batch_size => {}").format(sql.Literal(500))])


def all_statements(engine: Engine) -> list[str]:
    """Every statement the engine can build, rendered."""
    table = sql.Identifier("packed")
    statements = [
        engine.distributed_by_key(), engine.distributed_randomly(),
        engine.distributed_replicated(), engine.distributed_by("model_id"),
        *engine.row_shares(sql.SQL("fullpaths[1]")),
        engine.rows_on_every_host(sql.SQL("gpdl.gpu_info()")),
        *engine.read_images_statements(STAGING, ARGS),
        engine.on_every_segment(sql.SQL("gpdl.server_info(true)")),
        engine.session_backends(),
    ]
    index = engine.index_dist_key(table)
    if index is not None:
        statements.append(index)
    return [render(s) for s in statements]


def assert_pg12_syntax(text: str) -> None:
    for pattern in NEWER_THAN_PG12:
        assert not re.search(pattern, text, re.IGNORECASE), (pattern, text)
    assert text.count("(") == text.count(")"), text


# --- the renderer itself ----------------------------------------------------------
def test_renderer_quotes_like_postgresql() -> None:
    composed = sql.SQL("SELECT {} FROM {} WHERE a = {} AND b = {}").format(
        sql.Literal("it's"), sql.Identifier("my schema", 'odd"name'), sql.Literal([1, 2]),
        sql.Placeholder())
    assert render(composed) == (
        "SELECT 'it''s' FROM \"my schema\".\"odd\"\"name\" WHERE a = ARRAY[1,2] AND b = %s")


# --- PostgreSQL -----------------------------------------------------------------
def test_postgresql_has_no_greenplum_clauses() -> None:
    for text in all_statements(POSTGRES):
        for word in GP_ONLY:
            assert word not in text, text


def test_postgresql_loads_one_statement_per_virtual_segment() -> None:
    statements = [render(s) for s in POSTGRES.read_images_statements(STAGING, ARGS)]
    assert statements == [
        f'INSERT INTO "public"."gpdl_loading_ab12" ({quoted(COLUMNS)}) SELECT '
        f"{quoted(FIELDS)} FROM (SELECT gpdl.read_images('/data/train', batch_size => 500, "
        f"segment => {k}, num_segments => 3) AS r) s"
        for k in range(3)]


def quoted(columns: str) -> str:
    """``a, (r).b`` as psycopg2 quotes them: ``"a", (r)."b"``."""
    return re.sub(r"(\(r\)\.)?(\w+)", r'\1"\2"', columns)


def test_images_stream_through_a_select_list_call() -> None:
    # In FROM, PostgreSQL and Greenplum collect a set-returning function's rows in a
    # tuplestore first; in a select list they stream, one row at a time.
    for engine in (POSTGRES, GREENPLUM_3):
        for statement in engine.read_images_statements(STAGING, ARGS):
            text = render(statement)
            assert re.search(r"FROM \(SELECT gpdl\.read_images\(", text), text
            assert "LATERAL" not in text and " WITH " not in f" {text}"


def test_postgresql_clauses() -> None:
    assert render(POSTGRES.distributed_by_key()) == ""
    assert render(POSTGRES.distributed_randomly()) == ""
    assert render(POSTGRES.distributed_replicated()) == ""
    assert render(POSTGRES.index_dist_key(sql.Identifier("t"))) == \
        'CREATE INDEX ON "t" (__dist_key__)'
    assert render(POSTGRES.on_every_segment(sql.SQL("f()"))) == \
        "SELECT -1 AS segment, f() AS value"
    assert POSTGRES.num_segments == 3 and not POSTGRES.is_greenplum
    assert render(POSTGRES.distributed_by("mst_key")) == ""
    assert render(POSTGRES.rows_on_every_host(sql.SQL("f()"))) == "SELECT * FROM f()"


def test_postgresql_row_shares_cover_every_row_once() -> None:
    shares = [render(s) for s in POSTGRES.row_shares(sql.SQL("fullpaths[1]"))]
    assert shares == [
        f"abs(hashtext(coalesce(fullpaths[1], ''))::bigint) % 3 = {k}" for k in range(3)]


# --- Greenplum ------------------------------------------------------------------
def test_greenplum_clauses() -> None:
    assert render(GREENPLUM_3.distributed_by_key()) == " DISTRIBUTED BY (__dist_key__)"
    assert render(GREENPLUM_3.distributed_randomly()) == " DISTRIBUTED RANDOMLY"
    assert render(GREENPLUM_3.distributed_replicated()) == " DISTRIBUTED REPLICATED"
    assert GREENPLUM_3.index_dist_key(sql.Identifier("t")) is None
    assert GREENPLUM_3.is_greenplum and GREENPLUM_3.num_segments == 3
    assert render(GREENPLUM_3.distributed_by("mst_key")) == ' DISTRIBUTED BY ("mst_key")'
    assert [render(s) for s in GREENPLUM_3.row_shares(sql.SQL("k"))] == ["true"]
    assert render(GREENPLUM_3.rows_on_every_host(sql.SQL("f()"))) == (
        "SELECT (r).* FROM (SELECT f() AS r FROM gp_dist_random('gp_id')) s "
        "UNION ALL SELECT * FROM f()")
    assert render(GREENPLUM_3.on_every_segment(sql.SQL("f()"))) == (
        "SELECT gp_segment_id AS segment, f() AS value FROM gp_dist_random('gp_id') ORDER BY 1")


def test_session_backends_include_greenplum_segment_processes() -> None:
    assert render(POSTGRES.session_backends()) == (
        "SELECT pid, application_name FROM pg_stat_activity "
        "WHERE application_name LIKE 'gpdl:%' ORDER BY 2, 1")
    assert render(GREENPLUM_3.session_backends("gpdl_x:")) == (
        "SELECT a.pid, s.application_name FROM gp_stat_activity a "
        "JOIN pg_stat_activity s ON s.sess_id = a.sess_id "
        "WHERE s.application_name LIKE 'gpdl\\_x:%' ORDER BY 2, 1")


def test_segment_counts_python_checks_and_plpython_fixes() -> None:
    assert POSTGRES.segment_count(4) == 4 and GREENPLUM_3.segment_count(4) == 3
    assert [render(s) for s in POSTGRES.python_checks(sql.SQL("f()"))] == [
        "SELECT -1 AS segment, f() AS value"]
    assert [render(s) for s in GREENPLUM_3.python_checks(sql.SQL("f()"))] == [
        "SELECT -1 AS segment, f() AS value",
        "SELECT gp_segment_id AS segment, f() AS value FROM gp_dist_random('gp_id') ORDER BY 1"]
    assert "postgresql-plpython3-15 " in POSTGRES.plpython3u_fix()
    assert "--with-python" in GREENPLUM_3.plpython3u_fix()


def test_greenplum_loads_with_one_statement_on_every_segment() -> None:
    statements = [render(s) for s in GREENPLUM_3.read_images_statements(STAGING, ARGS)]
    assert statements == [
        f'INSERT INTO "public"."gpdl_loading_ab12" ({quoted(COLUMNS)}) SELECT '
        f"{quoted(FIELDS)} FROM (SELECT gpdl.read_images('/data/train', batch_size => 500, "
        "segment => gp_execution_segment(), num_segments => 3) AS r "
        "FROM gp_dist_random('gp_id')) s"]


def test_greenplum_never_nests_a_data_modifying_cte() -> None:
    # Greenplum 7 refuses INSERT/UPDATE/DELETE inside the WITH of an INSERT.
    for text in all_statements(GREENPLUM_3):
        assert not re.search(r"\bWITH\b.*\bAS\s*(MATERIALIZED\s*)?\(\s*(INSERT|UPDATE|DELETE)",
                             text, re.IGNORECASE | re.S), text


@pytest.mark.parametrize("engine", [POSTGRES, GREENPLUM_3], ids=["postgresql", "greenplum"])
def test_statements_use_postgresql_12_syntax(engine: Engine) -> None:
    for text in all_statements(engine):
        assert_pg12_syntax(text)
    for statement in greenplum_dist_keys_sql(64):
        assert_pg12_syntax(render(statement))


def test_greenplum_dist_keys_sql() -> None:
    drop, create, select = (render(s) for s in greenplum_dist_keys_sql(64))
    assert drop == "DROP TABLE IF EXISTS pg_temp.gpdl_dist_keys"
    assert create == ("CREATE TEMP TABLE gpdl_dist_keys AS SELECT generate_series(0, 63) AS "
                      "__dist_key__ DISTRIBUTED BY (__dist_key__)")
    assert select == ("SELECT gp_segment_id, min(__dist_key__) FROM gpdl_dist_keys "
                      "GROUP BY gp_segment_id ORDER BY gp_segment_id")


# --- kind_of on real version strings --------------------------------------------
@pytest.mark.parametrize(("version", "kind"), [
    ("PostgreSQL 12.12 (Greenplum Database 7.0.0 build commit:0a7a3566873325aca1789ae6f818c80f"
     "17a9402d Open Source) on x86_64-pc-linux-gnu, compiled by gcc (GCC) 8.5.0 20210514 "
     "(Red Hat 8.5.0-18), 64-bit compiled on Sep 20 2023 23:29:19 Bhuildid: 5b9c4f3", GREENPLUM),
    ("PostgreSQL 12.12 (Greenplum Database 7.1.0 build commit:e7c2b1f14bb42a1018ac57d14f4436880"
     "e0a0515 Open Source) on x86_64-pc-linux-gnu, compiled by gcc (GCC) 8.5.0 20210514 "
     "(Red Hat 8.5.0-20), 64-bit compiled on Jan 19 2024 06:51:45 Bhuildid: rel-77", GREENPLUM),
    ("PostgreSQL 9.4.26 (Greenplum Database 6.25.3 build commit:367edc6b4dfd909fe38fc288ade9e294"
     "d74e3f9a Open Source) on x86_64-unknown-linux-gnu, compiled by gcc (GCC) 6.4.0, 64-bit "
     "compiled on Oct  4 2023 23:26:58", GREENPLUM),
    ("PostgreSQL 14.4 (Cloudberry Database 1.5.4 build commit:a8ef1a2b0e1b6e8c0c2e7a5e6d3b4c"
     "5d6e7f8a9b) on x86_64-pc-linux-gnu, compiled by gcc (GCC) 10.2.1 20210130 (Red Hat "
     "10.2.1-11), 64-bit compiled on Jul 17 2024 01:51:33", GREENPLUM),
    ("PostgreSQL 14.4 (Apache Cloudberry 2.0.0-incubating build commit:2a1b3c4d) on "
     "x86_64-pc-linux-gnu, compiled by gcc (GCC) 11.4.1 20231218, 64-bit", GREENPLUM),
    ("PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc "
     "(Debian 12.2.0-14) 12.2.0, 64-bit", POSTGRESQL),
    ("PostgreSQL 16.4 on aarch64-unknown-linux-gnu, compiled by clang version 15.0.7, 64-bit",
     POSTGRESQL),
    ("PostgreSQL 13.16 (Ubuntu 13.16-1.pgdg22.04+1) on x86_64-pc-linux-gnu", POSTGRESQL),
])
def test_kind_of(version: str, kind: str) -> None:
    assert kind_of(version) == kind


# --- probe, with a scripted connection ------------------------------------------
class _Cursor:
    """Answers the probe's queries from a script; records what ran."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.result: list[tuple] = []

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, statement: Any, params: Any = None) -> None:
        text = statement if isinstance(statement, str) else render(statement)
        self.conn.executed.append(text)
        self.result = self.conn.answer(text)

    def fetchone(self) -> tuple:
        return self.result[0]

    def fetchall(self) -> list[tuple]:
        return self.result


class _Conn:
    def __init__(self, version: str, segments: int = 0, num_segments: str | None = None,
                 keys_by_candidates: dict[int, list[tuple]] | None = None) -> None:
        self.version = version
        self.segments = segments
        self.num_segments = num_segments
        self.keys_by_candidates = keys_by_candidates or {}
        self.executed: list[str] = []
        self.autocommit = False
        self.rolled_back = False
        self._candidates = 0

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def rollback(self) -> None:
        self.rolled_back = True

    def answer(self, text: str) -> list[tuple]:
        if text == "SELECT version()":
            return [(self.version,)]
        if "gp_segment_configuration" in text:
            return [(self.segments,)]
        if text.startswith("CREATE TEMP TABLE gpdl_dist_keys"):
            self._candidates = int(re.search(r"generate_series\(0, (\d+)\)", text)[1]) + 1
            return []
        if text.startswith("SELECT gp_segment_id, min"):
            return self.keys_by_candidates[self._candidates]
        if "to_regclass('gpdl.config')" in text:
            return [(self.num_segments is not None,)]
        if "key = 'num_segments'" in text:
            return [(self.num_segments,)]
        return []


def test_probe_postgresql_reads_installed_segments() -> None:
    conn = _Conn("PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64", num_segments="4")
    engine = engines.probe(conn)
    assert engine.kind == POSTGRESQL and engine.dist_keys == (0, 1, 2, 3)
    assert conn.rolled_back
    assert engines.probe(_Conn("PostgreSQL 15.8"), num_segments=2).dist_keys == (0, 1)
    assert engines.probe(_Conn("PostgreSQL 15.8")).dist_keys == (0,)  # not installed yet


def test_probe_greenplum_widens_candidates_until_every_segment_has_a_key() -> None:
    conn = _Conn(
        "PostgreSQL 12.12 (Greenplum Database 7.0.0 build dev) on x86_64", segments=3,
        keys_by_candidates={64: [(0, 0), (2, 1)], 256: [(0, 0), (1, 70), (2, 1)]})
    engine = engines.probe(conn)
    assert engine.kind == GREENPLUM
    assert engine.dist_keys == (0, 70, 1)  # in segment order
    creates = [t for t in conn.executed if t.startswith("CREATE TEMP TABLE")]
    assert len(creates) == 2 and "generate_series(0, 255)" in creates[1]


@pytest.mark.parametrize(("message", "expected"), [
    ("gpdl-progress 3 0  (seg0 slice1 127.0.0.1:7002 pid=336)", "gpdl-progress 3 0"),
    ("gpdl-progress 3 0  (seg1 127.0.0.1:7003 pid=11400)", "gpdl-progress 3 0"),
    (" gpdl-progress 3 0\n", "gpdl-progress 3 0"),
    ("a (note) in the text", "a (note) in the text"),
])
def test_segment_suffix_is_stripped_from_messages(message: str, expected: str) -> None:
    assert engines.strip_segment_suffix(message) == expected
