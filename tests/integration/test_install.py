"""``gpdl install`` against the real server: idempotent, upgradable, configurable."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2.extensions import make_dsn, parse_dsn

import gpdl_backend
from gpdl_backend import engine as engines
from gpdl_backend.doctor import diagnose, format_table
from gpdl_backend.errors import FatalError
from gpdl_backend.install import default_site_paths, install, install_if_needed

pytestmark = pytest.mark.db


@pytest.fixture
def fresh_db(dsn: str) -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    name = f"gpdl_install_{secrets.token_hex(4)}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")  # generated name, not user input
    try:
        yield make_dsn(dsn, dbname=name)
    finally:
        force = " WITH (FORCE)" if admin.server_version >= 130000 else ""
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}{force}")
        admin.close()


def query(dsn: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            rows = cur.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def config(dsn: str) -> dict[str, str]:
    return dict(query(dsn, "SELECT key, value FROM gpdl.config"))


def functions(dsn: str) -> set[str]:
    return {row[0] for row in query(
        dsn, "SELECT p.proname || '(' || oidvectortypes(p.proargtypes) || ')' "
             "FROM pg_proc p JOIN pg_namespace n "
             "ON n.oid = p.pronamespace WHERE n.nspname = 'gpdl'")}


def _engine(dsn: str) -> engines.Engine:
    conn = psycopg2.connect(dsn)
    try:
        return engines.probe(conn, num_segments=1)
    finally:
        conn.close()


def test_install_twice_is_idempotent(fresh_db: str) -> None:
    first = install(fresh_db, servers_dir="/srv/gpdl-servers", num_segments=2)
    engine = _engine(fresh_db)
    assert first.previous_version is None
    assert first.version == gpdl_backend.__version__
    assert first.engine == engine.kind and first.num_segments == engine.segment_count(2)
    assert list(first.site_paths) == default_site_paths()
    installed = functions(fresh_db)
    assert {"version()", "read_images(text, integer, text, integer[], text, boolean, "
            "integer, integer, boolean, integer)", "count_files(text, text)"} <= installed

    oids = "SELECT oid FROM pg_proc WHERE pronamespace = 'gpdl'::regnamespace ORDER BY 1"
    before = query(fresh_db, oids)
    second = install(fresh_db)  # no servers_dir: the recorded one stays
    assert second.previous_version == first.version
    assert second.version == first.version
    assert second.num_segments == first.num_segments  # kept from the first install
    assert functions(fresh_db) == installed
    # the same functions are left in place: a running job's sessions keep using them
    assert query(fresh_db, oids) == before
    recorded = config(fresh_db)
    server_user = query(fresh_db, "SELECT gpdl.server_info(false)::json ->> 'os_user'")[0][0]
    assert re.fullmatch(r"[0-9a-f]{64}", recorded.pop("functions_sha256"))
    assert recorded == {
        "version": gpdl_backend.__version__, "num_segments": str(first.num_segments),
        "site_paths": ":".join(default_site_paths()), "servers_dir": "/srv/gpdl-servers",
        "server_user": server_user}
    install(fresh_db, site_paths=[*default_site_paths(), "/nonexistent"])  # other functions
    source = "SELECT prosrc FROM pg_proc WHERE oid = 'gpdl.version()'::regprocedure"
    assert "/nonexistent" in query(fresh_db, source)[0][0]  # replaced in place


def test_installed_functions_work(fresh_db: str, shared_tmp) -> None:
    install(fresh_db, num_segments=1)
    assert query(fresh_db, "SELECT gpdl.version()") == [(gpdl_backend.__version__,)]
    info = query(fresh_db, "SELECT gpdl.server_info(false)")[0][0]
    info = json.loads(info) if isinstance(info, str) else info
    assert info["gpdl_backend"] == gpdl_backend.__version__
    assert info["cpu_count"] >= 1 and info["numpy"] and info["pillow"]
    (shared_tmp / "a").mkdir()
    (shared_tmp / "a" / "1.png").write_bytes(b"x")
    (shared_tmp / "a" / "2.png").write_bytes(b"x")
    assert query(fresh_db, "SELECT gpdl.count_files(%s)", (str(shared_tmp),)) == [(2,)]


def test_upgrade_recreates_a_dropped_function(fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    conn = psycopg2.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("DROP FUNCTION gpdl.count_files(text, text)")
        cur.execute("CREATE TABLE gpdl.keep_me (x int)")
        cur.execute("INSERT INTO gpdl.keep_me VALUES (7)")
    conn.commit()
    conn.close()
    assert "count_files(text, text)" not in functions(fresh_db)
    result = install(fresh_db)
    assert result.previous_version == gpdl_backend.__version__
    assert "count_files(text, text)" in functions(fresh_db)
    assert query(fresh_db, "SELECT x FROM gpdl.keep_me") == [(7,)]  # tables are kept


def run(dsn: str, *statements: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.commit()
    finally:
        conn.close()


OLDER_GPDL = (  # what an older gpdl might have left behind: a function it created
    "CREATE FUNCTION gpdl.obsolete(x int) RETURNS int AS 'SELECT x' LANGUAGE sql",
    "INSERT INTO gpdl.installed_object VALUES ('function', 'gpdl.obsolete(integer)')",
    "UPDATE gpdl.config SET value = '0.0.1' WHERE key = 'version'",
)


def test_an_old_signature_is_replaced(fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    run(fresh_db, *OLDER_GPDL)
    result = install(fresh_db)
    assert result.previous_version == "0.0.1"
    assert "obsolete(integer)" not in functions(fresh_db)


def test_an_upgrade_keeps_users_objects(fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    run(fresh_db,
        "CREATE FUNCTION gpdl.users_own(x int) RETURNS int AS 'SELECT x + 1' LANGUAGE sql",
        "CREATE VIEW public.users_view AS SELECT gpdl.version() AS v",
        "CREATE VIEW public.users_jobs AS SELECT job FROM gpdl.jobs",
        "UPDATE gpdl.config SET value = 'changed' WHERE key = 'functions_sha256'")
    install(fresh_db)
    assert config(fresh_db)["functions_sha256"] != "changed"  # it did upgrade
    assert query(fresh_db, "SELECT gpdl.users_own(1)") == [(2,)]
    assert query(fresh_db, "SELECT v FROM public.users_view") == [(gpdl_backend.__version__,)]
    assert query(fresh_db, "SELECT count(*) FROM public.users_jobs") == [(0,)]


def test_a_changed_return_type_replaces_that_function(fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    run(fresh_db, "DROP FUNCTION gpdl.version()",  # an older gpdl's version() said int
        "CREATE FUNCTION gpdl.version() RETURNS int AS 'SELECT 1' LANGUAGE sql",
        "UPDATE gpdl.config SET value = '0.0.1' WHERE key = 'version'")
    install(fresh_db)
    assert query(fresh_db, "SELECT gpdl.version()") == [(gpdl_backend.__version__,)]


def test_a_users_view_on_an_obsolete_function_is_named(fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    run(fresh_db, *OLDER_GPDL, "CREATE VIEW public.needs_it AS SELECT gpdl.obsolete(1) AS x")
    with pytest.raises(FatalError, match=r"gpdl\.obsolete\(integer\).*view needs_it"):
        install(fresh_db)
    assert query(fresh_db, "SELECT x FROM public.needs_it") == [(1,)]  # nothing dropped


@pytest.mark.postgres_only(reason="virtual segments are PostgreSQL's, Greenplum's its primaries")
def test_num_segments_config(fresh_db: str) -> None:
    result = install(fresh_db, num_segments=3)
    assert result.num_segments == 3 and config(fresh_db)["num_segments"] == "3"
    conn = psycopg2.connect(fresh_db)
    try:
        assert engines.probe(conn).dist_keys == (0, 1, 2)
        assert engines.probe(conn, num_segments=5).num_segments == 5
    finally:
        conn.close()
    assert install(fresh_db).num_segments == 3  # kept
    assert install(fresh_db, num_segments=1).num_segments == 1


def test_default_segments_are_the_server_cpus(fresh_db: str) -> None:
    result = install(fresh_db)
    info = query(fresh_db, "SELECT gpdl.server_info(false)::json ->> 'cpu_count'")[0][0]
    assert result.num_segments == _engine(fresh_db).segment_count(int(info))


def test_a_failed_install_keeps_the_previous_one(fresh_db: str) -> None:
    install(fresh_db, num_segments=2)
    before = functions(fresh_db)
    with pytest.raises(FatalError, match="gpdl_backend"):
        install(fresh_db, site_paths=["/nonexistent/site-packages"])
    assert functions(fresh_db) == before
    assert config(fresh_db)["site_paths"] == ":".join(default_site_paths())
    assert query(fresh_db, "SELECT gpdl.version()") == [(gpdl_backend.__version__,)]


def test_bad_dsn_is_a_clear_error(dsn: str) -> None:
    params = parse_dsn(dsn)
    # A wrong user too: the Greenplum test cluster trusts gpadmin from 127.0.0.1.
    params.update(user="gpdl_nobody", password="wrong")
    with pytest.raises(FatalError, match="cannot connect"):
        install(make_dsn(**params))


def test_doctor_says_how_to_fix_a_server_python_without_gpdl(fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    conn = psycopg2.connect(fresh_db)
    with conn.cursor() as cur:  # what a venv the server's user cannot read looks like
        cur.execute("CREATE OR REPLACE FUNCTION gpdl.server_info(with_tensorflow boolean "
                    "DEFAULT true) RETURNS json AS $$\n"
                    "raise ModuleNotFoundError(\"No module named 'gpdl_backend'\")\n"
                    "$$ LANGUAGE plpython3u")
    conn.commit()
    engine = engines.probe(conn, num_segments=1)
    conn.close()
    checks = diagnose(fresh_db)
    failed = [c for c in checks if not c.ok]
    places = ["coordinator", "segments"] if engine.is_greenplum else ["coordinator"]
    assert [c.name for c in failed] == [f"python ({p})" for p in places], format_table(checks)
    for check in failed:
        assert "No module named 'gpdl_backend'" in check.detail
        assert "chmod -R o+rX " + " ".join(default_site_paths()) in check.fix
        assert "o+x on each parent dir" in check.fix


def test_an_install_from_before_the_record_knows_its_functions(fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    run(fresh_db, "DELETE FROM gpdl.installed_object",  # as older gpdl versions left it
        "CREATE FUNCTION gpdl.old_gpdl() RETURNS text "
        "AS $$ if \"gpdl.settings\" not in GD: pass $$ LANGUAGE plpython3u",
        "CREATE FUNCTION gpdl.count_files(location text) RETURNS int "  # an old overload
        "AS 'SELECT 1' LANGUAGE sql",
        "CREATE FUNCTION gpdl.users_own() RETURNS int AS 'SELECT 1' LANGUAGE sql",
        "UPDATE gpdl.config SET value = '0.0.1' WHERE key = 'version'")
    install(fresh_db)
    installed = functions(fresh_db)
    assert "old_gpdl()" not in installed and "count_files(text)" not in installed
    assert {"users_own()", "count_files(text, text)"} <= installed


def test_an_install_from_before_unit_retries_adds_the_column_and_keeps_the_jobs(
        fresh_db: str) -> None:
    install(fresh_db, num_segments=1)
    run(fresh_db, "DROP VIEW gpdl.jobs",  # gpdl.job and gpdl.jobs as an older gpdl left them
        "ALTER TABLE gpdl.job DROP COLUMN unit_retries",
        "CREATE VIEW gpdl.jobs AS SELECT job, owner, state, units_done, units_total, started, "
        "ended, driver_host, driver_pid, heartbeat AS last_heartbeat, error FROM gpdl.job",
        "INSERT INTO gpdl.job (job, owner, state, units_done) "
        "VALUES ('public.old_job', current_user, 'finished', 8)",
        "UPDATE gpdl.config SET value = 'older' WHERE key = 'functions_sha256'")
    assert install_if_needed(fresh_db).changed
    assert query(fresh_db, "SELECT job, state, units_done, unit_retries FROM gpdl.jobs") == \
        [("public.old_job", "finished", 8, 0)]
    assert not install_if_needed(fresh_db).changed  # current now: nothing written

