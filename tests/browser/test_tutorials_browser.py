"""Every other tutorial runs in JupyterLab as a user runs it: Run All, then what shows.

The quickstart has tests of its own (``test_quickstart_browser``); here each
of tutorials 02, 03 and 05 (and 04 on Greenplum) is copied unchanged into the
package's JupyterLab, opened with a fresh kernel and run with Run All. It must
finish without an error output, a magic's ``UsageError`` or a widget that
cannot display; every widget view must render (none left "Loading widget..."),
every learning-curves widget must draw its lines, and every plotly chart its
SVG. They share the lab's ``GPDL_DEMO_DATA`` with the quickstart (each writes
the images it needs there); a screenshot of each is saved.
"""

from __future__ import annotations

import shutil

import pytest

from tests.browser import lab

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

TUTORIALS = [
    "02_object_storage.ipynb", "03_architecture_editor.ipynb",
    pytest.param("04_greenplum.ipynb", marks=pytest.mark.greenplum_only(
        reason="the Greenplum tutorial installs on a cluster and shows its segments' rows")),
    "05_sql.ipynb",
]
WIDGET_VIEW = ".jp-OutputArea-output > .jupyter-widgets"
"""A widget's rendered view (its output holds "Loading widget..." until then)."""

lab.skip_without_chromium()


def _loading(page) -> list[str]:
    """The outputs still waiting for their widget's view (or for its model)."""
    return page.locator('.jp-OutputArea-output:has-text("Loading widget...")').all_inner_texts()


@pytest.mark.parametrize("name", TUTORIALS, ids=lambda n: n.split(".")[0])
def test_tutorial_runs_in_jupyterlab(name: str, ran, jupyter_lab) -> None:
    base, token, root = jupyter_lab
    shutil.copy(lab.ROOT / "notebooks" / name, root / name)
    lab.open_and_run(ran, base, token, name, lab.RUN_TIMEOUT_S)
    page = ran
    assert lab.until(lambda: not _loading(page), 30), _loading(page)
    widgets = page.locator(WIDGET_VIEW).count()
    curves = page.locator(".gpdl-learning-curves")
    for index in range(curves.count()):
        widget = curves.nth(index)
        widget.scroll_into_view_if_needed()
        assert lab.until(lambda w=widget: lab.drawn_lines(w) >= 2), \
            f"learning curves {index + 1} drew no lines"
    charts = page.locator(".jp-Notebook .js-plotly-plot")
    drawn = charts.evaluate_all("plots => plots.filter(p => p.querySelector('.main-svg')).length")
    assert drawn == charts.count(), f"{drawn} of {charts.count()} charts drawn"
    print(f"{name}: {widgets} widgets, {curves.count()} learning curves, {drawn} charts")
    lab.shot(page, name.split(".")[0])
