"""Every widget's chart fills its output's width in JupyterLab, and follows it (issue 12).

plotly's widget draws before its view is in the page, so without gpdl's fix a
chart keeps plotly's default 700 px. Here JupyterLab runs one notebook whose
widgets (learning curves, GPU monitor, top-k) are made without a database, as
in the unit tests; the test measures each chart's drawn ``svg`` against its
output area in Debian's chromium, then closes the file browser (the
notebook widens with no window resize event) and narrows the window,
measuring again each time. No database; about a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import lab

pytestmark = [pytest.mark.browser]

playwright_api = lab.skip_without_chromium()

NOTEBOOK = "charts.ipynb"
FILLED = 0.9
"""The least share of the room a chart may take (plotly's 700 px fallback is far below)."""
CELLS = (
    f"import sys\nsys.path.insert(0, {str(lab.ROOT)!r})\n"
    "import numpy as np\n"
    "from gpdl_backend.errors import UsageError\n"
    "from gpdl_backend.images.samples import ImageRef, StoredImage\n"
    "from gpdl_backend.mop.job import TrainingJob\n"
    "from gpdl_jupyter.widgets import GpuMonitor, LearningCurves, TopK\n"
    "from gpdl_jupyter.widgets import learning_curves as curves_module, topk as topk_module\n"
    "from tests.unit.test_widgets import CPU_ROWS, config, job_progress\n"
    "progress = job_progress(config(1, [0.5, 0.9]), config(2, [0.6, 0.7]))\n"
    "curves_module.read_progress = lambda dsn, out: progress\n"
    "curves_module.model_names = lambda dsn, out: {1: 'cnn-8'}\n"
    "def no_job(dsn, table):\n    raise UsageError(f'no training job {table}')\n"
    "topk_module.read_progress = no_job\n"
    "topk_module.list_images = lambda dsn, table, limit: [ImageRef('t/1.png', '1.png', 'shoe')]\n"
    "topk_module.read_image = lambda dsn, table, path: StoredImage(\n"
    "    ImageRef(path, '1.png', 'shoe'), np.zeros((4, 4, 1), dtype=np.uint8))",
    "LearningCurves('dbname=none', TrainingJob('dbname=none', 'out'), live=False)",
    "GpuMonitor('dbname=none', live=False, usage=lambda dsn: CPU_ROWS)",
    "TopK('dbname=none', 'out', mst_key=1, image_table='images')",
)
WIDGETS = ("gpdl-learning-curves", "gpdl-gpu-monitor", "gpdl-topk")

MEASURE = """widget => {
  const output = widget.closest('.jp-OutputArea-output');
  const svg = widget.querySelector('.js-plotly-plot .main-svg');
  const box = svg && svg.closest('.widget-hbox');
  // top-k: the chart shares its row with the image, so its room is the row less the image
  const beside = box ? [...box.children].filter(c => !c.contains(svg))
                            .reduce((w, c) => w + c.getBoundingClientRect().width, 0) : 0;
  return {room: output.getBoundingClientRect().width - beside,
          chart: svg ? svg.getBoundingClientRect().width : 0};
}"""


@pytest.fixture(scope="module")
def lab_page(shared_tmp_factory) -> Iterator:
    """JupyterLab (no database) with the widgets notebook run in chromium."""
    root = shared_tmp_factory("gpdl-charts-")
    lab.write_notebook(root / NOTEBOOK, CELLS)
    with lab.lab_server(root, shared_tmp_factory) as (base, token), \
            lab.browser_page(playwright_api) as page:
        lab.open_notebook(page, f"{base}/lab/tree/{NOTEBOOK}?token={token}")
        lab.run_notebook(page, 180, "charts")
        yield page


def _widths(page) -> dict[str, dict[str, float]]:
    """``{widget class: {"room": px, "chart": px}}`` of every widget on the page."""
    return {name: page.locator(f".{name}").first.evaluate(MEASURE) for name in WIDGETS}


def _filled(page) -> dict[str, dict[str, float]] | None:
    """The widths once every chart takes at least FILLED of its room (None if some never do)."""
    widths = _widths(page)
    ok = all(w["chart"] >= FILLED * w["room"] for w in widths.values())
    return widths if ok else None


def test_charts_fill_the_output_and_follow_its_width(lab_page) -> None:
    for name in WIDGETS:
        lab_page.locator(f".{name} .js-plotly-plot .main-svg").first.wait_for()
    first = lab.until(lambda: _filled(lab_page), 15) or _widths(lab_page)
    print(f"widths at 1400 px: {first}")
    lab.shot(lab_page, "chart-widths")
    assert all(w["chart"] >= FILLED * w["room"] for w in first.values()), first
    assert all(w["chart"] <= w["room"] + 2 for w in first.values()), first  # no overflow

    # The file browser closes: the notebook widens, and no window resize event says so.
    lab_page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").first.click()
    wider = lab.until(lambda: (w := _filled(lab_page)) and all(
        w[n]["chart"] > first[n]["chart"] + 150 for n in WIDGETS) and w, 15) \
        or _widths(lab_page)
    print(f"widths without the side panel: {wider}")
    assert all(wider[n]["room"] > first[n]["room"] + 150 for n in WIDGETS), wider  # the set-up
    assert all(wider[n]["chart"] > first[n]["chart"] + 150 for n in WIDGETS), wider
    assert all(w["chart"] >= FILLED * w["room"] for w in wider.values()), wider

    lab_page.set_viewport_size({"width": 1000, "height": 1000})  # the window narrows
    narrow = lab.until(lambda: (w := _filled(lab_page)) and all(
        w[n]["chart"] < wider[n]["chart"] - 200 for n in WIDGETS) and w, 15) \
        or _widths(lab_page)
    print(f"widths at 1000 px: {narrow}")
    assert all(narrow[n]["chart"] < wider[n]["chart"] - 200 for n in WIDGETS), narrow
    assert all(w["chart"] >= FILLED * w["room"] for w in narrow.values()), narrow
    assert all(w["chart"] <= w["room"] + 2 for w in narrow.values()), narrow  # no overflow
    lab.shot(lab_page, "chart-widths-narrow")
