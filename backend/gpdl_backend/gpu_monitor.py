"""GPU configuration and live usage of every database host (runs in the client).

Thin readers of ``gpdl.gpu_configuration()`` and ``gpdl.gpu_usage()`` (see
:mod:`gpdl_backend.server.gpu`), run once per segment process on Greenplum and once on
PostgreSQL. ``gpu_usage`` first lists the gpdl sessions' server processes on
the coordinator (on Greenplum their segment processes too) and passes them to
every host, since a segment cannot read ``pg_stat_activity``; the answers of
server instances sharing a host are merged. The GPU widget polls ``gpu_usage``.

Example::

    for row in gpu_usage(dsn):
        print(row["host"], row["kind"], row["device"], row["utilization"])
"""

from __future__ import annotations

from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import session

__all__ = ["gpu_configuration", "gpu_usage", "merge_usage", "usage_call"]


def gpu_configuration(dsn: str) -> list[dict]:
    """The GPUs of every database host.

    Returns:
        ``[{"host", "device", "name", "memory_total_mb", "driver"}, ...]``
        ordered by host and device; empty when no host has a GPU (or NVML).

    Example:
        >>> gpu_configuration(dsn)
        [{'host': 'sdw1', 'device': 0, 'name': 'Tesla P100-PCIE-16GB', ...}]
    """
    rows = _every_host(dsn, sql.SQL("gpdl.gpu_configuration()"))
    return sorted(_unique(rows, ("host", "device")), key=lambda r: (r["host"], r["device"]))


def gpu_usage(dsn: str) -> list[dict]:
    """Live GPU use of every database host, or CPU use where a host has no GPU.

    Returns:
        ``[{"host", "kind", "device", "utilization", "memory_used_mb",
        "memory_total_mb", "pids", "sessions"}, ...]``: ``kind`` is ``"gpu"``
        (device = GPU index) or ``"cpu"`` (device ``"host"`` for the whole
        host, else a gpdl session's application name, e.g.
        ``"gpdl:segment 0"``, with the CPU and memory of its server processes
        on that host summed: on Greenplum its segment processes, which do
        the training). CPU utilization of a session is in percent of one core.

    Example:
        >>> gpu_usage(dsn)[0]["kind"]
        'cpu'
    """
    with session(dsn, autocommit=True) as conn:
        engine = engines.probe(conn, num_segments=1)
        with conn.cursor() as cur:
            cur.execute(engine.session_backends())
            backends = cur.fetchall()
        call = usage_call(sql.Literal([pid for pid, _ in backends]),
                          sql.Literal([name for _, name in backends]))
        return merge_usage(_rows(conn, engine, call))


def usage_call(pids: sql.Composable, names: sql.Composable) -> sql.Composable:
    """The ``gpdl.gpu_usage`` call naming the gpdl backends (integer[] and text[])."""
    return sql.SQL("gpdl.gpu_usage({}::integer[], {}::text[])").format(pids, names)


def merge_usage(rows: list[dict]) -> list[dict]:
    """One row per ``(host, kind, device)`` from the answers of every server instance.

    Instances sharing a host each report the host's GPUs and CPU (the first
    answer's numbers are kept) but only their own backends: pids and
    sessions are joined, and a session's CPU and memory on that host summed.

    Example:
        >>> row = {"host": "h", "kind": "cpu", "device": "gpdl:s", "utilization": 90.0,
        ...        "memory_used_mb": 80.0, "pids": [7], "sessions": ["gpdl:s"]}
        >>> merge_usage([row, {**row, "utilization": 5.0, "pids": [9]}])[0]["utilization"]
        95.0
    """
    merged: dict[tuple, dict] = {}
    for row in rows:
        key = (row["host"], row["kind"], row["device"])
        first = merged.get(key)
        if first is None:
            merged[key] = {**row, "pids": list(row["pids"] or []),
                           "sessions": list(row["sessions"] or [])}
            continue
        first["pids"] = sorted(set(first["pids"]) | set(row["pids"] or []))
        first["sessions"] = list(dict.fromkeys([*first["sessions"], *(row["sessions"] or [])]))
        if row["kind"] == "cpu" and row["device"] != "host":  # one session's processes
            first["utilization"] += row["utilization"]
            first["memory_used_mb"] = round(first["memory_used_mb"] + row["memory_used_mb"], 1)
    return list(merged.values())


def _every_host(dsn: str, call: sql.Composable) -> list[dict]:
    with session(dsn, autocommit=True) as conn:
        return _rows(conn, engines.probe(conn, num_segments=1), call)


def _rows(conn, engine: engines.Engine, call: sql.Composable) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(engine.rows_on_every_host(call))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _unique(rows: list[dict], key: tuple[str, ...]) -> list[dict]:
    """The first row per key, in order."""
    seen: dict[tuple, dict] = {}
    for row in rows:
        seen.setdefault(tuple(row[k] for k in key), row)
    return list(seen.values())
