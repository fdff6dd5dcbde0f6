"""GPU (or, without GPUs, CPU) utilization and memory of every database host, over time.

The numbers come from the database side (``gpdl.gpu_status()``, through ``api.gpu_usage``)
because the GPUs sit on the segment hosts, not beside the notebook.

Example::

    GpuMonitor(dsn)                 # live, one sample every 2 s, the last 2 minutes
    GpuMonitor(dsn, live=False)     # one sample (tests, static notebooks)
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from traitlets import Bool, Float, Int, TraitError, Unicode, observe, validate

from gpdl_jupyter import api

from ._support import (
    MIN_REFRESH_SECONDS,
    Updater,
    chart_box,
    error_output,
    report,
    style_tag,
    sync_figure,
)
from .theme import Theme, get_theme, series_colour

__all__ = ["GpuMonitor"]

Device = tuple[str, str, str]
"""``(host, kind, device)``: one line in each chart."""
Sample = tuple[float, float | None, float | None, float | None]
"""``(time, utilization %, memory used MB, memory total MB)``."""

NO_GPU_TEXT = ("No GPU on the database hosts: showing each host's CPU and memory and every "
               "gpdl segment backend's (a backend's CPU is in % of one core).")


class GpuMonitor(widgets.VBox):
    """Utilization and memory per host and device (GPU, else CPU), over a sliding window.

    Args:
        dsn: where the database is.
        live: sample from one background thread every ``refresh`` seconds.
            Defaults to True; False takes one sample (deterministic layout).
        refresh: seconds between samples, at least 0.5. Defaults to 2.0.
        window: seconds of history shown. Defaults to 120.
        theme: ``"notebook"``, ``"presentation"`` or a ``Theme``. Defaults to notebook.
        usage: reads the rows (for tests). Defaults to ``api.gpu_usage``.

    Raises:
        FatalError: the database cannot be reached for the first sample.
    """

    refresh_seconds = Float(2.0, help="seconds between samples while live")
    window = Float(120.0, help="seconds of history shown")
    has_gpus = Bool(False, help="whether any database host reported a GPU")
    devices_count = Int(0, help="devices (GPUs, or host CPUs and backends) in the last sample")
    error = Unicode("", help="the last error shown")

    def __init__(self, dsn: str, live: bool = True, refresh: float = 2.0, window: float = 120,
                 theme: Theme | str | None = None,
                 usage: Callable[[str], list[dict]] | None = None, **kwargs: Any) -> None:
        self.dsn = dsn
        self.theme = get_theme(theme)
        self._usage = usage or (lambda dsn: api.gpu_usage(dsn=dsn))
        self._lock = threading.RLock()
        self._history: dict[Device, deque[Sample]] = {}
        self._traces: dict[Device, int] = {}
        self.rows: list[dict] = []

        self.label = widgets.HTML()
        figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                               subplot_titles=("utilization (%)", "memory used (GB)"))
        self.figure = go.FigureWidget(figure)
        self.figure.update_layout(**self.theme.layout(
            height=int(self.theme.height * 1.25), legend=dict(title="device")))
        self.figure.update_xaxes(title_text="seconds ago", row=2, col=1)
        self.table = widgets.HTML()
        self.errors = error_output()
        super().__init__(children=[style_tag(self.theme.css()), self.label,
                                   chart_box(self.figure), self.table, self.errors], **kwargs)
        self.add_class(self.theme.css_class)
        self.add_class("gpdl-gpu-monitor")
        self.refresh_seconds, self.window = refresh, window
        self._updater = Updater(self._tick, self.refresh_seconds, self._report,
                                name="gpdl-gpu-monitor")
        self.refresh()
        if live:
            self._updater.start()

    # --- public API -------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """Whether the background sampler is running."""
        return self._updater.alive

    @property
    def traces_count(self) -> int:
        """Traces in the chart: two per device (utilization, memory)."""
        return len(self.figure.data)

    def devices(self) -> list[Device]:
        """``(host, kind, device)`` of every device seen, in first-seen order."""
        return list(self._history)

    def snapshot(self) -> go.Figure:
        """A static copy of the chart (for exported HTML and slides, where widgets do not run)."""
        with self._lock:
            return go.Figure(self.figure)

    def refresh(self) -> list[dict]:
        """Take one sample now and redraw; returns the rows read.

        Raises:
            FatalError: the database cannot be reached.
        """
        rows = self._usage(self.dsn)
        self._record(rows, time.time())
        return rows

    def start(self) -> None:
        """Sample in the background (again)."""
        self._updater.start()

    def stop(self) -> None:
        """Stop sampling; the charts keep what they show."""
        self._updater.stop()

    def close(self) -> None:
        updater = getattr(self, "_updater", None)
        if updater is not None:
            updater.stop(timeout=1.0)
        super().close()

    # --- validation and observers --------------------------------------------------------
    @validate("refresh_seconds")
    def _check_refresh(self, proposal: dict) -> float:
        if proposal["value"] < MIN_REFRESH_SECONDS:
            raise TraitError(f"refresh must be at least {MIN_REFRESH_SECONDS} seconds")
        return proposal["value"]

    @validate("window")
    def _check_window(self, proposal: dict) -> float:
        if proposal["value"] <= 0:
            raise TraitError("window must be a positive number of seconds")
        return proposal["value"]

    @observe("refresh_seconds")
    def _refresh_changed(self, change: dict) -> None:
        if hasattr(self, "_updater"):
            self._updater.interval = change["new"]

    # --- drawing -------------------------------------------------------------------------
    def _tick(self) -> bool:
        self.refresh()
        return True

    def _report(self, error: BaseException) -> None:
        message = report(self.errors, error)
        if self.error != message:
            self.error = message

    def _record(self, rows: list[dict], now: float) -> None:
        with self._lock:
            self.rows = rows
            for row in rows:
                device = (str(row["host"]), str(row["kind"]), str(row["device"]))
                self._history.setdefault(device, deque()).append((
                    now, _number(row.get("utilization")), _number(row.get("memory_used_mb")),
                    _number(row.get("memory_total_mb"))))
            for samples in self._history.values():
                while samples and samples[0][0] < now - self.window:
                    samples.popleft()
            gpus = any(row["kind"] == "gpu" for row in rows)
            if self.has_gpus != gpus:
                self.has_gpus = gpus
            if self.devices_count != len(rows):
                self.devices_count = len(rows)
            self._draw(now)

    def _draw(self, now: float) -> None:
        new = [d for d in self._history if d not in self._traces]
        if new:
            start = len(self.figure.data)
            for offset, device in enumerate(new):
                index = len(self._traces)
                self._traces[device] = start + 2 * offset
                colour = series_colour(index)
                name = _device_name(device)
                for row, show in ((1, True), (2, False)):
                    self.figure.add_trace(go.Scatter(
                        x=[], y=[], name=name, legendgroup=name, showlegend=show,
                        mode="lines+markers", line=dict(color=colour),
                        marker=dict(color=colour), meta={"device": list(device)}),
                        row=row, col=1)
        with self.figure.batch_update():
            for device, index in self._traces.items():
                samples = list(self._history.get(device, ()))
                xs = [round(t - now, 1) for t, *_ in samples]
                utilization, memory = self.figure.data[index], self.figure.data[index + 1]
                utilization.x, utilization.y = xs, [s[1] for s in samples]
                memory.x = xs
                memory.y = [None if s[2] is None else round(s[2] / 1024, 3) for s in samples]
                memory.hovertemplate = (f"{html.escape(_device_name(device))}<br>"
                                        "%{y:.2f} GB<extra></extra>")
            self.figure.update_xaxes(range=[-self.window, 0])
        sync_figure(self.figure)
        self.label.value = _label(self.rows)
        self.table.value = _table(self.rows)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _device_name(device: Device) -> str:
    host, kind, name = device
    if kind == "gpu":
        return f"{host} GPU {name}"
    return f"{host} CPU" if name == "host" else f"{host} {name}"


def _label(rows: list[dict]) -> str:
    gpus = [r for r in rows if r["kind"] == "gpu"]
    if not gpus:
        return f"<b>CPU</b> · {html.escape(NO_GPU_TEXT)}"
    hosts = len({r["host"] for r in gpus})
    return f"<b>GPU</b> · {len(gpus)} GPUs on {hosts} host{'s' if hosts > 1 else ''}"


def _table(rows: list[dict]) -> str:
    head = "<th>host</th><th>device</th><th>utilization %</th><th>memory MB</th>" \
           "<th>of MB</th><th>gpdl sessions</th>"
    body = []
    for row in rows:
        utilization = _number(row.get("utilization"))
        used, total = _number(row.get("memory_used_mb")), _number(row.get("memory_total_mb"))
        device = f"GPU {row['device']}" if row["kind"] == "gpu" else str(row["device"])
        cells = [row["host"], device,
                 "–" if utilization is None else f"{utilization:.0f}",
                 "–" if used is None else f"{used:,.0f}",
                 "–" if total is None else f"{total:,.0f}",
                 ", ".join(row.get("sessions") or []) or "–"]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return (f'<table class="gpdl-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')
