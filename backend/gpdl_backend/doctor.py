"""``gpdl doctor``: one table telling what works, and how to fix what does not."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import psycopg2

import gpdl_backend
from gpdl_backend import engine as engines
from gpdl_backend.client import connect, server_error
from gpdl_backend.errors import GpdlError


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def diagnose(dsn: str) -> list[Check]:
    """Check the server at ``dsn``; every failing line says how to fix it."""
    checks: list[Check] = []
    try:
        conn = connect(dsn)
    except GpdlError as error:
        return [Check("connection", False, str(error),
                      "start the embedded server with `gpdl db start` or pass a DSN")]
    conn.autocommit = True
    try:
        engine = engines.probe(conn, num_segments=1)
        checks.append(Check("server", True, engine.version.split(" on ")[0]))
        checks.append(Check("engine", True, engine.kind))
        with conn.cursor() as cur:
            cur.execute("SELECT installed_version FROM pg_available_extensions "
                        "WHERE name = 'plpython3u'")
            row = cur.fetchone()
            checks.append(Check(
                "plpython3u", row is not None,
                "installed" if row and row[0] else ("available" if row else "missing"),
                "" if row else engine.plpython3u_fix()))
            cur.execute("SELECT value FROM gpdl.config WHERE key = 'version'"
                        if _has_config(cur) else "SELECT NULL")
            installed = cur.fetchone()[0]
            checks.append(Check(
                "gpdl schema", installed == gpdl_backend.__version__,
                f"version {installed}" if installed else "not installed",
                "" if installed == gpdl_backend.__version__ else "run `gpdl install`"))
            if installed:
                checks.extend(_server_checks(cur, engine))
    finally:
        conn.close()
    return checks


def _has_config(cur) -> bool:
    cur.execute("SELECT to_regclass('gpdl.config') IS NOT NULL")
    return bool(cur.fetchone()[0])


_PACKAGES = ("gpdl_backend", "tensorflow", "keras", "numpy", "pillow")


def _server_checks(cur, engine: engines.Engine) -> list[Check]:
    """Segments, then the Python of the coordinator and of every segment."""
    segments = engine.segment_count(engines.installed_num_segments(cur))
    checks = [Check("segments", segments >= 1, str(segments))]
    recorded = _recorded(cur)
    reference: dict = {}  # the coordinator's versions
    statements = engine.python_checks(psycopg2.sql.SQL("gpdl.server_info(true)"))
    for index, statement in enumerate(statements):
        try:
            cur.execute(statement)
            rows = cur.fetchall()
        except psycopg2.Error as error:
            where = "segments" if index else "coordinator"
            checks.append(_python_failure(where, server_error(error) or error, recorded))
            continue
        for segment, value in rows:
            info = json.loads(value) if isinstance(value, str) else value
            if segment < 0:
                reference = info
            checks.extend(_python_lines(
                "coordinator" if segment < 0 else f"segment {segment}", info, reference))
    return checks


def _recorded(cur) -> dict[str, str]:
    cur.execute("SELECT key, value FROM gpdl.config")
    return dict(cur.fetchall())


def _python_lines(where: str, info: dict, reference: dict) -> list[Check]:
    """The lines of one server process's Python: versions against the client and coordinator."""
    checks = [Check(f"python ({where})", True,
                    f"{info['python']} on {info['host']}, {info['cpu_count']} CPUs")]
    for package in _PACKAGES:
        version = info.get(package)
        expected = gpdl_backend.__version__ if package == "gpdl_backend" \
            else reference.get(package)
        if version is None:
            fix = f"pip install {package} into the venv the server uses, then `gpdl install`"
        elif expected is not None and version != expected:
            fix = (f"{where} imports {package} {version}, not {expected}: the same venv at "
                   "the same path on every host, then `gpdl install`")
        else:
            fix = ""
        checks.append(Check(f"{package} ({where})", not fix, version or "missing", fix))
    gpus = info.get("gpus") or []
    checks.append(Check(f"GPUs ({where})", True,
                        f"{len(gpus)}" + (f": {', '.join(gpus)}" if gpus else " (CPU only)")))
    return checks


def _python_failure(where: str, error: Exception, recorded: dict[str, str]) -> Check:
    """The line for server processes whose Python cannot run gpdl, with how to fix it."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    paths = [p for p in recorded.get("site_paths", "").split(os.pathsep) if p]
    user = recorded.get("server_user", "the server's OS user")
    if "No module named" in message or "ModuleNotFoundError" in message:
        closed = _closed_dirs(paths)
        fix = (f"the {where} cannot read the venv as {user}: chmod -R o+rX "
               f"{' '.join(paths) or '<venv site-packages>'}; chmod o+x on each parent dir"
               + (f" ({' '.join(closed)} lack it here)" if closed else "")
               + "; the same paths on every host; then `gpdl install`")
    else:
        fix = ("install the venv's packages where the server can read them (the same paths "
               "on every host), then `gpdl install`")
    return Check(f"python ({where})", False, message, fix)


def _closed_dirs(paths: list[str]) -> list[str]:
    """Directories on the way to ``paths`` (on this machine) that others cannot enter."""
    closed: list[str] = []
    for path in paths:
        for directory in [Path(path), *Path(path).parents]:
            try:
                mode = directory.stat().st_mode
            except OSError:
                continue
            if not mode & stat.S_IXOTH and str(directory) not in closed:
                closed.append(str(directory))
    return closed


def format_table(checks: list[Check]) -> str:
    """The checks as an aligned text table."""
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        line = f"{mark}  {check.name:<{width}}  {check.detail}"
        if check.fix:
            line += f"\n      {'':<{width}}  fix: {check.fix}"
        lines.append(line)
    return "\n".join(lines)
