"""Run a tutorial notebook headless and write it out: executed notebook, HTML report, slides.

Both outputs work without network. The HTML report is one self-contained
file: the notebooks display their widgets' ``snapshot()`` figures with
plotly's ``notebook`` renderer, which embeds plotly.js once in the notebook,
and require.js (which nbconvert's template loads from a CDN) is embedded as
a ``data:`` URL, so learning curves and top-k bars draw offline. The slides
are ``<stem>.slides.html`` plus a ``reveal.js-4.0.2/`` folder written beside
it (reveal.js, its CSS, theme and notes plugin, referenced relatively; copy
both together), with require.js and jQuery embedded as ``data:`` URLs. Those
files come from the npm registry at setup (``gpdl_jupyter.web_assets``).

MathJax is left out when the notebook has no math (no ``$...$``, ``$$``,
``\\(``, ``\\[`` or ``\\begin{`` in its Markdown outside code, no LaTeX
output, no LaTeX plotly label), which is the case for the tutorials: the
template's MathJax and the loader plotly adds to each figure are dropped.
A notebook with math keeps them, and mermaid diagrams keep mermaid, from
CDNs: one logged warning says so. Without the web assets (setup not run)
the reports are still written, loading require.js, jQuery and reveal.js
from nbconvert's CDNs, and one logged warning says so.

Live widgets do not run outside Jupyter; the executed notebook is written
without their state (it would hold a copy of plotly.js per chart), and the
reports show a line naming each widget.

Example::

    notebook = run_notebook(Path("notebooks/01_quickstart.ipynb"), Path("/tmp/demo"),
                            env={"DATABASE_URL": dsn})
    files = write_reports(notebook, Path("/tmp/demo"), "01_quickstart")
    print(files.html)
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from gpdl_backend.errors import FatalError
from gpdl_jupyter.web_assets import JQUERY, REQUIREJS, REVEAL, WebAssets, default_directory

__all__ = [
    "CellEvent",
    "NotebookFailed",
    "ReportFiles",
    "has_math",
    "run_notebook",
    "static_widgets",
    "write_reports",
]

KERNEL_NAME = "python3"
"""The kernel: jupyter_client runs it with the Python that runs gpdl (the venv's)."""

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_REPR = re.compile(r"^([A-Z]\w*)\(")
REVEAL_THEME = "simple"
"""nbconvert's default theme; its Google Fonts are not copied (the fallback fonts show)."""

_log = logging.getLogger(__name__)
_CODE = re.compile(r"```.*?```|~~~.*?~~~|`[^`\n]*`", re.DOTALL)
_MATH = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|\$[^\s$](?:[^$\n]*[^\s$\\])?\$(?!\d)")
PLOTLY_JSON = "application/vnd.plotly.v1+json"
_MERMAID = re.compile(r"^\s*(?:```|~~~)\s*mermaid\b", re.MULTILINE)
_MATHJAX_LOADER = re.compile(
    r'<script\b[^>]*\bsrc="https?://[^"]*mathjax[^"]*"[^>]*>\s*</script>', re.IGNORECASE)
_REMOTE_IMPORT = re.compile(r"@import\s+url\(\s*['\"]?(?:https?:)?//[^)]*\)\s*;?\n?")

_OFFLINE_BLOCKS = """
{%- block html_head_js_mermaidjs -%}
{%- if resources.gpdl.mermaid -%}{{ super() }}{%- endif -%}
{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.gpdl.math -%}{{ super() }}
{%- else -%}{{ resources.gpdl.without_mathjax }}{%- endif -%}
{%- endblock html_head_js_mathjax -%}
"""
REPORT_TEMPLATE = "{%- extends 'lab/index.html.j2' -%}" + _OFFLINE_BLOCKS
"""nbconvert's lab template, with MathJax and mermaid only where the notebook has them."""
SLIDES_TEMPLATE = "{%- extends 'reveal/index.html.j2' -%}" + _OFFLINE_BLOCKS
"""nbconvert's reveal template, likewise."""
_MATHJAX_STUB = """<script>
// No math here, so no MathJax (gpdl); the reveal template's slide-change hook asks it.
window.MathJax = {Hub: {getAllJax: function () { return null; }}};
</script>"""


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
    """What ``write_reports`` wrote.

    ``reveal`` is the reveal.js folder beside the slides, None when they load
    reveal.js from a CDN (the web assets were missing).
    """

    notebook: Path
    html: Path
    slides: Path
    reveal: Path | None = None


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
                  title: str | None = None, assets: WebAssets | None = None) -> ReportFiles:
    """Write ``<stem>.ipynb``, ``<stem>.html`` (report) and ``<stem>.slides.html`` (reveal.js).

    The report and the slides need no network (see the module's docstring);
    the slides use the ``reveal.js-4.0.2/`` folder written beside them.

    Args:
        notebook: an executed notebook.
        out_dir: where the files go (created).
        stem: their file name without suffix.
        title: the HTML title. Defaults to the notebook's first heading, else ``stem``.
        assets: require.js, jQuery and reveal.js. Defaults to ``WebAssets.find()``;
            when missing, the reports load them from CDNs and a warning is logged.

    Returns:
        The paths written.
    """
    from nbconvert import HTMLExporter, SlidesExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    static = static_widgets(notebook)
    math, mermaid = has_math(static), bool(_MERMAID.search(_markdown(static)))
    if not math:
        _drop_mathjax_loaders(static)
    remote = [what for what, needed in (("MathJax (it has math)", math),
                                        ("mermaid (it has diagrams)", mermaid)) if needed]
    if remote:
        _log.warning("%s: its report and slides load %s from a CDN", stem, " and ".join(remote))
    assets = assets or WebAssets.find()
    files = ReportFiles(out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html",
                        out_dir / f"{stem}.slides.html",
                        _copy_reveal(assets, out_dir) if assets else None)
    report_urls: dict[str, str] = {}
    slides_urls: dict[str, str] = {}
    if assets is None:
        _log.warning("no web assets in %s (run scripts/setup.sh): %s.html and %s.slides.html "
                     "load require.js, jQuery and reveal.js from CDNs",
                     default_directory(), stem, stem)
    else:
        report_urls["require_js_url"] = _data_url(assets.path(REQUIREJS, "require.js"))
        slides_urls = {**report_urls, "reveal_url_prefix": REVEAL.folder,
                       "jquery_url": _data_url(assets.path(JQUERY, "dist/jquery.min.js"))}
    resources = {"metadata": {"name": title or _title(notebook) or stem},
                 "gpdl": {"math": math, "mermaid": mermaid, "without_mathjax": ""}}
    nbformat.write(notebook, files.notebook)
    html, _ = HTMLExporter(raw_template=REPORT_TEMPLATE, **report_urls).from_notebook_node(
        static, resources=copy.deepcopy(resources))
    files.html.write_text(html, encoding="utf-8")
    resources["gpdl"]["without_mathjax"] = _MATHJAX_STUB
    slides, _ = SlidesExporter(raw_template=SLIDES_TEMPLATE, reveal_scroll=True,
                               reveal_theme=REVEAL_THEME, **slides_urls).from_notebook_node(
        static, resources=resources)
    files.slides.write_text(slides, encoding="utf-8")
    return files


def has_math(notebook: nbformat.NotebookNode) -> bool:
    """Whether MathJax has anything to typeset in the notebook.

    Math is ``$...$`` (a ``$`` before a non-space, one after a non-space and
    not before a digit, on one line: ``$DATABASE_URL`` or "$5 and $6" are not
    math), ``$$``, ``\\(``, ``\\[`` or ``\\begin{`` in Markdown outside code
    spans and blocks, a ``text/latex`` output, or a label ``$...$`` in a plotly
    figure's JSON output (plotly typesets those).

    Example::

        has_math(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$x^2$")]))
    """
    if _MATH.search(_CODE.sub("", _markdown(notebook))):
        return True
    for data in _output_data(notebook):
        if "text/latex" in data or any(_is_latex(text) for text in _strings(data.get(PLOTLY_JSON))):
            return True
    return False


def static_widgets(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy whose live-widget outputs say what they are instead of their Python repr.

    Outside Jupyter a widget output shows its ``text/plain`` form (e.g.
    ``LearningCurves(children=(HTML(...``); the notebooks follow each widget
    with its ``snapshot()`` figure, so a line naming the widget is enough.
    Saved widget state is dropped too (nbconvert would load the widget
    manager from a CDN to show it).
    """
    copied = copy.deepcopy(notebook)
    copied.metadata.pop("widgets", None)
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


def _markdown(notebook: nbformat.NotebookNode) -> str:
    return "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def _output_data(notebook: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [output["data"] for cell in notebook.cells for output in cell.get("outputs", [])
            if "data" in output]


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value (a plotly figure's labels among them)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [text for item in value for text in _strings(item)] if isinstance(value, list) else []


def _is_latex(text: str) -> bool:
    """plotly typesets a label that is one ``$...$``."""
    return len(text) > 2 and text.startswith("$") and text.endswith("$")


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _drop_mathjax_loaders(notebook: nbformat.NotebookNode) -> None:
    """Remove the MathJax ``<script src>`` plotly adds to each figure's HTML (in place)."""
    for data in _output_data(notebook):
        if "text/html" in data:
            data["text/html"] = _MATHJAX_LOADER.sub("", _text(data["text/html"]))


def _data_url(path: Path) -> str:
    """A script as a ``data:`` URL: embedded, with nothing to escape in the HTML."""
    return "data:text/javascript;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _copy_reveal(assets: WebAssets, out_dir: Path) -> Path:
    """Copy reveal.js's files into ``out_dir/reveal.js-<version>``; the theme without
    its remote ``@import`` of fonts."""
    target = out_dir / REVEAL.folder
    for file in REVEAL.files:
        destination = target / file
        destination.parent.mkdir(parents=True, exist_ok=True)
        if file.startswith("dist/theme/"):
            css = assets.path(REVEAL, file).read_text(encoding="utf-8")
            destination.write_text(_REMOTE_IMPORT.sub("", css), encoding="utf-8")
        else:
            shutil.copyfile(assets.path(REVEAL, file), destination)
    return target
