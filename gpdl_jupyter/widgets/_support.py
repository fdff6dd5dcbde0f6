"""What the widgets share: the one background updater thread and error reporting."""

from __future__ import annotations

import contextvars
import threading
import traceback
from collections.abc import Callable
from copy import deepcopy

import anywidget
import ipywidgets as widgets
import plotly.graph_objects as go
import psycopg2

from gpdl_backend.errors import GpdlError

MIN_REFRESH_SECONDS = 0.5
"""The fastest a live widget re-reads the database (its throttle)."""
MAX_ERRORS_SHOWN = 5


class Updater:
    """One daemon thread calling ``tick`` every ``interval`` seconds.

    ``tick`` returns whether to go on (False once a job has ended); an
    exception goes to ``on_error`` and the thread goes on (the database may
    come back). The thread runs in a copy of the starting context, so
    ipykernel's parent header travels with it and its output lands in the
    cell that made the widget.
    """

    def __init__(self, tick: Callable[[], bool], interval: float,
                 on_error: Callable[[BaseException], None], name: str) -> None:
        self.tick = tick
        self.interval = max(MIN_REFRESH_SECONDS, float(interval))
        self.on_error = on_error
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once; a running updater is left alone)."""
        if self.alive:
            return
        self._stop.clear()
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,),
                                        name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Ask the thread to end and wait for it (not from the thread itself)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.tick():
                    return
            except Exception as error:  # shown in the widget, the thread goes on
                self.on_error(error)


def error_output() -> widgets.Output:
    """The Output a widget shows its errors in."""
    return widgets.Output(layout=widgets.Layout(max_height="12em", overflow="auto"))


def describe_error(error: BaseException) -> str:
    """One line for gpdl's and the database's errors; a traceback for anything else."""
    if isinstance(error, GpdlError):
        return f"{type(error).__name__}: {error}".strip()
    if isinstance(error, psycopg2.Error):
        return f"database error: {str(error).strip()}"
    return "".join(traceback.format_exception(error)).strip()


def report(output: widgets.Output, error: BaseException) -> str:
    """Show ``error`` in ``output`` (not twice in a row, the last few only); returns it."""
    message = describe_error(error)
    shown = [o for o in output.outputs if o.get("name") == "stderr"]
    if shown and shown[-1].get("text", "").rstrip("\n") == message:
        return message
    kept = tuple(shown[-(MAX_ERRORS_SHOWN - 1):])
    output.outputs = (*kept, {"output_type": "stream", "name": "stderr",
                              "text": message + "\n"})
    return message


def guarded(output: widgets.Output, on_message: Callable[[str], None],
            action: Callable[..., object]) -> Callable[..., None]:
    """A UI callback that runs ``action`` and shows what it raises instead of losing it."""

    def run(*args: object) -> None:
        try:
            action(*args)
        except Exception as error:
            on_message(report(output, error))

    return run


def auto_width() -> widgets.Layout:
    """A control as wide as its label (the default width cuts "Stop configuration")."""
    return widgets.Layout(width="auto")


def style_tag(css: str) -> widgets.HTML:
    """An invisible HTML widget that carries a theme's ``<style>`` block."""
    return widgets.HTML(css, layout=widgets.Layout(height="0px", margin="0px"))


class _WidthWatcher(anywidget.AnyWidget):
    """An empty line that tells plotly's charts to re-measure when its width changes.

    plotly's widget (anywidget) draws when its view is made, before the view
    is in the page, so plotly.js finds no width and keeps its 700 px default;
    anywidget passes it no resize either. This line is in the page with the
    chart; a ResizeObserver on it fires once it has its width and whenever the
    output's width changes (window, side panels), and sends the window
    ``resize`` event that charts with plotly's ``responsive`` config follow.
    """

    _esm = """
function render({ el }) {
  let last = 0;
  const observer = new ResizeObserver((entries) => {
    const width = Math.round(entries[entries.length - 1].contentRect.width);
    if (width > 0 && width !== last) {
      last = width;
      window.dispatchEvent(new Event("resize"));
    }
  });
  observer.observe(el);
  return () => observer.disconnect();
}
export default { render };
"""


def chart_box(figure: go.FigureWidget) -> widgets.VBox:
    """``figure`` in a box that fills its row, the chart redrawn to the box's width.

    The chart must have no fixed ``width`` in its plotly layout (autosize
    does the rest); the layout itself is not changed, so ``snapshot()``
    copies stay as they were. Put the box where the figure would go.

    Example::

        self.figure = go.FigureWidget(layout=theme.layout())
        children = [header, chart_box(self.figure), table]
    """
    figure._config = {**figure._config, "responsive": True}
    return widgets.VBox([figure, _WidthWatcher(layout=widgets.Layout(height="0px"))],
                        layout=widgets.Layout(flex="1 1 auto", min_width="0"))


def sync_figure(figure: go.FigureWidget) -> None:
    """Store the figure's whole current state in the widget's synced traits.

    Plotly sends edits as one-off messages and refreshes the synced
    ``_widget_data`` / ``_widget_layout`` only when the figure itself is
    displayed, never as a child of a box. A view made later (a page reload,
    or a front end still loading plotly's module during kernel start-up)
    draws from those traits, so without this it shows empty axes.
    """
    data, layout = deepcopy(figure._data), deepcopy(figure._layout_obj._props)
    if figure._widget_data != data:
        figure._widget_data = data
    if figure._widget_layout != layout:
        figure._widget_layout = layout
