"""Create or upgrade schema ``gpdl`` and its functions in a database.

Versioned and idempotent: every run drops and recreates the functions (so a
changed signature upgrades cleanly) and keeps the tables. The server's Python
finds ``gpdl_backend`` and TensorFlow through paths recorded here, since a
Greenplum segment's ``PYTHONPATH`` is not the caller's.

Example::

    install("postgresql://gpdl@127.0.0.1:54329/gpdl")
"""

from __future__ import annotations

import hashlib
import os
import re
import site
import sysconfig
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from psycopg2 import sql

import gpdl_backend
from gpdl_backend import engine as engines
from gpdl_backend.client import session
from gpdl_backend.errors import FatalError
from gpdl_backend.mop import registry

_PRELUDE = '''if "gpdl.settings" not in GD:
    import sys
    for _path in reversed({paths!r}):
        if _path not in sys.path:
            sys.path.insert(0, _path)
    GD["gpdl.settings"] = {settings!r}'''


@dataclass(frozen=True)
class InstallResult:
    """What ``install`` did."""

    version: str
    previous_version: str | None
    engine: str
    num_segments: int
    site_paths: tuple[str, ...]


def default_site_paths() -> list[str]:
    """This interpreter's site-packages and the directory holding ``gpdl_backend``."""
    backend_root = str(Path(gpdl_backend.__file__).resolve().parent.parent)
    purelib = sysconfig.get_paths()["purelib"]
    paths = [backend_root, purelib]
    paths += [p for p in site.getsitepackages() if p not in paths]
    return paths


def function_sql(site_paths: list[str], settings: dict) -> str:
    """The CREATE FUNCTION script with the path prelude filled in."""
    prelude = _PRELUDE.format(paths=list(site_paths), settings=settings)
    text = resources.files("gpdl_backend").joinpath("sql/functions.sql").read_text()
    return text.replace("#PRELUDE", prelude)


def install(
    dsn: str,
    site_paths: list[str] | None = None,
    servers_dir: str | None = None,
    num_segments: int | None = None,
) -> InstallResult:
    """Create or upgrade schema ``gpdl`` in the database at ``dsn``.

    Args:
        dsn: libpq connection string of a superuser (plpython3u is untrusted).
        site_paths: paths the server's Python adds to ``sys.path``. Defaults
            to this venv's site-packages and the backend source directory.
        servers_dir: where named object-store configs live on the database
            host. Defaults to the one recorded by an earlier install (configs
            made with ``gpdl servers add`` keep working), else
            ``$GPDL_SERVERS_DIR`` or ``/etc/gpdl/servers``.
            The OS user the server runs as is recorded beside it
            (``server_user``): ``gpdl servers add`` gives the configs to it.
        num_segments: PostgreSQL virtual segments. Defaults to the value
            already installed, else the server's CPU count.

    Returns:
        An ``InstallResult``.

    Raises:
        FatalError: plpython3u is missing or the server cannot import the backend.
    """
    paths = site_paths or default_site_paths()
    with session(dsn) as conn:
        engine = engines.probe(conn, num_segments=1)
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpython3u'")
            if cur.fetchone() is None:
                raise FatalError(
                    f"plpython3u is not available on the server: {engine.plpython3u_fix()}")
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
            cur.execute("CREATE SCHEMA IF NOT EXISTS gpdl")
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS gpdl.config "
                    "(key text PRIMARY KEY, value text NOT NULL){}"
                ).format(engine.distributed_replicated())
            )
            recorded = _recorded(cur)
            previous = recorded.get("version")
            servers = (servers_dir or recorded.get("servers_dir")
                       or os.environ.get("GPDL_SERVERS_DIR") or "/etc/gpdl/servers")
            _create_user_role(cur)
            registry.create(cur, engine)
            script = function_sql(paths, {"servers_dir": servers, "site_paths": list(paths),
                                          "version": gpdl_backend.__version__})
            digest = hashlib.sha256(script.encode()).hexdigest()
            # The same functions again: leave them, so running jobs' sessions keep them
            # (a dropped function fails their next unit with "cache lookup failed").
            if (recorded.get("functions_sha256") != digest or previous != gpdl_backend.__version__
                    or not _all_functions_present(cur, script)):
                _drop_functions(cur)
                cur.execute(script)
                _set_config(cur, "functions_sha256", digest)
            _grant_to_users(cur)
            segments = engine.segment_count(
                num_segments or _current_segments(cur) or _server_cpu_count(cur))
            _set_config(cur, "version", gpdl_backend.__version__)
            _set_config(cur, "num_segments", str(segments))
            _set_config(cur, "site_paths", os.pathsep.join(paths))
            _set_config(cur, "servers_dir", servers)
            _set_config(cur, "server_user", _server_user(cur))
            cur.execute("SELECT gpdl.version()")
            installed = cur.fetchone()[0]
    if installed != gpdl_backend.__version__:
        raise FatalError(
            f"the server imports gpdl_backend {installed}, not {gpdl_backend.__version__}: "
            f"check the site paths {paths}"
        )
    return InstallResult(
        installed, previous, engine.kind, segments, tuple(paths)
    )


USER_ROLE = "gpdl_user"
"""What a DBA grants a data scientist: the SQL API, gpdl.jobs, nothing of other roles'."""


def _create_user_role(cur) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER_ROLE,))
    if cur.fetchone() is None:
        cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(USER_ROLE)))


def _grant_to_users(cur) -> None:
    """gpdl's functions for ``gpdl_user``, not PUBLIC (run at every install: idempotent).

    A job's sessions act as the calling role, so it also runs the per-row
    functions (gpdl.train_unit, gpdl.read_images, ...) the API's drivers call.
    """
    role = sql.Identifier(USER_ROLE)
    cur.execute("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gpdl FROM PUBLIC")
    for statement in ("GRANT USAGE ON SCHEMA gpdl TO {}",
                      "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA gpdl TO {}",
                      "GRANT SELECT ON gpdl.config, gpdl.jobs TO {}"):
        cur.execute(sql.SQL(statement).format(role))


def _drop_functions(cur) -> None:
    cur.execute(
        "SELECT p.oid::regprocedure::text, p.prokind FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'gpdl' AND p.prokind IN ('f', 'a') ORDER BY p.prokind"
    )
    # Aggregates first ('a' < 'f'): they depend on their transition functions.
    for signature, kind in cur.fetchall():
        what = "AGGREGATE" if kind == "a" else "FUNCTION"
        # The signature is the server's own regprocedure text, already quoted.
        cur.execute(sql.SQL("DROP {} IF EXISTS {} CASCADE").format(
            sql.SQL(what), sql.SQL(signature)))


def _set_config(cur, key: str, value: str) -> None:
    cur.execute(
        "INSERT INTO gpdl.config (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (key, value),
    )


def _all_functions_present(cur, script: str) -> bool:
    names = sorted(set(re.findall(r"CREATE FUNCTION gpdl\.(\w+)", script)))
    cur.execute("SELECT to_regclass('gpdl.jobs') IS NOT NULL")
    if not cur.fetchone()[0]:
        return False
    cur.execute("SELECT count(DISTINCT proname) FROM pg_proc "
                "WHERE pronamespace = 'gpdl'::regnamespace AND proname = ANY(%s)", (names,))
    return cur.fetchone()[0] == len(names)


def _recorded(cur) -> dict[str, str]:
    """What earlier installs recorded in ``gpdl.config``."""
    cur.execute("SELECT key, value FROM gpdl.config")
    return dict(cur.fetchall())


def _current_segments(cur) -> int | None:
    cur.execute("SELECT value FROM gpdl.config WHERE key = 'num_segments'")
    row = cur.fetchone()
    return int(row[0]) if row else None


def _server_user(cur) -> str:
    """The OS user the server runs as (its own Python says): the owner of server configs."""
    cur.execute("SELECT gpdl.server_info(false)::json ->> 'os_user'")
    return cur.fetchone()[0]


def _server_cpu_count(cur) -> int:
    cur.execute("SELECT (gpdl.server_info(false)::json ->> 'cpu_count')::int")
    return max(1, cur.fetchone()[0] or 1)
