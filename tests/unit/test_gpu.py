"""The GPU reporter's NVML path, with a stand-in for pynvml (no GPU needed)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from gpdl_backend.gpu_monitor import merge_usage
from gpdl_backend.server import gpu


class FakeNVML:
    """The few pynvml calls gpu.py makes, for two GPUs."""

    NVMLError = RuntimeError

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"Tesla P100-PCIE-16GB"  # old pynvml versions return bytes

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=16 * 2**30, used=(handle + 1) * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        if handle == 1:
            raise self.NVMLError("not supported")
        return SimpleNamespace(gpu=87)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list:
        return [SimpleNamespace(pid=4242), SimpleNamespace(pid=99)] if handle == 0 else []


def test_configuration_lists_devices() -> None:
    rows = gpu.gpu_configuration({gpu._NVML: FakeNVML()})
    host = rows[0][0]
    assert rows == [(host, 0, "Tesla P100-PCIE-16GB", 16384.0, "550.54.15"),
                    (host, 1, "Tesla P100-PCIE-16GB", 16384.0, "550.54.15")]


def test_usage_names_gpdl_sessions_on_each_gpu() -> None:
    rows = gpu.gpu_usage({gpu._NVML: FakeNVML()}, [(4242, "gpdl:segment 0")])
    first, second = rows
    assert first[1:] == ("gpu", "0", 87.0, 1024.0, 16384.0, [99, 4242], ["gpdl:segment 0"])
    assert second[1:3] == ("gpu", "1") and second[3] != second[3]  # NaN: not supported
    assert second[6:] == ([], [])


def test_no_nvml_means_no_gpus() -> None:
    assert gpu.gpu_configuration({gpu._NVML: None}) == []
    rows = gpu.gpu_usage({gpu._NVML: None}, [])
    assert [r[1:3] for r in rows] == [("cpu", "host")]


def test_cpu_rows_keep_this_servers_backends_one_row_per_session() -> None:
    me, parent = os.getpid(), os.getppid()
    sessions = [(me, "gpdl:segment 0"), (parent, "gpdl:segment 0"), (1, "gpdl:elsewhere")]
    rows = gpu.gpu_usage({gpu._NVML: None}, sessions, parent=parent)
    host, *backends = rows
    assert host[1:3] == ("cpu", "host") and host[6:] == ([me], ["gpdl:segment 0"])
    assert [r[2] for r in backends] == ["gpdl:segment 0"]  # pid 1 is no child of parent
    assert backends[0][6:] == ([me], ["gpdl:segment 0"]) and backends[0][4] > 0
    everything = gpu.gpu_usage({gpu._NVML: None}, sessions)
    assert [(r[2], r[6]) for r in everything[1:]] == [
        ("gpdl:elsewhere", [1]), ("gpdl:segment 0", sorted([me, parent]))]


def test_merge_joins_the_answers_of_instances_on_one_host() -> None:
    def row(device: str, utilization: float, memory: float, pids: list[int],
            kind: str = "cpu") -> dict:
        sessions = [] if device == "host" else [device]
        return {"host": "h", "kind": kind, "device": device, "utilization": utilization,
                "memory_used_mb": memory, "memory_total_mb": 100.0, "pids": pids,
                "sessions": sessions}

    rows = [row("host", 50.0, 40.0, [7]), row("gpdl:s", 90.0, 8.0, [7]),
            row("host", 51.0, 41.0, [9]), row("gpdl:s", 5.0, 2.0, [9]),
            row("gpdl:t", 1.0, 1.0, [11]), row("0", 80.0, 10.0, [7, 9], "gpu"),
            row("0", 81.0, 11.0, [7, 9], "gpu")]
    rows[0]["sessions"], rows[2]["sessions"] = ["gpdl:s"], ["gpdl:s", "gpdl:t"]
    merged = merge_usage(rows)
    assert [(r["kind"], r["device"]) for r in merged] == [
        ("cpu", "host"), ("cpu", "gpdl:s"), ("cpu", "gpdl:t"), ("gpu", "0")]
    host, s, _, gpu_row = merged
    assert (host["utilization"], host["memory_used_mb"], host["pids"], host["sessions"]) == (
        50.0, 40.0, [7, 9], ["gpdl:s", "gpdl:t"])
    assert (s["utilization"], s["memory_used_mb"], s["pids"]) == (95.0, 10.0, [7, 9])
    assert (gpu_row["utilization"], gpu_row["pids"]) == (80.0, [7, 9])
