"""GPU discovery and live usage of this host, with a CPU fallback (runs inside the server).

``gpu_configuration`` lists the host's GPUs through NVML (``pynvml`` from
nvidia-ml-py). ``gpu_usage`` reports each GPU's utilization and memory; on a
host without GPUs (NVML missing, no driver, or no device) it reports the CPU
instead: one ``host`` row (whole-host CPU % and memory) and one row per gpdl
segment backend (its CPU % and resident memory), so the notebook's GPU monitor
shows where the work happens either way.

The backends are named by the caller: the client lists the server processes
of every session whose ``application_name`` starts with ``gpdl:`` (on
Greenplum a session's segment processes too, which do the training) and
passes their pids and names to every host. A pid means something only on
its own host, so each server instance keeps the pids of its own backends,
the children of its postmaster (``parent``). A session's processes on one
host count together: one row per session, CPU and resident memory summed.
CPU percentages are measured since the previous call in this backend (the
first call samples for a short interval); a process's percentage is of one
core, so a backend using two cores shows 200.

Imports psutil and (when installed) pynvml only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from typing import Any

import psutil

__all__ = ["gpu_configuration", "gpu_usage", "nvml"]

_MB = 2**20
_SAMPLE_SECONDS = 0.2
_NVML = "gpdl.nvml"
_PROCESSES = "gpdl.cpu_processes"
_HOST_PRIMED = "gpdl.cpu_host_primed"


def nvml(GD: Any | None = None) -> Any | None:
    """The initialized ``pynvml`` module, or None without NVML, driver or GPU.

    The answer is kept in ``GD`` (when given): NVML is initialized once per backend.
    """
    if GD is not None and _NVML in GD:
        return GD[_NVML]
    module = None
    try:
        import pynvml

        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() > 0:
            module = pynvml
    except Exception:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, ...
        module = None
    if GD is not None:
        GD[_NVML] = module
    return module


def _text(value: bytes | str) -> str:
    """NVML strings: bytes in old pynvml versions, str in new ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def gpu_configuration(GD: Any | None = None) -> list[tuple[str, int, str, float, str]]:
    """This host's GPUs: ``(host, device index, name, memory total MB, driver)``.

    Returns:
        One row per GPU; none when NVML, the driver or a GPU is missing.

    Example:
        >>> gpu_configuration()
        [('gpu-host-1', 0, 'NVIDIA H100 80GB HBM3', 81559.0, '550.54.15')]
    """
    pynvml = nvml(GD)
    if pynvml is None:
        return []
    host = socket.gethostname()
    driver = _text(pynvml.nvmlSystemGetDriverVersion())
    rows = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        rows.append((host, index, _text(pynvml.nvmlDeviceGetName(handle)),
                     round(memory.total / _MB, 1), driver))
    return rows


UsageRow = tuple[str, str, str, float, float, float, list[int], list[str]]
"""``(host, kind, device, utilization %, memory used MB, memory total MB, pids, sessions)``."""


def gpu_usage(GD: Any, sessions: Iterable[tuple[int, str]],
              parent: int | None = None) -> list[UsageRow]:
    """Live usage of this host's GPUs, or of its CPU and gpdl backends without GPUs.

    Args:
        GD: the backend's global dict (keeps NVML and CPU samples between calls).
        sessions: ``(pid, application_name)`` of the gpdl sessions' server
            processes, possibly of every host.
        parent: keep only the processes whose parent has this pid (the
            postmaster of the server instance answering: pids of other hosts
            may name unrelated processes here). Defaults to None (keep all).

    Returns:
        With GPUs, one ``gpu`` row per device (``pids``: the processes on it,
        ``sessions``: the gpdl sessions among them). Without, a ``cpu`` row
        for the host (device ``host``) and one per gpdl session (device = its
        application name; CPU and memory of its processes here, summed).

    Example:
        >>> gpu_usage(GD, [(4242, "gpdl:segment 0")], parent=os.getppid())[0][:3]
        ('db-host', 'cpu', 'host')
    """
    names = {int(pid): name for pid, name in sessions if _child_of(int(pid), parent)}
    pynvml = nvml(GD)
    if pynvml is not None:
        return _gpu_rows(pynvml, names)
    return _cpu_rows(GD, names)


def _child_of(pid: int, parent: int | None) -> bool:
    """Whether process ``pid`` runs here with parent ``parent`` (always, without one)."""
    if parent is None:
        return True
    try:
        return psutil.Process(pid).ppid() == parent
    except psutil.Error:
        return False


def _gpu_rows(pynvml: Any, names: dict[int, str]) -> list[UsageRow]:
    host = socket.gethostname()
    rows = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            utilization = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except pynvml.NVMLError:
            utilization = float("nan")  # not supported on this device (e.g. a MIG slice)
        try:
            pids = sorted({int(p.pid) for p in
                           pynvml.nvmlDeviceGetComputeRunningProcesses(handle)})
        except pynvml.NVMLError:
            pids = []
        rows.append((host, "gpu", str(index), utilization, round(memory.used / _MB, 1),
                     round(memory.total / _MB, 1), pids,
                     _unique(names[p] for p in pids if p in names)))
    return rows


def _cpu_rows(GD: Any, names: dict[int, str]) -> list[UsageRow]:
    """Host and per-backend CPU rows, percentages measured since the last call."""
    known: dict[int, psutil.Process] = GD.setdefault(_PROCESSES, {})
    for pid in list(known):
        if pid not in names:
            del known[pid]
    fresh = False
    for pid in names:
        if pid not in known:
            try:
                process = psutil.Process(pid)
                process.cpu_percent(None)  # starts the measurement
            except psutil.Error:
                continue
            known[pid] = process
            fresh = True
    if not GD.get(_HOST_PRIMED):
        psutil.cpu_percent(None)
        GD[_HOST_PRIMED] = True
        fresh = True
    if fresh:
        time.sleep(_SAMPLE_SECONDS)
    host = socket.gethostname()
    memory = psutil.virtual_memory()
    total = round(memory.total / _MB, 1)
    by_session: dict[str, tuple[float, int, list[int]]] = {}
    for pid, process in sorted(known.items()):
        try:
            with process.oneshot():
                cpu = process.cpu_percent(None)
                rss = process.memory_info().rss
        except psutil.Error:
            del known[pid]
            continue
        cpu_sum, rss_sum, pids = by_session.get(names[pid], (0.0, 0, []))
        by_session[names[pid]] = (cpu_sum + cpu, rss_sum + rss, [*pids, pid])
    backends = [(host, "cpu", name, float(cpu), round(rss / _MB, 1), total, pids, [name])
                for name, (cpu, rss, pids) in sorted(by_session.items())]
    pids = sorted(pid for row in backends for pid in row[6])
    host_row = (host, "cpu", "host", float(psutil.cpu_percent(None)),
                round((memory.total - memory.available) / _MB, 1), total, pids,
                [row[2] for row in backends])
    return [host_row, *backends]


def _unique(items: Iterable[str]) -> list[str]:
    """The items without repeats, in first-seen order."""
    return list(dict.fromkeys(items))
