"""Shared fixtures: a real PostgreSQL server (embedded, or --dsn) and readable temp dirs."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--dsn", default=os.environ.get("GPDL_TEST_DSN"),
                     help="run database tests against this server instead of an embedded one")
    parser.addoption("--segments", type=int, default=2,
                     help="virtual segments of the embedded test server")
    parser.addoption("--restart-command", default=os.environ.get("GPDL_TEST_RESTART"),
                     help="shell command that restarts the --dsn server (fault tests), "
                          "e.g. 'scripts/greenplum restart'")


def readable_dir(prefix: str) -> Path:
    """A new temp dir the database server's user can read (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """Like tmp_path, but readable by the server (for image files it loads)."""
    path = readable_dir("gpdl-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_tmp_factory() -> Iterator[Callable[[str], Path]]:
    """Makes readable temp dirs for module- or session-scoped image files."""
    made: list[Path] = []

    def make(prefix: str = "gpdl-test-") -> Path:
        made.append(readable_dir(prefix))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_server(request: pytest.FixtureRequest):
    """The embedded server under a throwaway home, on a free port (None with --dsn)."""
    if request.config.getoption("--dsn"):
        yield None
        return
    from gpdl_backend.embedded import EmbeddedServer, free_port

    home = readable_dir("gpdl-home-")
    server = EmbeddedServer(home, free_port())
    server.start(quiet=True)
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def servers_dir(embedded_server) -> Iterator[Path]:
    """Where the test database reads object-store configs (recorded by the install)."""
    if embedded_server is not None:
        yield embedded_server.servers_dir
        return
    path = readable_dir("gpdl-servers-")  # --dsn: the tests' configs stay out of /etc
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def dsn(request: pytest.FixtureRequest, embedded_server, servers_dir: Path) -> str:
    """A database with gpdl installed: the embedded test server or --dsn."""
    from gpdl_backend.install import install

    given = request.config.getoption("--dsn")
    target = given or embedded_server.dsn()
    install(target, servers_dir=str(servers_dir),
            num_segments=request.config.getoption("--segments"))
    return target


@pytest.fixture(scope="session")
def server_logs(dsn: str, embedded_server) -> Callable[[], str]:
    """Reads everything the test server has logged so far (every segment's logs too)."""
    if embedded_server is not None:
        return embedded_server.log_file.read_text
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cur:
        cur.execute("SELECT current_setting('log_directory')")
        log_directory = cur.fetchone()[0]
        cur.execute("SELECT to_regclass('pg_catalog.gp_segment_configuration') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute("SELECT datadir FROM gp_segment_configuration")
        else:
            cur.execute("SELECT current_setting('data_directory')")
        directories = [Path(row[0]) / log_directory for row in cur.fetchall()]

    def read() -> str:
        return "".join(path.read_text(errors="replace")
                       for directory in directories for path in sorted(directory.glob("*")))

    return read


@pytest.fixture
def conn(dsn: str):
    """A psycopg2 connection to the test database, closed afterwards."""
    import psycopg2

    connection = psycopg2.connect(dsn)
    yield connection
    connection.close()


# --- engines -------------------------------------------------------------------------
ENGINE_MARKERS = {"postgres_only": "postgresql", "greenplum_only": "greenplum"}
"""Markers for tests that cannot apply to the other engine; each use gives its reason."""


@pytest.fixture(scope="session")
def engine_kind(dsn: str) -> str:
    """``"postgresql"`` or ``"greenplum"``: the engine behind the test DSN."""
    import psycopg2

    from gpdl_backend.engine import kind_of

    with psycopg2.connect(dsn) as connection, connection.cursor() as cur:
        cur.execute("SELECT version()")
        return kind_of(cur.fetchone()[0])


@pytest.fixture(autouse=True)
def _engine_only(request: pytest.FixtureRequest) -> None:
    """Skip a test marked for the other engine, saying why (the marker's reason)."""
    for marker, kind in ENGINE_MARKERS.items():
        mark = request.node.get_closest_marker(marker)
        if mark is not None and request.getfixturevalue("engine_kind") != kind:
            reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "")
            pytest.skip(f"{kind} only: {reason}")


@pytest.fixture(scope="session")
def restart_server(request: pytest.FixtureRequest, embedded_server) -> Callable[[], None]:
    """Restarts the test server: the embedded one, or --restart-command for --dsn."""
    if embedded_server is not None:
        return embedded_server.restart
    command = request.config.getoption("--restart-command")
    if not command:
        pytest.skip("--dsn given without --restart-command: cannot restart that server")

    def restart() -> None:
        import subprocess

        subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)

    return restart
