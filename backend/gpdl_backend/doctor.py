"""``gpdl doctor``: one table telling what works, and how to fix what does not."""

from __future__ import annotations

import json
from dataclasses import dataclass

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
                "" if row else "apt-get install postgresql-plpython3-<server major version>"))
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


def _server_checks(cur, engine) -> list[Check]:
    checks = []
    segments = engines.installed_num_segments(cur)
    if engine.is_greenplum:
        cur.execute("SELECT count(*) FROM gp_segment_configuration "
                    "WHERE role = 'p' AND content >= 0")
        segments = cur.fetchone()[0]
    checks.append(Check("segments", segments >= 1, str(segments)))
    try:
        cur.execute(engine.on_every_segment(psycopg2.sql.SQL("gpdl.server_info(true)")))
        rows = cur.fetchall()
    except psycopg2.Error as error:
        mapped = server_error(error)
        return [*checks, Check(
            "server python", False, str(mapped or error).strip().splitlines()[0],
            "install the venv's packages where the server can read them, then `gpdl install`")]
    for segment, value in rows:
        info = json.loads(value) if isinstance(value, str) else value
        where = "coordinator" if segment < 0 else f"segment {segment}"
        checks.append(Check(f"python ({where})", True,
                            f"{info['python']} on {info['host']}, {info['cpu_count']} CPUs"))
        for package in ("gpdl_backend", "tensorflow", "keras", "numpy", "pillow"):
            version = info.get(package)
            checks.append(Check(
                f"{package} ({where})", version is not None, version or "missing",
                "" if version else f"pip install {package} into the venv the server uses"))
        gpus = info.get("gpus") or []
        checks.append(Check(f"GPUs ({where})", True,
                            f"{len(gpus)}" + (f": {', '.join(gpus)}" if gpus else " (CPU only)")))
    return checks


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
