"""``drop_tables`` / ``%gpdl drop`` and ``add_server`` against the real server."""

from __future__ import annotations

import json
import secrets

import psycopg2
import pytest

from gpdl_backend.errors import UsageError
from gpdl_jupyter import api, connection
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


def test_add_server_writes_where_the_database_reads(dsn: str, embedded_server) -> None:
    if embedded_server is None:
        pytest.skip("writes a server config next to the embedded server")
    assert api.servers_dir(dsn=dsn) == embedded_server.servers_dir
    path = api.add_server("hk_s3", endpoint_url="http://127.0.0.1:9", key="K", secret="S",
                          region="us-east-1", dsn=dsn)
    assert path == embedded_server.servers_dir / "hk_s3.json"
    assert json.loads(path.read_text()) == {
        "key": "K", "secret": "S",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    shown = api.add_server("hk_s3", key="K", secret="s3cr3t-value", dsn=dsn, show_sql=True)
    assert "servers_dir" in shown and "s3cr3t-value" not in shown
    with pytest.raises(UsageError, match="invalid"):
        api.add_server("../etc", dsn=dsn)
    path.unlink()
