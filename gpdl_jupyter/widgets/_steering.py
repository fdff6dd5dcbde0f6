"""The learning-curve widget's controls for a running search: extend, clone.

Shown only for a search (its configurations have budgets). Each button sends one
SQL call (``api.extend`` / ``api.clone``) from a thread, as the driver applies
the request between units; the line beside the buttons says what happened.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

import ipywidgets as widgets

from gpdl_backend.mop import tables
from gpdl_backend.mop.progress import ConfigProgress, JobProgress
from gpdl_backend.mop.steering import EXTENDABLE
from gpdl_jupyter import api

from ._support import auto_width, describe_error

__all__ = ["SteeringControls"]


class SteeringControls(widgets.VBox):
    """Extend the chosen configuration by N iterations, or clone it warm-started.

    Args:
        dsn: the database.
        output: the search's model output table.
        chosen: the configuration chosen in the widget's dropdown (or None).
        on_done: called after a request was applied (the widget re-reads its tables).
    """

    def __init__(self, dsn: str, output: str, chosen: Callable[[], ConfigProgress | None],
                 on_done: Callable[[], object]) -> None:
        self.dsn, self.output, self.chosen, self.on_done = dsn, output, chosen, on_done
        self.iterations = widgets.BoundedIntText(
            value=2, min=1, max=10_000, description="iterations",
            style={"description_width": "initial"}, layout=widgets.Layout(width="11em"))
        self.extend_button = widgets.Button(description="Extend", icon="forward",
                                            layout=auto_width(),
                                            tooltip="train the chosen configuration more")
        self.clone_button = widgets.Button(description="Clone", icon="clone",
                                           layout=auto_width(),
                                           tooltip="a new configuration from its weights")
        self.compile_params = widgets.Text(
            placeholder="compile params (default: the chosen one's)",
            layout=widgets.Layout(width="24em"))
        self.fit_params = widgets.Text(placeholder="fit params (default: the chosen one's)",
                                       layout=widgets.Layout(width="20em"))
        self.message = widgets.HTML()
        self.busy = threading.Event()
        self.thread: threading.Thread | None = None
        super().__init__(children=[
            widgets.HBox([self.iterations, self.extend_button, self.clone_button,
                          self.compile_params, self.fit_params]),
            self.message], layout=widgets.Layout(display="none"))
        self.extend_button.on_click(lambda _: self._start("extend"))
        self.clone_button.on_click(lambda _: self._start("clone"))

    def update(self, progress: JobProgress) -> None:
        """Show the controls for a search; enable what the chosen configuration allows."""
        search = any(config.budget is not None for config in progress.configs)
        display = "" if search else "none"
        if self.layout.display != display:
            self.layout.display = display
        chosen = self.chosen()
        idle = progress.running and not progress.stop_requested and not self.busy.is_set()
        extendable = chosen is not None and (
            chosen.status in EXTENDABLE or (chosen.hand_made and
                                            chosen.status == tables.TRAINING))
        self.extend_button.disabled = not (idle and extendable)
        self.clone_button.disabled = not (idle and chosen is not None)

    # --- requests --------------------------------------------------------------------
    def _start(self, kind: str) -> None:
        chosen = self.chosen()
        if chosen is None or self.busy.is_set():
            return
        self.busy.set()
        self.extend_button.disabled = self.clone_button.disabled = True
        self._say(f"{kind} mst {chosen.mst_key}: waiting for the search's driver…")
        self.thread = threading.Thread(target=self._run, args=(kind, chosen.mst_key),
                                       daemon=True, name=f"gpdl-{kind}")
        self.thread.start()

    def _run(self, kind: str, mst_key: int) -> None:
        try:
            if kind == "extend":
                budget = api.extend(self.output, mst_key, self.iterations.value, dsn=self.dsn)
                self._say(f"mst {mst_key} trains to iteration {budget}")
            else:
                clone = api.clone(self.output, mst_key,
                                  compile_params=self.compile_params.value.strip() or None,
                                  fit_params=self.fit_params.value.strip() or None,
                                  iterations=self.iterations.value, dsn=self.dsn)
                self._say(f"mst {clone}: a clone of mst {mst_key}, "
                          f"{self.iterations.value} iterations")
        except Exception as error:  # shown, never lost in a thread
            self._say(describe_error(error), error=True)
        finally:
            self.busy.clear()
            self.on_done()

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#d62728" if error else "inherit"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>'
