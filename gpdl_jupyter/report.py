"""Run a tutorial notebook headless and write it out: executed notebook, HTML report, slides.

The HTML report is self-contained for the charts: the notebooks display
their widgets' ``snapshot()`` figures with plotly's ``notebook`` renderer,
which embeds plotly.js once in the notebook, so learning curves and top-k
bars draw offline. Live widgets do not run outside Jupyter; the executed
notebook is written without their state (it would hold a copy of plotly.js
per chart).

Example::

    notebook = run_notebook(Path("notebooks/01_quickstart.ipynb"), Path("/tmp/demo"),
                            env={"DATABASE_URL": dsn})
    files = write_reports(notebook, Path("/tmp/demo"), "01_quickstart")
    print(files.html)
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from gpdl_backend.errors import FatalError

__all__ = [
    "CellEvent",
    "NotebookFailed",
    "ReportFiles",
    "run_notebook",
    "static_widgets",
    "write_reports",
]

KERNEL_NAME = "python3"
"""The kernel: jupyter_client runs it with the Python that runs gpdl (the venv's)."""

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_REPR = re.compile(r"^([A-Z]\w*)\(")


@dataclass(frozen=True)
class CellEvent:
    """One code cell done: its position, first line and duration."""

    index: int
    total: int
    first_line: str
    seconds: float


class NotebookFailed(FatalError):
    """A cell of a notebook raised; ``notebook`` holds it with the outputs so far."""

    def __init__(self, message: str, notebook: nbformat.NotebookNode) -> None:
        super().__init__(message)
        self.notebook = notebook


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_reports`` wrote."""

    notebook: Path
    html: Path
    slides: Path


def run_notebook(
    source: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: int = 1800,
    on_cell: Callable[[CellEvent], None] | None = None,
) -> nbformat.NotebookNode:
    """Execute a notebook in a fresh kernel of this Python and return it with its outputs.

    Args:
        source: the ``.ipynb`` file.
        cwd: the kernel's working directory.
        env: variables added to this process's environment for the kernel.
            Defaults to None (none added).
        timeout: seconds one cell may take. Defaults to 1800.
        on_cell: called after each code cell with a ``CellEvent``. Defaults to None.

    Returns:
        The executed notebook, also when a cell failed (see Raises).

    Raises:
        NotebookFailed: a cell raised (the message has the error's last line);
            the partly executed notebook is ``error.notebook``.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(source, as_version=4)
    positions = {cell.id: index for index, cell in enumerate(
        (c for c in notebook.cells if c.cell_type == "code"), start=1)}
    started: dict[str, float] = {}

    def cell_started(cell: Any, cell_index: int) -> None:
        started[cell.id] = time.monotonic()

    def cell_done(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if on_cell is not None and cell.cell_type == "code":
            lines = cell.source.strip().splitlines() or [""]
            first = next((line for line in lines if not line.startswith("#")), lines[0])
            on_cell(CellEvent(positions[cell.id], len(positions), first,
                              time.monotonic() - started.get(cell.id, time.monotonic())))

    client = NotebookClient(
        notebook, timeout=timeout, kernel_name=KERNEL_NAME, store_widget_state=False,
        resources={"metadata": {"path": str(cwd)}},
        on_cell_execute=cell_started, on_cell_executed=cell_done)
    cwd.mkdir(parents=True, exist_ok=True)
    try:  # the kernel's own log lines (not the cells' output) go to a file
        with open(cwd / f"{source.stem}.kernel.log", "w", encoding="utf-8") as log:
            client.execute(env={**os.environ, **(env or {})}, stderr=log)
    except CellExecutionError as error:
        last = str(error).strip().splitlines()[-1:] or ["(no message)"]
        raise NotebookFailed(f"{source.name}: a cell failed: {last[0]}", notebook) from error
    return notebook


def write_reports(notebook: nbformat.NotebookNode, out_dir: Path, stem: str,
                  title: str | None = None) -> ReportFiles:
    """Write ``<stem>.ipynb``, ``<stem>.html`` (report) and ``<stem>.slides.html`` (reveal.js).

    Args:
        notebook: an executed notebook.
        out_dir: where the files go (created).
        stem: their file name without suffix.
        title: the HTML title. Defaults to the notebook's first heading, else ``stem``.

    Returns:
        The three paths.
    """
    from nbconvert import HTMLExporter, SlidesExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    resources = {"metadata": {"name": title or _title(notebook) or stem}}
    files = ReportFiles(out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html",
                        out_dir / f"{stem}.slides.html")
    nbformat.write(notebook, files.notebook)
    static = static_widgets(notebook)
    html, _ = HTMLExporter().from_notebook_node(static, resources=dict(resources))
    files.html.write_text(html, encoding="utf-8")
    slides, _ = SlidesExporter(reveal_scroll=True).from_notebook_node(
        static, resources=dict(resources))
    files.slides.write_text(slides, encoding="utf-8")
    return files


def static_widgets(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy whose live-widget outputs say what they are instead of their Python repr.

    Outside Jupyter a widget output shows its ``text/plain`` form (e.g.
    ``LearningCurves(children=(HTML(...``); the notebooks follow each widget
    with its ``snapshot()`` figure, so a line naming the widget is enough.
    """
    copied = copy.deepcopy(notebook)
    for cell in copied.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            match = _WIDGET_REPR.match(data.get("text/plain", ""))
            what = f"the live {match.group(1)} widget" if match else "a live progress bar"
            data["text/plain"] = f"[{what}: interactive in Jupyter, not in this static copy]"
    return copied


def _title(notebook: nbformat.NotebookNode) -> str | None:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].replace("*", "").strip()
    return None
