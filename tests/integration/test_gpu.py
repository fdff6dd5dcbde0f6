"""GPU configuration and usage against the real server (this machine has no GPU)."""

from __future__ import annotations

import contextlib
import threading
import time

import psycopg2
import pytest

from gpdl_backend import engine as engines
from gpdl_backend.client import connect
from gpdl_backend.gpu_monitor import gpu_configuration, gpu_usage
from gpdl_backend.server import gpu

pytestmark = pytest.mark.db

needs_no_gpu = pytest.mark.skipif(gpu.nvml() is not None, reason="this host has a GPU")


@pytest.fixture
def sessions(dsn: str):
    """Two live backends named like segment sessions: ``{application_name: (conn, pid)}``."""
    opened = {}
    for k in range(2):
        conn = connect(dsn, application_name=f"gpdl:test segment {k}")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            opened[f"gpdl:test segment {k}"] = (conn, cur.fetchone()[0])
    yield opened
    for conn, _ in opened.values():
        conn.close()


def _utilization(rows: list[dict], device: str) -> float:
    return next((r["utilization"] for r in rows if r["device"] == device), 0.0)


def _backends(dsn: str) -> list[tuple[int, str]]:
    """``(pid, application_name)`` of the gpdl sessions' server processes."""
    with contextlib.closing(connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute(engines.probe(conn, num_segments=1).session_backends())
        return cur.fetchall()


@needs_no_gpu
def test_configuration_is_empty_without_gpu(dsn: str) -> None:
    assert gpu_configuration(dsn) == []


@needs_no_gpu
def test_usage_reports_cpu_of_gpdl_sessions(dsn: str, sessions) -> None:
    busy_conn, _ = sessions["gpdl:test segment 0"]
    with busy_conn.cursor() as cur:  # rows on every segment: Greenplum's segments spin
        cur.execute("CREATE TEMP TABLE spin AS SELECT g AS k FROM generate_series(1, 1000) g")
    started = threading.Event()

    def spin() -> None:
        with busy_conn.cursor() as cur:
            started.set()
            with contextlib.suppress(psycopg2.Error):  # cancelled below
                cur.execute("SELECT count(*) FROM spin, generate_series(1, 1000000)")

    worker = threading.Thread(target=spin)
    worker.start()
    started.wait()
    try:
        for _ in range(20):  # the statement reaches the segments, on a loaded machine too
            time.sleep(0.25)
            rows = gpu_usage(dsn)
            if _utilization(rows, "gpdl:test segment 0") > 10:
                break
        backends = _backends(dsn)  # on Greenplum, the sessions' segment processes too
    finally:
        busy_conn.cancel()
        worker.join()
    assert {r["kind"] for r in rows} == {"cpu"}
    host = [r for r in rows if r["device"] == "host"]
    assert len(host) == 1
    assert set(host[0]["pids"]) >= {pid for _, pid in sessions.values()}
    assert 0 < host[0]["memory_used_mb"] < host[0]["memory_total_mb"]
    assert len({(r["host"], r["device"]) for r in rows}) == len(rows)  # merged per host
    by_name = {r["device"]: r for r in rows}
    for name, (_, pid) in sessions.items():
        row = by_name[name]
        assert pid in row["pids"] and row["sessions"] == [name]
        assert set(row["pids"]) >= {p for p, n in backends if n == name}
        assert 0 < row["memory_used_mb"] < row["memory_total_mb"]
        assert row["utilization"] >= 0
    assert by_name["gpdl:test segment 0"]["utilization"] > 10  # busy counting


def test_usage_without_gpdl_sessions_has_host_row(dsn: str) -> None:
    rows = gpu_usage(dsn)
    kinds = {r["kind"] for r in rows}
    assert kinds in ({"cpu"}, {"gpu"})
    if kinds == {"cpu"}:
        assert [r["device"] for r in rows if r["device"] == "host"] == ["host"]
