"""The embedded server's life cycle and the ``gpdl db`` / ``gpdl doctor`` commands."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest
from psycopg2.extensions import make_dsn, parse_dsn

import gpdl_backend
from gpdl_backend import engine as engines
from gpdl_backend.embedded import SERVER_USER, EmbeddedServer, free_port
from gpdl_backend.errors import UsageError
from gpdl_jupyter.cli import main
from gpdl_jupyter.connection import mask_password

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def own(shared_tmp_factory: Callable[[str], Path]) -> Iterator[EmbeddedServer]:
    """An embedded server of this module's own, in its own home, on a free port."""
    server = EmbeddedServer(shared_tmp_factory("gpdl-own-home-"), free_port())
    server.start(quiet=True)
    yield server
    server.stop()


def postmaster(server: EmbeddedServer) -> psutil.Process:
    pid = int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])
    return psutil.Process(pid)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_start_is_idempotent_and_gives_a_working_dsn(own: EmbeddedServer) -> None:
    dsn = own.start(quiet=True)
    assert dsn == own.start(quiet=True) == own.dsn()
    assert re.fullmatch(rf"postgresql://{SERVER_USER}:[\w-]+@127\.0\.0\.1:{own.port}/gpdl", dsn)
    assert own.running() and own.recorded_port() == own.port
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, current_database(), "
                    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
        assert cur.fetchone() == (SERVER_USER, "gpdl", True)
    conn.close()


def test_dsn_file_is_private(own: EmbeddedServer) -> None:
    mode = stat.S_IMODE(own.dsn_file.stat().st_mode)
    assert mode == 0o600
    assert not (own.home / ".pwfile").exists()


def test_server_runs_as_an_unprivileged_user(own: EmbeddedServer) -> None:
    process = postmaster(own)
    expected = SERVER_USER if os.geteuid() == 0 else psutil.Process().username()
    assert process.username() == expected
    assert process.uids().real != 0
    for child in process.children():
        with contextlib.suppress(psutil.NoSuchProcess):  # a backend that just exited
            assert child.uids().effective != 0


def test_listens_on_loopback_and_its_private_socket_only(own: EmbeddedServer) -> None:
    listening = [c for c in postmaster(own).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}
    assert {c.laddr.port for c in listening} == {own.port}
    assert (own.socket_dir / f".s.PGSQL.{own.port}").is_socket()
    with psycopg2.connect(own.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
    conn.close()


def test_password_is_required(own: EmbeddedServer) -> None:
    params = parse_dsn(own.dsn())
    params.pop("password")
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(make_dsn(**params), passfile="/dev/null")
    params["password"] = "wrong"
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(make_dsn(**params))


def test_a_busy_port_is_refused_clearly(own: EmbeddedServer) -> None:
    own.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", own.port))  # another program takes the server's port
        taken.listen()
        with pytest.raises(UsageError,
                           match=rf"port {own.port} on 127\.0\.0\.1 is in use.*--port"):
            own.start(quiet=True)
        assert not own.running()
    assert own.start(quiet=True) == own.dsn()  # free again: it starts


def test_stop_status_and_restart_keep_the_data(own: EmbeddedServer) -> None:
    with psycopg2.connect(own.dsn()) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS survives (x int)")
        cur.execute("INSERT INTO survives VALUES (42)")
    conn.close()
    dsn = own.restart()
    assert own.running() and dsn == own.dsn()
    assert own.stop() is True
    assert not own.running()
    assert own.stop() is False
    assert own.start(quiet=True) == dsn
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT x FROM survives")
        assert cur.fetchall() == [(42,)]
    conn.close()


def test_cli_db_status_stop_start(own: EmbeddedServer, capsys) -> None:
    home = str(own.home)
    code, out, _ = run_cli(capsys, "db", "status", "--home", home)
    masked = mask_password(own.dsn())
    assert code == 0 and f"running: {masked}" in out and str(own.data_dir) in out
    assert parse_dsn(own.dsn())["password"] not in out
    code, out, _ = run_cli(capsys, "db", "stop", "--home", home)
    assert (code, out.strip()) == (0, "stopped")
    code, out, _ = run_cli(capsys, "db", "status", "--home", home)
    assert code == 3 and out.startswith("not running")
    code, out, _ = run_cli(capsys, "db", "start", "--no-install", "--home", home)
    assert code == 0 and out.strip().splitlines()[-1] == masked
    assert own.running()
    code, out, _ = run_cli(capsys, "db", "start", "--show-password", "--home", home)
    assert code == 0 and out.strip().splitlines()[-1] == own.dsn()


def test_cli_home_before_the_subcommand(own: EmbeddedServer, capsys, monkeypatch,
                                        shared_tmp_factory) -> None:
    monkeypatch.setenv("GPDL_HOME", str(shared_tmp_factory("gpdl-unused-home-")))
    own.start(quiet=True)
    code, out, _ = run_cli(capsys, "--home", str(own.home), "db", "status")
    assert code == 0 and f"running: {mask_password(own.dsn())}" in out


def test_cli_db_start_installs_the_backend(shared_tmp_factory, capsys) -> None:
    home = shared_tmp_factory("gpdl-cli-home-")
    port = free_port()
    try:
        code, out, _ = run_cli(capsys, "db", "start", "--home", str(home), "--port", str(port))
        lines = out.strip().splitlines()
        assert code == 0
        assert re.fullmatch(rf"gpdl {gpdl_backend.__version__} installed \(\d+ segments\)",
                            lines[-2])
        assert lines[-1].endswith(f"@127.0.0.1:{port}/gpdl")
        marker = "SELECT xmin::text FROM gpdl.config WHERE key = 'version'"
        installed = query(EmbeddedServer(home, port).dsn(), marker)
        # Current already: nothing is written (a reconnecting job keeps its functions),
        # whether the server was running or is started again.
        for stop_first in (False, True):
            if stop_first:
                EmbeddedServer(home, port).stop()
            code, out, _ = run_cli(capsys, "db", "start", "--home", str(home),
                                   "--port", str(port))
            assert code == 0
            assert re.fullmatch(rf"gpdl {gpdl_backend.__version__} already installed "
                                r"\(\d+ segments\)", out.strip().splitlines()[-2])
            assert query(EmbeddedServer(home, port).dsn(), marker) == installed
    finally:
        EmbeddedServer(home, port).stop()


def query(dsn: str, statement: str) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(statement)
        rows = cur.fetchall()
    conn.close()
    return rows


def test_doctor_on_a_database_without_gpdl(own: EmbeddedServer, capsys) -> None:
    own.start(quiet=True)
    bare = make_dsn(own.dsn(), dbname="postgres")
    code, out, _ = run_cli(capsys, "doctor", bare)
    assert code == 1
    assert re.search(r"^ok\s+server\s+PostgreSQL \d+", out, re.M)
    assert re.search(r"^ok\s+engine\s+postgresql$", out, re.M)
    assert re.search(r"^ok\s+plpython3u\s+(available|installed)$", out, re.M)
    assert re.search(r"^FAIL\s+gpdl schema\s+not installed\n\s+fix: run `gpdl install`", out,
                     re.M)


def test_doctor_cannot_connect(capsys) -> None:
    dsn = f"postgresql://gpdl:x@127.0.0.1:{free_port()}/gpdl?connect_timeout=3"
    code, out, _ = run_cli(capsys, "doctor", dsn)
    assert code == 1
    assert re.search(r"^FAIL\s+connection\s+cannot connect", out, re.M)
    assert "fix: start the embedded server with `gpdl db start`" in out


def test_doctor_command_line(own: EmbeddedServer) -> None:
    bare = make_dsn(own.dsn(), dbname="postgres")
    gpdl = Path(sys.executable).with_name("gpdl")
    result = subprocess.run([str(gpdl), "doctor", bare], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "gpdl schema" in result.stdout and "run `gpdl install`" in result.stdout


@pytest.mark.slow
def test_doctor_on_an_installed_database(dsn: str, capsys) -> None:
    code, out, _ = run_cli(capsys, "doctor", dsn)
    assert code == 0, out
    assert re.search(rf"^ok\s+gpdl schema\s+version {gpdl_backend.__version__}$", out, re.M)
    assert re.search(r"^ok\s+segments\s+\d+$", out, re.M)
    assert re.search(r"^ok\s+python \(coordinator\)\s+3\.11\.\d+ on .+, \d+ CPUs$", out, re.M)
    for package in ("gpdl_backend", "tensorflow", "keras", "numpy", "pillow"):
        assert re.search(rf"^ok\s+{package} \(coordinator\)\s+\d+\.\d+", out, re.M), package
    assert re.search(r"^ok\s+GPUs \(coordinator\)\s+\d+", out, re.M)
    with contextlib.closing(psycopg2.connect(dsn)) as conn:
        engine = engines.probe(conn, num_segments=1)
    segments = engine.num_segments if engine.is_greenplum else 0  # separate processes
    assert re.findall(r"^ok\s+python \(segment (\d+)\)\s+3\.11", out, re.M) == [
        str(k) for k in range(segments)]
    for package in ("gpdl_backend", "tensorflow", "keras", "numpy", "pillow"):
        assert len(re.findall(rf"^ok\s+{package} \(segment \d+\)", out, re.M)) == segments
    assert "FAIL" not in out
