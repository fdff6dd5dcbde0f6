"""Tutorial 03's retrain in a real browser, Run All clicked while the kernel starts.

A notebook written here fits cnn-8 alone, lets the editor add an edited copy
to the selection, and fits again: Run All is clicked at once, while its
kernel still starts; each curves widget draws its traces, the retrained one a
curve more; after a page reload (the kernel live) the curves and the top-k
chart are drawn again.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from tests.browser import lab

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

K = 3
NOTEBOOK = "retrain.ipynb"
CELLS = (
    "%load_ext gpdl_jupyter\n%gpdl connect\n%gpdl drop retrain_base retrain_models",
    "%%gpdl select retrain_mst --arch fashion_arch --if-exists replace\n"
    "model_ids: [1]\ncompile:\n  loss: [categorical_crossentropy]\n"
    "  optimizer_params_list:\n    - optimizer: [Adam]\n      lr: [0.003]\n"
    "  metrics: [accuracy]\nfit:\n  batch_size: [64]\n  epochs: [1]",
    "baseline = %gpdl fit fashion_train_packed retrain_base retrain_mst --iterations 2 "
    "--validation fashion_test_packed --metrics-frequency 1\nbaseline",
    "baseline.wait()\n"
    "editor = %gpdl arch fashion_arch --model-id 1 --select retrain_mst\n"
    "editor.set_layer(0, units=16)\neditor.save(name='cnn-8 wider')\n"
    "added = editor.add_to_selection()",
    "retrained = %gpdl fit fashion_train_packed retrain_models retrain_mst --iterations 2 "
    "--validation fashion_test_packed --metrics-frequency 1\nretrained",
    "retrained.wait()\ntopk = %gpdl predict retrain_models -k 3 --images fashion_test\n"
    "topk.image_dropdown.value = topk.image_dropdown.options[1][1]  # a stored image\ntopk",
)
"""Tutorial 03's retrain on the quickstart's tables: cnn-8 alone, then with an edited copy."""

lab.skip_without_chromium()


@pytest.fixture(scope="module")
def retrain_page(ran, jupyter_lab):
    """The retrain notebook, Run All clicked while its kernel starts, every cell done."""
    base, token, root = jupyter_lab
    lab.write_notebook(root / NOTEBOOK, CELLS)
    started = time.monotonic()
    at_click = lab.run_all_at_once(ran, base, token, NOTEBOOK)
    print(f"Run All clicked with the kernel: {at_click}")
    assert at_click in ("none", "starting"), f"kernel {at_click}: not the start-up case"
    lab.wait_until_all_ran(ran, lab.RUN_TIMEOUT_S, "retrain")
    print(f"ran the retrain notebook in JupyterLab in {time.monotonic() - started:.0f} s")
    return ran


def test_curves_draw_after_run_all_while_the_kernel_starts(retrain_page) -> None:
    lines = lab.curves_drawn(retrain_page, (1, 2))
    assert lines[0] >= 2 and lines[1] >= 4, f"lines drawn: {lines} (plotly's empty axes?)"
    lab.shot(retrain_page.locator(".gpdl-learning-curves").first, "startup-learning-curves")


def test_retrain_draws_one_more_curve(retrain_page) -> None:
    curves = retrain_page.locator(".gpdl-learning-curves")
    lab.curves_drawn(retrain_page, (1, 2))
    before, after = lab.legend(curves.nth(0)), lab.legend(curves.nth(1))
    assert len(after) == len(before) + 1, (before, after)
    assert sum("cnn-8 wider" in entry for entry in after) == 1, after  # the edited model
    assert not any("cnn-8 wider" in entry for entry in before), before
    assert lab.drawn_lines(curves.nth(1)) > lab.drawn_lines(curves.nth(0))
    lab.shot(curves.nth(1), "retrain-learning-curves")


def _widget_outputs(path: Path) -> int:
    """Widget views among the saved outputs of the notebook at ``path`` (0 mid-save)."""
    try:
        cells = nbformat.read(path, as_version=4).cells
    except nbformat.reader.NotJSONError:  # JupyterLab is writing it: read it again
        return 0
    return sum("application/vnd.jupyter.widget-view+json" in output.get("data", {})
               for cell in cells for output in cell.get("outputs", ()))


def test_widgets_draw_again_after_a_page_reload(retrain_page, jupyter_lab) -> None:
    """The kernel lives on: the views are made anew from its widgets' synced state."""
    page, root = retrain_page, jupyter_lab[2]
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").first.click()
    assert lab.until(lambda: _widget_outputs(root / NOTEBOOK) == 3, 30), \
        "the outputs were not saved"
    page.reload()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    if not lab.until(lambda: page.locator(".gpdl-learning-curves").count() == 2):
        lab.shot(page, "reload-no-widgets")
    lines = lab.curves_drawn(page, (1, 2))
    assert lines[0] >= 2 and lines[1] >= 4, f"lines drawn after the reload: {lines}"
    topk = page.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    assert lab.count(topk.locator(".js-plotly-plot .bars .point"), K) == K
    assert "top 3" in (topk.locator(".js-plotly-plot .gtitle").first.text_content() or "")
    lab.shot(page.locator(".gpdl-learning-curves").nth(1), "reload-learning-curves")
    lab.shot(topk, "reload-topk")
