"""The GPU reporter's NVML path, with a stand-in for pynvml (no GPU needed)."""

from __future__ import annotations

from types import SimpleNamespace

from gpdl_backend import gpu


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
