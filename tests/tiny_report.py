"""A tiny notebook shaped like the tutorials, and what an HTML file loads.

The notebook has three slides: a heading with ``$DATABASE_URL`` (not math),
a result, and a plotly bar chart displayed as the tutorials display their
snapshots (``plotly_mimetype+notebook``: plotly.js embedded once, then the
figure's HTML with the MathJax loader plotly adds). Built with nbformat, not
executed, so exporting it takes about a second.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from unittest import mock

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

SLIDE = {"slideshow": {"slide_type": "slide"}}


def tiny_notebook(markdown: str = "Connect with `$DATABASE_URL`, or $DATABASE_URL.",
                  chart_title: str = "bars") -> nbformat.NotebookNode:
    """Three slides; ``markdown`` is the first one's text, ``chart_title`` the chart's."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.io import _base_renderers

    renderer = pio.renderers["notebook"]
    with mock.patch.object(_base_renderers.ipython_display, "display_html") as display:
        renderer.activate()  # what the notebook's first figure displays: plotly.js
    figure = go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2]), layout={"title": chart_title})
    bundle = {"text/html": renderer.to_mimebundle(figure.to_dict())["text/html"],
              "application/vnd.plotly.v1+json": figure.to_plotly_json(),
              "text/plain": "Figure"}
    return new_notebook(cells=[
        new_markdown_cell(f"# A tiny report\n\n{markdown}", metadata=SLIDE),
        new_code_cell("1 + 1", metadata=SLIDE, execution_count=1, outputs=[
            new_output("execute_result", {"text/plain": "2"}, execution_count=1)]),
        new_code_cell("figure", metadata=SLIDE, execution_count=2, outputs=[
            new_output("display_data", {"text/html": display.call_args.args[0]}),
            new_output("display_data", bundle)]),
    ])


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "iframe": "src",
                  "source": "src", "embed": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.found.append((tag, value))


def references(path: Path) -> list[tuple[str, str]]:
    """``(tag, URL)`` of every file an HTML file loads (script, stylesheet, image, frame)."""
    parser = _References()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.found


def remote(url: str) -> bool:
    """Whether loading ``url`` needs the network."""
    return url.lower().startswith(("http:", "https:", "//", "ftp:"))
