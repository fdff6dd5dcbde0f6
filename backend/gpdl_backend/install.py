"""Create or upgrade schema ``gpdl`` and its functions in a database.

Versioned and idempotent: an unchanged function script is left in place; a
changed one is run again with CREATE OR REPLACE. gpdl records the functions and
views it created in ``gpdl.installed_object`` and on upgrade drops only those of
its own that the new script no longer has (never with CASCADE), so a user's
functions and views, in schema gpdl or elsewhere, are never touched. Tables are
kept. The server's Python
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

import psycopg2.errors
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
    changed: bool = True
    """False when what was installed was current and nothing was written."""


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


def _script(paths: list[str], servers_dir: str) -> tuple[str, str]:
    """The function script for these settings and its SHA-256."""
    script = function_sql(paths, {"servers_dir": servers_dir, "site_paths": list(paths),
                                  "version": gpdl_backend.__version__})
    return script, hashlib.sha256(script.encode()).hexdigest()


def _servers_dir(given: str | None, recorded: dict[str, str]) -> str:
    return (given or recorded.get("servers_dir")
            or os.environ.get("GPDL_SERVERS_DIR") or "/etc/gpdl/servers")


def install_if_needed(dsn: str, servers_dir: str | None = None) -> InstallResult:
    """``install``, unless the database has this gpdl with these settings already.

    Then nothing is written (``changed`` is False): ``gpdl db start`` calls
    this, so a restart does not touch the functions a reconnecting job uses.

    Args:
        dsn: libpq connection string of a superuser.
        servers_dir: as for ``install``. Defaults to the recorded one.

    Returns:
        An ``InstallResult``.

    Example::

        install_if_needed(server.dsn(), servers_dir=str(server.servers_dir))
    """
    paths = default_site_paths()
    # Not read-only: Greenplum's engine probe writes a temporary table.
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('gpdl.config') IS NOT NULL "
                    "AND to_regclass('gpdl.installed_object') IS NOT NULL")
        recorded = _recorded(cur) if cur.fetchone()[0] else {}
        servers = _servers_dir(servers_dir, recorded)
        script, digest = _script(paths, servers)
        current = (recorded.get("version") == gpdl_backend.__version__
                   and recorded.get("functions_sha256") == digest
                   and recorded.get("site_paths") == os.pathsep.join(paths)
                   and recorded.get("servers_dir") == servers
                   and _all_functions_present(cur, script))
        kind = engines.probe(conn, num_segments=1).kind
    if not current:
        return install(dsn, servers_dir=servers_dir)
    return InstallResult(gpdl_backend.__version__, gpdl_backend.__version__, kind,
                         int(recorded["num_segments"]), tuple(paths), changed=False)


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
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS gpdl.installed_object "
                    "(kind text, signature text, PRIMARY KEY (kind, signature)){}"
                ).format(engine.distributed_replicated())
            )
            recorded = _recorded(cur)
            previous = recorded.get("version")
            servers = _servers_dir(servers_dir, recorded)
            _create_user_role(cur)
            registry.create(cur, engine)
            script, digest = _script(paths, servers)
            # The same functions again: leave them, so running jobs' sessions keep them
            # (a dropped function fails their next unit with "cache lookup failed").
            if (recorded.get("functions_sha256") != digest or previous != gpdl_backend.__version__
                    or not _all_functions_present(cur, script)):
                _upgrade(cur, script)
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
    Only gpdl's own functions: a user's function in schema gpdl keeps its grants.
    """
    role = sql.Identifier(USER_ROLE)
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA gpdl TO {}").format(role))
    cur.execute(sql.SQL("GRANT SELECT ON gpdl.config, gpdl.jobs TO {}").format(role))
    cur.execute("SELECT signature FROM gpdl.installed_object WHERE kind = 'function'")
    # The signatures are the server's own text (quote_ident, format_type), not user input.
    ours = sql.SQL(", ").join(sql.SQL(row[0]) for row in cur.fetchall())
    cur.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(ours))
    cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(ours, role))


# --- upgrade: gpdl's own objects only --------------------------------------------------
_TOKEN = re.compile(r"\$(\w*)\$.*?\$\1\$|'(?:[^']|'')*'|--[^\n]*|;", re.S)
_HEAD = re.compile(r"(?:\s*--[^\n]*\n)*\s*CREATE (FUNCTION|VIEW) gpdl\.(\w+)")
_SIGNATURE = ("'gpdl.' || quote_ident(p.proname) || '(' || oidvectortypes(p.proargtypes) "
              "|| ')'")
_KEYWORD = {"function": sql.SQL("FUNCTION"), "view": sql.SQL("VIEW")}
_REPLACE_REFUSED = (psycopg2.errors.InvalidFunctionDefinition,  # return type, arg names
                    psycopg2.errors.InvalidTableDefinition)  # a view's columns


def statements(script: str) -> list[str]:
    """The statements of an SQL script, split at semicolons outside quotes and comments."""
    found, start = [], 0
    for token in _TOKEN.finditer(script):
        if token.group() == ";":
            found.append(script[start:token.start()])
            start = token.end()
    found.append(script[start:])
    return [s for s in found if _TOKEN.sub("", s).strip()]


def _upgrade(cur, script: str) -> None:
    """Run the function script again, touching only the objects gpdl created."""
    parts = statements(script)
    heads = [_HEAD.match(part) for part in parts]
    made = _signatures(cur, parts, heads)
    ours = _ours(cur, [head.group(2) for head in heads if head])
    for kind, signature in sorted(ours - set(made.values()), key=lambda o: o[0] != "view"):
        _drop(cur, kind, signature, "which this gpdl no longer has")
    for index, part in enumerate(parts):
        if index in made:
            _create_or_replace(cur, *made[index], part)
        else:
            cur.execute(part)
    cur.execute("DELETE FROM gpdl.installed_object")
    cur.executemany("INSERT INTO gpdl.installed_object VALUES (%s, %s)", sorted(made.values()))


def _signatures(cur, parts: list[str], heads: list) -> dict[int, tuple[str, str]]:
    """(kind, signature) of each statement that creates a gpdl function or view.

    A function's argument types are the server's: each is created once under
    a scratch name in a schema that is rolled back at once.
    """
    made = {i: ("view", f"gpdl.{head.group(2)}")
            for i, head in enumerate(heads) if head and head.group(1) == "VIEW"}
    cur.execute("SAVEPOINT gpdl_probe")
    cur.execute("CREATE SCHEMA gpdl_install_probe")
    cur.execute("SET LOCAL check_function_bodies = off")
    for index, head in enumerate(heads):
        if head and head.group(1) == "FUNCTION":
            cur.execute(parts[index][:head.start(2) - 5] + f"gpdl_install_probe.f{index}"
                        + parts[index][head.end(2):])
    cur.execute("SELECT p.proname, oidvectortypes(p.proargtypes) FROM pg_proc p "
                "WHERE p.pronamespace = 'gpdl_install_probe'::regnamespace")
    for probe, types in cur.fetchall():
        index = int(probe[1:])
        made[index] = ("function", f"gpdl.{heads[index].group(2)}({types})")
    cur.execute("ROLLBACK TO SAVEPOINT gpdl_probe")
    return made


def _ours(cur, names: list[str]) -> set[tuple[str, str]]:
    """The objects earlier installs recorded as gpdl's.

    Before gpdl kept that record, its functions were those with the install
    prelude or a name the script has, and its one view ``gpdl.jobs``.
    """
    cur.execute("SELECT count(*) FROM gpdl.installed_object")
    if not cur.fetchone()[0]:
        cur.execute(f"INSERT INTO gpdl.installed_object SELECT 'function', {_SIGNATURE} "
                    "FROM pg_proc p WHERE p.pronamespace = 'gpdl'::regnamespace "
                    "AND (p.prosrc LIKE '%%gpdl.settings%%' OR p.proname = ANY(%s))", (names,))
        cur.execute("INSERT INTO gpdl.installed_object SELECT 'view', 'gpdl.jobs' "
                    "WHERE to_regclass('gpdl.jobs') IS NOT NULL")
    cur.execute("SELECT kind, signature FROM gpdl.installed_object")
    return set(cur.fetchall())


def _create_or_replace(cur, kind: str, signature: str, statement: str) -> None:
    """CREATE OR REPLACE; where the server refuses (another return type), drop that one."""
    cur.execute("SAVEPOINT gpdl_replace")
    try:
        cur.execute(statement.replace("CREATE ", "CREATE OR REPLACE ", 1))
    except _REPLACE_REFUSED:
        cur.execute("ROLLBACK TO SAVEPOINT gpdl_replace")
        _drop(cur, kind, signature, "whose definition changed")
        cur.execute(statement)
    else:
        cur.execute("RELEASE SAVEPOINT gpdl_replace")


def _drop(cur, kind: str, signature: str, why: str) -> None:
    """Drop one object of gpdl's, without CASCADE: a dependent object is named, not lost."""
    lookup = "to_regclass" if kind == "view" else "to_regprocedure"
    cur.execute(sql.SQL("SELECT {}(%s)::text").format(sql.SQL(lookup)), (signature,))
    existing = cur.fetchone()[0]  # the server's own quoting of the name
    if existing is None:
        return
    try:
        cur.execute(sql.SQL("DROP {} {}").format(_KEYWORD[kind], sql.SQL(existing)))
    except psycopg2.errors.DependentObjectsStillExist as error:
        blockers = "; ".join((error.diag.message_detail or "").splitlines())
        raise FatalError(
            f"cannot drop {kind} {signature}, {why}: {blockers}; drop or change that "
            "object, then run gpdl install again") from error


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
