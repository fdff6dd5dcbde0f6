"""The embedded PostgreSQL server: initdb, start, stop, status.

The server is owned by the project: its data directory, socket, log and DSN
live under one *gpdl home* directory. It listens on 127.0.0.1 and a private
unix socket only, with password (scram) authentication; the generated password
is kept in ``<home>/dsn`` (mode 0600). PostgreSQL refuses to run as root, so
when invoked as root the server runs as the unprivileged system user ``gpdl``.

Example::

    server = EmbeddedServer.default()
    dsn = server.start()
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gpdl_backend.errors import FatalError, UsageError

DEFAULT_PORT = 54329
SERVER_USER = "gpdl"
DATABASE = "gpdl"

# Server settings tuned for one machine running training in its backends.
_CONF = """
# --- gpdl embedded server ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 100
shared_buffers = 256MB
work_mem = 64MB
maintenance_work_mem = 256MB
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
"""

# The first line lets the server's own OS user in as the superuser over the private
# socket (peer), so that gpdl's SQL functions can open the sessions a training job needs
# (they take the calling role at once: see gpdl_backend.local). Everyone else: password.
_HBA = """# gpdl embedded server: loopback and the private socket only, password auth.
local   all   {superuser}   peer map=gpdl_server
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
"""
_IDENT = """# gpdl embedded server: the OS user the server runs as is its superuser.
gpdl_server   {os_user}   {superuser}
"""


def default_home() -> Path:
    """The gpdl home: ``$GPDL_HOME``, else ``/var/lib/gpdl`` for root, else XDG data."""
    if os.environ.get("GPDL_HOME"):
        return Path(os.environ["GPDL_HOME"]).resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/gpdl")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gpdl"


def find_bindir() -> Path:
    """The newest PostgreSQL (>= 13) server bin directory on this machine.

    Raises:
        FatalError: no server binaries found, with the apt-get line that fixes it.
    """
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and path.parent.name.isdigit():
            candidates.append((int(path.parent.name), path))
    candidates = [c for c in candidates if c[0] >= 13]
    if not candidates:
        raise FatalError(
            "no PostgreSQL server found; install it with: "
            "apt-get install postgresql-15 postgresql-plpython3-15"
        )
    return max(candidates)[1]


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user only from its first byte.

    The file is created mode 0600 (``os.open``'s mode, so never readable by
    others even for a moment, whatever the umask) under a fresh name, then
    renamed over ``path``: an older file with looser permissions is
    replaced, never rewritten in place.

    Args:
        path: the secret file (its directory must exist).
        text: the secret.

    Example:
        >>> write_secret(Path("/var/lib/gpdl/.pwfile"), "s3cr3t")
    """
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@dataclass
class EmbeddedServer:
    """A PostgreSQL server owned by gpdl under ``home``.

    Args:
        home: the gpdl home directory. Defaults to ``default_home()``.
        port: TCP port on 127.0.0.1. Defaults to 54329 (or the one recorded at
            initdb time).
    """

    home: Path
    port: int = DEFAULT_PORT

    @classmethod
    def default(cls, home: Path | None = None, port: int | None = None) -> EmbeddedServer:
        """The server under ``home`` (default home), keeping its recorded port."""
        server = cls(home or default_home())
        recorded = server.recorded_port()
        server.port = port or recorded or DEFAULT_PORT
        return server

    # --- paths -----------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "postgres.log"

    @property
    def dsn_file(self) -> Path:
        return self.home / "dsn"

    @property
    def servers_dir(self) -> Path:
        """Named object-store configs (PXF's ``SERVER=``), read by the server."""
        return self.home / "servers"

    # --- state -----------------------------------------------------------
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and self.dsn_file.exists()

    def recorded_port(self) -> int | None:
        if not self.dsn_file.exists():
            return None
        return int(self.dsn_file.read_text().strip().rsplit(":", 1)[1].split("/")[0])

    def dsn(self) -> str:
        """The libpq URL of the ``gpdl`` database (with its password)."""
        if not self.dsn_file.exists():
            raise UsageError(f"the embedded server under {self.home} is not initialized")
        return self.dsn_file.read_text().strip()

    def running(self) -> bool:
        if not self.initialized():
            return False
        result = self._pg_ctl("status", check=False)
        return result.returncode == 0

    # --- lifecycle -------------------------------------------------------
    def start(self, quiet: bool = False) -> str:
        """Initialize (first time) and start the server; returns the DSN.

        Raises:
            UsageError: the port is taken by another program.
            FatalError: initdb or start failed (the log's tail is in the message).
        """
        if self.running():
            return self.dsn()
        if port_in_use(self.port):
            raise UsageError(
                f"port {self.port} on 127.0.0.1 is in use by another program; "
                "choose another with --port (or GPDL_PORT)"
            )
        if not self.initialized():
            self._initdb(quiet)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.socket_dir)
        self._write_access_rules()  # servers made by an older gpdl get the peer line too
        result = self._pg_ctl(
            "start", "-w", "-t", "60", "-l", str(self.log_file), "-o", f"-p {self.port}",
            check=False,
        )
        if result.returncode != 0:
            raise FatalError(f"the embedded server did not start:\n{self._log_tail()}")
        self._ensure_database()
        return self.dsn()

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns whether it was running."""
        if not self.running():
            return False
        self._pg_ctl("stop", "-m", "fast", "-w")
        return True

    def restart(self) -> str:
        """Stop and start again (used by fault tests)."""
        self.stop()
        return self.start()

    # --- internals -------------------------------------------------------
    def _run_as_owner(self) -> bool:
        return os.geteuid() == 0

    def _owner_prefix(self) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--"] if self._run_as_owner() else []

    def _chown(self, path: Path) -> None:
        if self._run_as_owner():
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _ensure_server_user(self) -> None:
        if not self._run_as_owner():
            return
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--home-dir", str(self.home),
                 "--shell", "/usr/sbin/nologin", SERVER_USER],
                check=True,
            )

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        # The backends import TensorFlow: keep its chatter and config under our home.
        env.update(
            TF_CPP_MIN_LOG_LEVEL="2",
            KERAS_HOME=str(self.home / "keras"),
            HOME=str(self.home),
            PGDATA=str(self.data_dir),
        )
        command = [*self._owner_prefix(), str(find_bindir() / "pg_ctl"), "-D",
                   str(self.data_dir), *args]
        return subprocess.run(command, env=env, check=check, capture_output=True, text=True)

    def _initdb(self, quiet: bool) -> None:
        self._ensure_server_user()
        for path in (self.home, self.home / "log", self.home / "keras", self.servers_dir):
            path.mkdir(parents=True, exist_ok=True)
            self._chown(path)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # left over from an interrupted initdb
        password = secrets.token_urlsafe(24)
        pwfile = self.home / ".pwfile"
        write_secret(pwfile, password + "\n")
        self._chown(pwfile)
        if not quiet:
            print(f"initializing the embedded PostgreSQL server in {self.data_dir}", flush=True)
        try:
            result = subprocess.run(
                [*self._owner_prefix(), str(find_bindir() / "initdb"), "-D", str(self.data_dir),
                 "-U", SERVER_USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                 "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True, check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise FatalError(f"initdb failed:\n{result.stderr[-2000:]}")
        conf = _CONF.format(port=self.port, socket_dir=self.socket_dir)
        with open(self.data_dir / "postgresql.conf", "a") as handle:
            handle.write(conf)
        self._write_access_rules()
        dsn = f"postgresql://{SERVER_USER}:{password}@127.0.0.1:{self.port}/{DATABASE}"
        write_secret(self.dsn_file, dsn + "\n")

    def _write_access_rules(self) -> None:
        """pg_hba.conf and pg_ident.conf: ours, rewritten at every start."""
        os_user = SERVER_USER if self._run_as_owner() else pwd.getpwuid(os.geteuid()).pw_name
        (self.data_dir / "pg_hba.conf").write_text(_HBA.format(superuser=SERVER_USER))
        (self.data_dir / "pg_ident.conf").write_text(
            _IDENT.format(os_user=os_user, superuser=SERVER_USER))

    def _ensure_database(self) -> None:
        import psycopg2

        admin_dsn = self.dsn().rsplit("/", 1)[0] + "/postgres"
        for attempt in range(50):
            try:
                conn = psycopg2.connect(admin_dsn)
                break
            except psycopg2.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {DATABASE}")  # constant name, not user input
            # The superuser is called gpdl, so "$user" would make gpdl's own schema the
            # default for user tables: theirs go to public.
            cur.execute(f"ALTER ROLE {SERVER_USER} IN DATABASE {DATABASE} "
                        "SET search_path = public")
        conn.close()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text().splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def check_readable(self, paths: list[str]) -> list[str]:
        """The paths the server's user cannot read (the venv, the backend)."""
        if not self._run_as_owner():
            return []
        self._ensure_server_user()
        unreadable = []
        for path in paths:
            ok = subprocess.run(
                [*self._owner_prefix(), "test", "-r", path, "-a", "-x", path],
                check=False,
            ).returncode == 0
            if not ok:
                unreadable.append(path)
        return unreadable
