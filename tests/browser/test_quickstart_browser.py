"""The quickstart in a real browser: Run All in JupyterLab, then what a user sees.

The package's ``conftest`` serves the quickstart (with ``DATABASE_URL`` set to
the test server) and clicks Run All once its kernel is idle; these tests check
the learning curves' traces and legend, k bars in the top-k chart and the
static snapshots beside the widgets.
"""

from __future__ import annotations

import re

import pytest

from tests.browser import lab

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

CONFIGURATIONS, K = 4, 3  # the quickstart's grid (2 models x 2 learning rates) and top-k

lab.skip_without_chromium()


def test_learning_curves_draw_one_legend_entry_per_configuration(ran) -> None:
    curves = ran.locator(".gpdl-learning-curves").first
    curves.scroll_into_view_if_needed()
    legend = curves.locator(".js-plotly-plot g.legend g.traces")
    assert lab.count(legend, CONFIGURATIONS) == CONFIGURATIONS
    assert "cnn-8" in (legend.first.text_content() or "")  # the model's name, not "model 1"
    # Run All during kernel start-up: the traces are drawn, not plotly's empty axes.
    lines = lab.until(lambda: lab.drawn_lines(curves) >= 2 * CONFIGURATIONS
                      and lab.drawn_lines(curves))
    assert lines >= 2 * CONFIGURATIONS  # training and validation of each, hops too
    header = curves.locator(".widget-html-content", has_text=re.compile(r"· finished · iteration"))
    assert lab.count(header, 1) == 1
    lab.shot(curves, "learning-curves")


def test_topk_draws_k_bars(ran) -> None:
    topk = ran.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    bars = topk.locator(".js-plotly-plot .bars .point")
    assert lab.count(bars, K) == K
    assert "top 3" in (topk.locator(".js-plotly-plot .gtitle").first.text_content() or "")
    lab.shot(topk, "topk")


def test_static_snapshots_render_too(ran) -> None:
    """The snapshot() figures (plotly's mimetype renderer) sit outside the widgets."""
    widgets = ran.locator(".gpdl-learning-curves .js-plotly-plot, .gpdl-topk .js-plotly-plot")
    assert widgets.count() == 2
    assert lab.count(ran.locator(".jp-Notebook .js-plotly-plot"), 4) == 4
