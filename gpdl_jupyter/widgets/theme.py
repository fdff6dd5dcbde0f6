"""Presentation themes and stable colours shared by every gpdl widget.

A ``Theme`` sizes fonts, lines and markers (``"notebook"`` for a laptop,
``"presentation"`` for a projector) and gives a plotly template and the CSS
for the ipywidgets around the charts. ``config_colour(mst_key)`` is the colour
of a configuration in every chart and table, whatever else is drawn beside it.

Example::

    curves = LearningCurves(dsn, "models", theme="presentation")
    config_colour(3)  # '#2ca02c', in every chart
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from gpdl_backend.errors import UsageError

__all__ = [
    "NOTEBOOK",
    "PALETTE",
    "PRESENTATION",
    "THEMES",
    "Theme",
    "config_colour",
    "get_theme",
    "series_colour",
]

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd",
)
"""Sixteen distinct colours (the reference workload has 16 configurations)."""


@dataclass(frozen=True)
class Theme:
    """Sizes of everything a widget draws.

    Attributes:
        name: the theme's name (also its plotly template, ``gpdl_<name>``).
        font_size: body text in charts and tables, in pixels.
        title_size: chart titles, in pixels.
        line_width: a curve. best_line_width: the best configuration's curve.
        marker_size: points on a curve.
        height: a chart's height, in pixels.
        font_family: CSS font family. Defaults to a sans-serif stack.
        base_template: the plotly template this one extends. Defaults to ``plotly_white``.
    """

    name: str
    font_size: int
    title_size: int
    line_width: float
    best_line_width: float
    marker_size: int
    height: int
    font_family: str = "Inter, 'Helvetica Neue', Arial, sans-serif"
    base_template: str = "plotly_white"

    @property
    def template_name(self) -> str:
        return f"gpdl_{self.name}"

    @property
    def css_class(self) -> str:
        """The class added to a themed widget (the CSS below targets it)."""
        return f"gpdl-{self.name}"

    def template(self) -> go.layout.Template:
        """This theme's plotly template (registered in ``plotly.io.templates`` too)."""
        return _template(self)

    def layout(self, **extra: Any) -> dict[str, Any]:
        """Layout keywords for a themed figure (template, height, margins...)."""
        base = dict(template=self.template(), height=self.height,
                    margin=dict(l=60, r=20, t=50 + self.title_size, b=50),
                    hoverlabel=dict(font_size=self.font_size))
        base.update(extra)
        return base

    def css(self) -> str:
        """A ``<style>`` block sizing the ipywidgets controls of a themed widget."""
        selector = f".{self.css_class}"
        size = f"{self.font_size}px"
        return (
            f"<style>{selector} .widget-label, {selector} .widget-html-content, "
            f"{selector} .widget-button, {selector} .widget-toggle-button, "
            f"{selector} select, {selector} input, {selector} .widget-readout "
            f"{{font-size: {size}; font-family: {self.font_family};}} "
            f"{selector} .widget-dropdown, {selector} .widget-text, "
            f"{selector} .widget-button, {selector} .widget-toggle-button "
            f"{{height: auto; min-height: {int(self.font_size * 1.9)}px;}} "
            f"{selector} table.gpdl-table {{font-size: {size}; border-collapse: collapse;}} "
            f"{selector} table.gpdl-table th, {selector} table.gpdl-table td "
            f"{{padding: 2px 10px; text-align: right; border-bottom: 1px solid #ddd; "
            f"white-space: nowrap;}} "
            f"{selector} table.gpdl-table th {{background: #f4f4f4; white-space: normal;}} "
            f"{selector} .gpdl-swatch {{display: inline-block; width: 0.8em; height: 0.8em; "
            f"border-radius: 50%; margin-right: 0.3em;}}</style>"
        )


NOTEBOOK = Theme("notebook", font_size=13, title_size=16, line_width=2.0,
                 best_line_width=4.5, marker_size=6, height=420)
PRESENTATION = Theme("presentation", font_size=20, title_size=26, line_width=3.5,
                     best_line_width=7.0, marker_size=11, height=560)
THEMES = {theme.name: theme for theme in (NOTEBOOK, PRESENTATION)}


def get_theme(theme: Theme | str | None = None) -> Theme:
    """A theme by name (``"notebook"``, ``"presentation"``) or as given.

    Args:
        theme: a ``Theme``, its name, or None. Defaults to None (``"notebook"``).

    Raises:
        UsageError: no theme of that name.
    """
    if theme is None:
        return NOTEBOOK
    if isinstance(theme, Theme):
        return theme
    if isinstance(theme, str) and theme in THEMES:
        return THEMES[theme]
    raise UsageError(f"unknown theme {theme!r}; choose {', '.join(sorted(THEMES))}")


def config_colour(mst_key: int) -> str:
    """The colour of configuration ``mst_key`` in every chart (16 colours, then again).

    Example:
        >>> config_colour(1), config_colour(17)
        ('#1f77b4', '#1f77b4')
    """
    return PALETTE[(int(mst_key) - 1) % len(PALETTE)]


def series_colour(index: int) -> str:
    """The colour of the ``index``-th series (0-based) of a chart without configurations."""
    return PALETTE[int(index) % len(PALETTE)]


def swatch(colour: str) -> str:
    """An HTML dot of ``colour`` (for tables and labels)."""
    return f'<span class="gpdl-swatch" style="background:{html.escape(colour)}"></span>'


@cache
def _template(theme: Theme) -> go.layout.Template:
    base = pio.templates[theme.base_template]
    template = go.layout.Template(base)
    template.layout.font = dict(size=theme.font_size, family=theme.font_family)
    template.layout.title = dict(font=dict(size=theme.title_size))
    template.layout.legend = dict(font=dict(size=theme.font_size))
    template.layout.colorway = list(PALETTE)
    template.data.scatter = [go.Scatter(line=dict(width=theme.line_width),
                                        marker=dict(size=theme.marker_size))]
    pio.templates[theme.template_name] = template
    return template
