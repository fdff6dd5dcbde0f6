"""``drop_tables`` / ``%gpdl drop`` and ``add_server`` against the real server."""

from __future__ import annotations

import json
import pwd
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import make_dsn

from gpdl_backend import engine as engines
from gpdl_backend.errors import UsageError
from gpdl_backend.install import install
from gpdl_jupyter import api, connection
from gpdl_jupyter.cli import main
from tests.conftest import readable_dir
from tests.magic_shell import RaisingShell

pytestmark = pytest.mark.db


def _exists(dsn: str, name: str) -> bool:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        return bool(cur.fetchone()[0])


def _create(dsn: str, *names: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE TABLE "{name}" (a int)')  # test-made names only


def test_drop_tables_takes_the_companions_and_skips_missing_ones(dsn: str) -> None:
    run = f"hk_{secrets.token_hex(3)}"
    _create(dsn, run, f"{run}_summary", f"{run}_info", f"{run}_other")
    dropped = api.drop_tables(run, f"{run}_nosuch", dsn=dsn)
    assert dropped == [run, f"{run}_summary", f"{run}_info"]
    assert _exists(dsn, f"{run}_other")  # not a companion
    assert api.drop_tables(run, dsn=dsn) == []
    _create(dsn, run, f"{run}_summary")
    assert api.drop_tables(run, companions=False, dsn=dsn) == [run]
    assert _exists(dsn, f"{run}_summary")
    api.drop_tables(f"{run}_summary", f"{run}_other", dsn=dsn)


def test_drop_refuses_bad_names_and_shows_its_sql(dsn: str) -> None:
    with pytest.raises(UsageError, match="unsafe table name"):
        api.drop_tables("x; DROP TABLE y", dsn=dsn)
    with pytest.raises(UsageError, match="at least one"):
        api.drop_tables(dsn=dsn)
    shown = api.drop_tables("models", dsn=dsn, show_sql=True)
    assert 'DROP TABLE IF EXISTS "models", "models_summary", "models_info"' in shown


def test_drop_magic(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = f"hk_{secrets.token_hex(3)}"
    _create(dsn, run, f"{run}_progress")
    connection.CURRENT.reset()
    shell = RaisingShell.new()
    shell.run_cell("%load_ext gpdl_jupyter")
    shell.user_ns["run"] = run
    try:
        assert shell.gpdl(f"drop {{{{run}}}} --dsn {dsn}") is None
        assert capsys.readouterr().out.strip() == f"dropped {run}, {run}_progress"
        shell.gpdl(f"drop {run} --dsn {dsn}")
        assert capsys.readouterr().out.strip() == "nothing to drop"
    finally:
        connection.CURRENT.reset()


def test_add_server_writes_where_the_database_reads(dsn: str, servers_dir: Path) -> None:
    assert api.servers_dir(dsn=dsn) == servers_dir
    path = api.add_server("hk_s3", endpoint_url="http://127.0.0.1:9", key="K", secret="S",
                          region="us-east-1", base_path="s3://hk", roles=("gpdl_user",),
                          dsn=dsn)
    assert path == servers_dir / "hk_s3.json"
    assert json.loads(path.read_text()) == {
        "base_path": "s3://hk", "roles": ["gpdl_user"], "storage_options": {
            "key": "K", "secret": "S",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    shown = api.add_server("hk_s3", key="K", secret="s3cr3t-value", dsn=dsn, show_sql=True)
    assert "servers_dir" in shown and "s3cr3t-value" not in shown
    with pytest.raises(UsageError, match="invalid"):
        api.add_server("../etc", dsn=dsn)
    with pytest.raises(UsageError, match="no role 'gpdl_no_such_role' in this database"):
        api.add_server("hk_nobody", roles=("gpdl_no_such_role",), dsn=dsn)
    assert not (servers_dir / "hk_nobody.json").exists()
    path.unlink()


@pytest.fixture(scope="module")
def own_servers(dsn: str) -> Iterator[tuple[str, Path]]:
    """A new database whose install recorded a servers dir of its own: ``(dsn, dir)``."""
    name = f"gpdl_servers_{secrets.token_hex(4)}"
    directory = readable_dir("gpdl-servers-") / "servers"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")  # generated name, not user input
    try:
        target = make_dsn(dsn, dbname=name)
        install(target, servers_dir=str(directory), num_segments=2)
        yield target, directory
    finally:
        force = " WITH (FORCE)" if admin.server_version >= 130000 else ""
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}{force}")
        admin.close()
        shutil.rmtree(directory.parent, ignore_errors=True)


def _server_user(dsn: str) -> str:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT gpdl.server_info(false)::json ->> 'os_user'")
        return cur.fetchone()[0]


def test_a_server_config_belongs_to_the_servers_os_user(own_servers, shared_tmp) -> None:
    target, directory = own_servers
    path = api.add_server("hk_local", dsn=target)
    assert path == directory / "hk_local.json"
    owner = _server_user(target)
    assert pwd.getpwuid(path.stat().st_uid).pw_name == owner  # gpadmin on Greenplum
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    for name in ("a.png", "b.png"):
        (shared_tmp / name).write_bytes(b"x")
    with psycopg2.connect(target) as conn, conn.cursor() as cur:  # every segment reads it
        cur.execute(engines.probe(conn).on_every_segment(sql.SQL("gpdl.count_files({}, {})")
                    .format(sql.Literal(str(shared_tmp)), sql.Literal("hk_local"))))
        rows = cur.fetchall()
    assert rows and {count for _, count in rows} == {2}
    path.unlink()


def test_servers_command_uses_the_recorded_directory(own_servers, capsys, monkeypatch) -> None:
    target, directory = own_servers
    monkeypatch.setenv("HK_SECRET", "s3cr3t-value")  # never on the command line
    code = main(["servers", "add", "hk_cli", "--dsn", target, "--endpoint-url",
                 "http://127.0.0.1:9", "--key", "K", "--secret-env", "HK_SECRET",
                 "--base-path", "s3://hk/images", "--role", "gpdl_user"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    path = directory / "hk_cli.json"
    assert out.strip() == f"server config 'hk_cli' written to {path}"
    assert "s3cr3t-value" not in out + err
    assert json.loads(path.read_text())["storage_options"]["secret"] == "s3cr3t-value"
    assert pwd.getpwuid(path.stat().st_uid).pw_name == _server_user(target)
    assert main(["servers", "list", "--dsn", target]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "hk_cli: base path s3://hk/images; roles gpdl_user (superusers: any location)"]
    path.unlink()
