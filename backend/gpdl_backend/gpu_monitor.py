"""GPU configuration and live usage of every database host (runs in the client).

Thin readers of ``gpdl.gpu_configuration()`` and ``gpdl.gpu_usage()`` (see
:mod:`gpdl_backend.gpu`), run once per segment process on Greenplum and once on
PostgreSQL; rows repeated by segments sharing a host are dropped. The GPU
widget polls ``gpu_usage``.

Example::

    for row in gpu_usage(dsn):
        print(row["host"], row["kind"], row["device"], row["utilization"])
"""

from __future__ import annotations

from psycopg2 import sql

from gpdl_backend import engine as engines
from gpdl_backend.client import session

__all__ = ["gpu_configuration", "gpu_usage"]


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
        host, else the gpdl backend's application name, e.g.
        ``"gpdl:segment 0"``). CPU utilization of a backend is in percent of
        one core.

    Example:
        >>> gpu_usage(dsn)[0]["kind"]
        'cpu'
    """
    rows = _every_host(dsn, sql.SQL("gpdl.gpu_usage()"))
    return _unique(rows, ("host", "kind", "device"))


def _every_host(dsn: str, call: sql.Composable) -> list[dict]:
    with session(dsn, autocommit=True) as conn:
        engine = engines.probe(conn, num_segments=1)
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
