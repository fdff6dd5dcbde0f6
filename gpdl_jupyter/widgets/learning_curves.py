"""Live learning curves of a training job: every configuration in one chart, a table, stop.

The widget reads the job's tables (``gpdl_backend.mop.progress``), so it can
re-attach to a running or finished job by name, after a kernel restart too.

Example::

    job = fit_multiple_model(dsn, "train_packed", "models", "mst", 5, background=True)
    curves = LearningCurves(dsn, job)          # or LearningCurves(dsn, "models")
    curves                                     # live, from one background thread
    curves.wait()                              # blocks until the job ends
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, observe, validate

from gpdl_backend.errors import UsageError
from gpdl_backend.mop.job import JobStatus, TrainingJob
from gpdl_backend.mop.progress import (
    Best,
    ConfigProgress,
    JobProgress,
    describe_hyperparameters,
    read_progress,
)
from gpdl_jupyter import api

from ._config_table import (
    columns_of,
    config_label,
    config_phrases,
    config_rows,
    render_table,
    shared_hyperparameters,
    sort_rows,
)
from ._names import model_names
from ._steering import SteeringControls
from ._support import (
    MIN_REFRESH_SECONDS,
    Updater,
    auto_width,
    chart_box,
    error_output,
    guarded,
    report,
    style_tag,
    sync_figure,
)
from .theme import Theme, config_colour, get_theme

__all__ = ["LearningCurves"]

SIDES = ("validation", "training", "hops")
"""The traces of each configuration, in this order: evaluated validation and
training values, and the training values of every hop (live between evaluations)."""
_DASH = {"validation": "solid", "training": "dash", "hops": "dot"}
_SHOWN = {"both": SIDES, "training": ("training", "hops"), "validation": ("validation",)}


class LearningCurves(widgets.VBox):
    """Training and validation curves of every configuration of a job, live.

    Args:
        dsn: where the database is.
        job: a ``TrainingJob`` or the job's output table name (re-attaches).
        live: re-read the tables from one background thread until the job
            ends. Defaults to True; False draws once (deterministic).
        refresh: seconds between reads, at least 0.5. Defaults to 2.0.
        metric: ``"loss"`` or ``"metric"`` (the compiled metric). Defaults to ``"loss"``.
        show: ``"both"``, ``"training"`` or ``"validation"``. Defaults to ``"both"``.
        theme: ``"notebook"``, ``"presentation"`` or a ``Theme``. Defaults to notebook.
        hops: draw the per-hop training values (dotted). Defaults to True.

    Raises:
        UsageError: no such job (before anything is drawn).
    """

    metric = Enum(("loss", "metric"), default_value="loss", help="what the curves show")
    show = Enum(tuple(_SHOWN), default_value="both", help="which curves are shown")
    sort_by = Unicode("mst_key", help="the table's sort column")
    descending = Bool(False, help="sort the table in descending order")
    refresh_seconds = Float(2.0, help="seconds between reads while live")
    status = Unicode("", help="the job's status at the last read")
    best_mst_key = Int(None, allow_none=True, help="the best configuration so far")
    error = Unicode("", help="the last error shown")

    def __init__(self, dsn: str, job: TrainingJob | str, live: bool = True,
                 refresh: float = 2.0, metric: str = "loss", show: str = "both",
                 theme: Theme | str | None = None, hops: bool = True, **kwargs: Any) -> None:
        self.dsn = dsn
        self.job = job if isinstance(job, TrainingJob) else TrainingJob.attach(dsn, job)
        self.theme = get_theme(theme)
        self.progress: JobProgress | None = None
        self._sides = SIDES if hops else SIDES[:2]
        self._lock = threading.RLock()
        self._traces: dict[tuple[int, str], int] = {}
        self._drawn: tuple | None = None
        self.names: dict[int, str] = {}  # model_id → the name it was saved with

        self.header = widgets.HTML()
        self.metric_buttons = widgets.ToggleButtons(options=[("Loss", "loss"),
                                                             ("Metric", "metric")])
        self.show_buttons = widgets.ToggleButtons(options=[
            ("Both", "both"), ("Training", "training"), ("Validation", "validation")])
        self.figure = go.FigureWidget(layout=self.theme.layout(
            xaxis=dict(title="iteration", rangemode="tozero"),
            legend=dict(orientation="h", yanchor="top", y=-0.18, x=0, xanchor="left"),
            margin=dict(l=70, r=20, t=40 + 2 * self.theme.title_size, b=60)))
        self.sort_dropdown = widgets.Dropdown(description="Sort by")
        self.order_button = widgets.ToggleButton(description="descending", icon="sort-amount-desc",
                                                 layout=auto_width())
        self.table = widgets.HTML()
        self.config_dropdown = widgets.Dropdown(description="Configuration",
                                                style={"description_width": "initial"},
                                                layout=widgets.Layout(width="auto"))
        self.stop_config_button = widgets.Button(description="Stop configuration",
                                                 icon="stop", button_style="warning",
                                                 layout=auto_width())
        self.stop_job_button = widgets.Button(description="Stop job", icon="stop-circle",
                                              button_style="danger", layout=auto_width())
        self.steering = SteeringControls(dsn, str(self.job.output.model), self._chosen,
                                         self.refresh)
        self.errors = error_output()
        super().__init__(children=[
            style_tag(self.theme.css()), self.header,
            widgets.HBox([self.metric_buttons, self.show_buttons]), chart_box(self.figure),
            widgets.HBox([self.sort_dropdown, self.order_button]), self.table,
            widgets.HBox([self.config_dropdown, self.stop_config_button,
                          self.stop_job_button]),
            self.steering, self.errors], **kwargs)
        self.add_class(self.theme.css_class)
        self.add_class("gpdl-learning-curves")

        self.metric, self.show, self.refresh_seconds = metric, show, refresh
        widgets.link((self, "metric"), (self.metric_buttons, "value"))
        widgets.link((self, "show"), (self.show_buttons, "value"))
        widgets.link((self, "descending"), (self.order_button, "value"))
        self.sort_dropdown.observe(self._sort_chosen, names="value")
        self.config_dropdown.observe(self._update_stop_buttons, names="value")
        self.stop_config_button.on_click(guarded(self.errors, self._set_error,
                                                 lambda _: self._stop_selected()))
        self.stop_job_button.on_click(guarded(self.errors, self._set_error,
                                              lambda _: self.stop()))

        self._updater = Updater(self._tick, self.refresh_seconds, self._report,
                                name=f"gpdl-curves-{self.job.output.model}")
        self.refresh()
        if live and self.progress is not None and self.progress.running:
            self._updater.start()

    # --- public API -------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """Whether the background updater is running."""
        return self._updater.alive

    @property
    def traces_count(self) -> int:
        """Traces in the chart (``len(SIDES)`` per configuration, or 2 without hops)."""
        return len(self.figure.data)

    @property
    def configs_count(self) -> int:
        """Configurations drawn (one legend entry each)."""
        return len({mst for mst, _ in self._traces})

    def traces_for(self, mst_key: int) -> dict[str, go.Scatter]:
        """The traces of one configuration, by side (validation, training, hops)."""
        return {side: self.figure.data[index]
                for (mst, side), index in self._traces.items() if mst == mst_key}

    def snapshot(self) -> go.Figure:
        """A static copy of the chart (for exported HTML and slides, where widgets do not run)."""
        with self._lock:
            return go.Figure(self.figure)

    def refresh(self) -> JobProgress:
        """Read the job's tables now and redraw what changed.

        Raises:
            UsageError: the job's tables are gone.
            FatalError: the database cannot be reached.
        """
        progress = read_progress(self.dsn, str(self.job.output.model))
        if any(c.model_id is not None and c.model_id not in self.names
               for c in progress.configs):
            self.names = model_names(self.dsn, str(self.job.output.model))
        self._show(progress)
        return progress

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job ends (or ``timeout`` seconds), then draw its final state."""
        try:
            status = self.job.wait(timeout)
        finally:
            progress = self.refresh()
            if not progress.running:
                self._updater.stop()
        return status

    def stop(self, mst_key: int | None = None) -> None:
        """Stop one configuration (the others go on), or the whole job with None."""
        api.stop(str(self.job.output.model), mst_key=mst_key, dsn=self.dsn)
        self.refresh()

    def _chosen(self) -> ConfigProgress | None:
        """The configuration chosen in the dropdown (None before the first read)."""
        progress = self.progress
        if progress is None:
            return None
        return next((c for c in progress.configs if c.mst_key == self.config_dropdown.value),
                    None)

    def _stop_selected(self) -> None:
        if self.config_dropdown.value is None:
            raise UsageError("choose a configuration to stop first")
        self.stop(self.config_dropdown.value)

    def close(self) -> None:
        updater = getattr(self, "_updater", None)
        if updater is not None:
            updater.stop(timeout=1.0)
        super().close()

    # --- validation and observers --------------------------------------------------------
    @validate("refresh_seconds")
    def _check_refresh(self, proposal: dict) -> float:
        value = proposal["value"]
        if value < MIN_REFRESH_SECONDS:
            raise TraitError(f"refresh must be at least {MIN_REFRESH_SECONDS} seconds")
        return value

    @validate("sort_by")
    def _check_sort(self, proposal: dict) -> str:
        value = proposal["value"]
        known = [key for _, key in self.sort_dropdown.options]
        if known and value not in known:
            raise TraitError(f"cannot sort by {value!r}; columns: {', '.join(known)}")
        return value

    @observe("refresh_seconds")
    def _refresh_changed(self, change: dict) -> None:
        if hasattr(self, "_updater"):
            self._updater.interval = change["new"]

    @observe("metric", "show")
    def _view_changed(self, change: dict) -> None:
        if self.progress is not None and change["old"] != change["new"]:
            self._show(self.progress, force=True)

    @observe("sort_by", "descending")
    def _order_changed(self, change: dict) -> None:
        if self.sort_dropdown.value != self.sort_by and self.sort_dropdown.options:
            self.sort_dropdown.value = self.sort_by
        if self.progress is not None and change["old"] != change["new"]:
            self._draw_table(self.progress)

    def _sort_chosen(self, change: dict) -> None:
        if change["new"] is not None and change["new"] != self.sort_by:
            self.sort_by = change["new"]

    # --- drawing -------------------------------------------------------------------------
    def _tick(self) -> bool:
        return self.refresh().running

    def _report(self, error: BaseException) -> None:
        self._set_error(report(self.errors, error))

    def _set_error(self, message: str) -> None:
        if self.error != message:
            self.error = message

    def _show(self, progress: JobProgress, force: bool = False) -> None:
        with self._lock:
            self.progress = progress
            drawn = (progress.fingerprint(), self.metric, self.show)
            if not force and drawn == self._drawn:
                return
            best = progress.best(self.metric, "training" if self.show == "training" else None)
            best_key = best.mst_key if best else None
            if self.best_mst_key != best_key:
                self.best_mst_key = best_key
            self._draw_figure(progress, best)
            self._draw_table(progress)
            self._draw_controls(progress)
            self._drawn = drawn

    def _draw_figure(self, progress: JobProgress, best: Best | None) -> None:
        new = [c for c in progress.configs if (c.mst_key, "training") not in self._traces]
        if new:
            start = len(self.figure.data)
            traces = [self._new_trace(c, side, _legend_name(c, progress, self.names))
                      for c in new for side in self._sides]
            self.figure.add_traces(traces)
            for offset, (config, side) in enumerate(
                    (c, s) for c in new for s in self._sides):
                self._traces[(config.mst_key, side)] = start + offset
        shown = _SHOWN[self.show]
        theme = self.theme
        with self.figure.batch_update():
            for config in progress.configs:
                legend_side = next((s for s in self._sides if s in shown and (
                    s != "validation" or progress.has_validation)), None)
                # A configuration added later (a clone) can change what the others share.
                name = _legend_name(config, progress, self.names)
                for side in self._sides:
                    trace = self.figure.data[self._traces[(config.mst_key, side)]]
                    if trace.name != name:
                        trace.name = name
                    series = config.series(side, self.metric)
                    is_best = best is not None and best.mst_key == config.mst_key \
                        and best.side == side
                    trace.x, trace.y = series.x, series.y
                    trace.visible = side in shown and (side != "validation"
                                                       or progress.has_validation)
                    trace.showlegend = side == legend_side
                    trace.hovertemplate = _hover(config, side, self._measure_name(config),
                                                 self.names)
                    trace.line.width = (theme.best_line_width if is_best
                                        else theme.line_width / (2 if side == "hops" else 1))
                    trace.marker.size = theme.marker_size * (1.6 if is_best else 1)
            self.figure.layout.yaxis.title.text = self._measure_name(
                progress.configs[0] if progress.configs else None)
            last = max((x for c in progress.configs for side in self._sides
                        for x in c.series(side, self.metric).x), default=0.0)
            # While it runs, the axis shows the whole job; once ended (a stopped job, a
            # search that stopped early), only what was trained.
            planned = progress.num_iterations if progress.running else 0
            right = max(planned, last, 1) * 1.02
            self.figure.layout.xaxis.range = [0, right]
            self._fit_y(progress, shown)
            self.figure.layout.title.text = _title(progress)
            self.figure.layout.annotations = _best_annotation(
                best, theme, self._best_text(best, progress), right)
        sync_figure(self.figure)

    def _fit_y(self, progress: JobProgress, shown: tuple[str, ...]) -> None:
        """The y axis spans the evaluated values shown, so the first hops' high losses
        (from iteration 0.5 on) do not squash the curves; hops alone: autorange."""
        values = [y for c in progress.configs for side in ("validation", "training")
                  if side in shown and (side != "validation" or progress.has_validation)
                  for y in c.series(side, self.metric).y if y is not None]
        axis = self.figure.layout.yaxis
        if not values:
            axis.autorange = True
            return
        low, high = min(values), max(values)
        pad = (high - low) * 0.1 or abs(high) * 0.05 or 0.05
        axis.range = [low - pad, high + pad]

    def _best_text(self, best: Best | None, progress: JobProgress) -> str:
        """``best validation accuracy 0.8437 · cnn-8 · lr=0.003`` (``lowest ... loss``)."""
        if best is None:
            return ""
        config = progress.config(best.mst_key)
        measure = self._measure_name(config)
        higher = best.measure == "metric" and config.higher_is_better
        side = "training, per hop" if best.side == "hops" else best.side
        return (f"{'best' if higher else 'lowest'} {side} {measure} {best.value:.4g} · "
                f"{_legend_name(config, progress, self.names)}")

    def _new_trace(self, config: ConfigProgress, side: str, name: str) -> go.Scatter:
        colour = config_colour(config.mst_key)
        return go.Scatter(
            x=[], y=[], name=name,
            legendgroup=f"mst {config.mst_key}", mode="lines" if side == "hops"
            else "lines+markers", line=dict(color=colour, dash=_DASH[side]),
            marker=dict(color=colour), opacity=0.55 if side == "hops" else 1.0,
            meta={"mst_key": config.mst_key, "side": side})

    def _measure_name(self, config: ConfigProgress | None) -> str:
        if self.metric == "loss":
            return "loss"
        return (config.metric_name if config and config.metric_name else "metric")

    def _draw_table(self, progress: JobProgress) -> None:
        columns = columns_of(progress)
        options = [(title, key) for key, title in columns]
        if self.sort_dropdown.options != tuple(options):
            self.sort_dropdown.options = options
        if self.sort_dropdown.value != self.sort_by:
            self.sort_dropdown.value = self.sort_by if self.sort_by in dict(columns) \
                else "mst_key"
        best = self.best_mst_key
        rows = sort_rows(config_rows(progress, self.names), self.sort_by, self.descending)
        text = render_table(rows, columns, best, self.sort_by, self.descending)
        shared = describe_hyperparameters(shared_hyperparameters(progress))
        if shared:  # said once instead of a column of equal values
            text = (f"<div>every configuration: {html.escape(' · '.join(shared))}</div>"
                    + text)
        if self.table.value != text:
            self.table.value = text

    def _draw_controls(self, progress: JobProgress) -> None:
        if self.status != progress.status:
            self.status = progress.status
        options = tuple((config_label(config, self.names), config.mst_key)
                        for config in progress.configs)
        if self.config_dropdown.options != options:
            self.config_dropdown.options = options
        keys = [key for _, key in options]
        if keys and self.config_dropdown.value not in keys:
            self.config_dropdown.value = keys[0]
        header = _header(progress)
        if self.header.value != header:
            self.header.value = header
        self._update_stop_buttons()

    def _update_stop_buttons(self, change: dict | None = None) -> None:
        progress = self.progress
        if progress is None:
            return
        selected = self._chosen()
        self.steering.update(progress)
        job_disabled = not progress.running or progress.stop_requested
        config_disabled = job_disabled or selected is None or \
            selected.status != "training" or selected.stop_requested
        if self.stop_job_button.disabled != job_disabled:
            self.stop_job_button.disabled = job_disabled
        if self.stop_config_button.disabled != config_disabled:
            self.stop_config_button.disabled = config_disabled
        # A job that ended has nothing to stop: no bright buttons that do nothing.
        display = "" if progress.running else "none"
        for button in (self.stop_config_button, self.stop_job_button):
            if button.layout.display != display:
                button.layout.display = display


def _title(progress: JobProgress) -> str:
    return (f"{html.escape(progress.output)}<br><sup>solid: validation · dashed: training · "
            "dotted: training, per hop</sup>")


def _legend_name(config: ConfigProgress, progress: JobProgress,
                 names: dict[int, str] | None = None) -> str:
    """What sets a configuration apart (its model's name, the hyperparameters that vary
    in this job), then ``mst 3``: ``cnn-8 · Adam lr=0.001 · mst 3``."""
    described = {c.mst_key: config_phrases(c, names) for c in progress.configs}
    shared = set.intersection(*(set(v) for v in described.values())) \
        if len(described) > 1 else set()
    own = described.get(config.mst_key) or config_phrases(config, names)
    return " · ".join([*(p for p in own if p not in shared), f"mst {config.mst_key}"])


def _header(progress: JobProgress) -> str:
    colour = {"running": "#1f77b4", "finished": "#2ca02c", "stopped": "#ff7f0e",
              "failed": "#d62728"}.get(progress.status, "#7f7f7f")
    stopping = " (stopping)" if progress.stop_requested and progress.running else ""
    error = (f'<br><span style="color:#d62728">{html.escape(progress.error)}</span>'
             if progress.error else "")
    return (f"<b>{html.escape(progress.output)}</b> · "
            f'<span style="color:{colour}">{html.escape(progress.status)}{stopping}</span> · '
            f"iteration {_iteration_text(progress)} of {progress.num_iterations} · "
            f"{len(progress.configs)} configurations · {progress.units_done} hops{error}")


def _iteration_text(progress: JobProgress) -> str:
    """Iterations trained, as the table's iteration column says it (1.5: half of the second)."""
    trained = max((c.iteration for c in progress.configs), default=progress.iterations_done)
    return f"{round(max(trained, progress.iterations_done), 2):.4g}"


def _hover(config: ConfigProgress, side: str, measure: str,
           names: dict[int, str] | None = None) -> str:
    words = html.escape(" · ".join(config_phrases(config, names)))
    what = "training (per hop)" if side == "hops" else side
    return (f"<b>mst {config.mst_key}</b> {what}<br>{words}<br>"
            f"iteration %{{x:.2f}}<br>{html.escape(measure)} %{{y:.4f}}<extra></extra>")


def _best_annotation(best: Best | None, theme: Theme, text: str, right: float) -> list[dict]:
    """The best point's label, on the side of the point with room (never cut at an edge)."""
    if best is None:
        return []
    on_left = best.iteration > right / 2
    return [dict(x=best.iteration, y=best.value, xref="x", yref="y", text=html.escape(text),
                 showarrow=True, arrowhead=2, ax=-30 if on_left else 30, ay=-40,
                 xanchor="right" if on_left else "left",
                 font=dict(size=theme.font_size, color=config_colour(best.mst_key)),
                 bgcolor="rgba(255,255,255,0.8)")]
