"""The other widgets on the quickstart's tables, in a real browser.

A notebook written here shows the architecture editor (visible number fields,
add a layer, save), a fresh top-k widget and the GPU monitor; the top-k widget
answers an upload through the file chooser a user's click opens.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg2
import pytest
from PIL import Image, ImageDraw

from tests.browser import lab

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

K = 3
NOTEBOOK = "widgets.ipynb"
CELLS = (
    "%load_ext gpdl_jupyter\n%gpdl connect",
    "editor = %gpdl arch fashion_arch --model-id 1 --select fashion_mst\neditor",
    "fresh = %gpdl predict fashion_models -k 3 --images fashion_test\nfresh",
    "%gpdl gpu",
)
"""The other widgets, on the tables the quickstart made (the editor on cnn-8)."""
NUMBER_FIELDS = 4  # cnn-8: Conv2D filters and kernel, MaxPooling2D pool size, Dense units
UPLOAD = "upload-check.png"

lab.skip_without_chromium()


@pytest.fixture(scope="module")
def widgets_page(ran, jupyter_lab):
    """The widgets notebook, all cells run (after the quickstart made its tables)."""
    base, token, root = jupyter_lab
    lab.write_notebook(root / NOTEBOOK, CELLS)
    lab.open_and_run(ran, base, token, NOTEBOOK, 300)
    return ran


def _visible_number_inputs(widget) -> int:
    """Number fields Chromium really shows (computed visibility and a size)."""
    return widget.locator("input[type=number]").evaluate_all(
        "inputs => inputs.filter(i => getComputedStyle(i).visibility === 'visible' "
        "&& i.getBoundingClientRect().width > 0).length")


def test_editor_shows_editable_fields_and_saves(widgets_page, dsn: str) -> None:
    editor = widgets_page.locator(".gpdl-arch-editor").first
    editor.wait_for()
    editor.scroll_into_view_if_needed()
    assert lab.until(lambda: _visible_number_inputs(editor) == NUMBER_FIELDS), \
        f"{_visible_number_inputs(editor)} number fields shown, not {NUMBER_FIELDS}"
    lab.shot(editor, "editor")
    summary = editor.locator(".widget-html-content", has_text="parameters ·").first
    before = summary.inner_text()
    filters = editor.locator("input[type=number]").first  # the Conv2D's filters
    filters.fill("16")
    filters.press("Enter")
    assert lab.until(lambda: summary.inner_text() != before), "editing a field changed nothing"
    edited = summary.inner_text()
    editor.get_by_role("button", name="Add layer").click()
    assert lab.until(lambda: summary.inner_text() != edited), "adding a layer changed nothing"
    assert "5 layers" in summary.inner_text()
    editor.get_by_role("button", name="Save as new model").click()
    status = editor.locator(".widget-html-content", has_text="saved as model_id")
    assert lab.count(status, 1) == 1, "save showed no status"
    model_id = int(re.search(r"saved as model_id (\d+)", status.inner_text()).group(1))
    editor.locator("button", has_text="Add to selection").click()  # its name has an icon
    added = editor.locator(".widget-html-content", has_text="added to fashion_mst")
    assert lab.count(added, 1) == 1
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:  # what the status lines say
        cur.execute("SELECT count(*) FROM fashion_arch WHERE model_id = %s", (model_id,))
        saved = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM fashion_mst WHERE model_id = %s", (model_id,))
        selected = cur.fetchone()[0]
    conn.close()
    assert (saved, selected) == (1, 2), (saved, selected)  # with each of the 2 learning rates
    lab.shot(editor, "editor-saved")


def test_topk_first_state_says_what_to_do(widgets_page) -> None:
    topk = widgets_page.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    assert "choose a stored image" in lab.chosen_text(topk.locator("select").first)
    assert topk.locator("img").evaluate_all(
        "imgs => imgs.filter(i => i.offsetParent !== null).length") == 0  # no broken image
    note = topk.locator(".js-plotly-plot .annotation-text", has_text="no image yet")
    assert lab.count(note, 1) == 1
    lab.shot(topk, "topk-first-state")
    topk.locator("select").first.select_option(index=1)  # a stored image, as a user picks
    assert lab.count(topk.locator(".js-plotly-plot .bars .point"), K) == K
    lab.shot(topk, "topk-chosen")


def test_topk_answers_an_upload(widgets_page, tmp_path: Path) -> None:
    """A file set on the upload button replaces the stored image: new bars, its name."""
    topk = widgets_page.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    select, title = topk.locator("select").first, topk.locator(".js-plotly-plot .gtitle").first
    select.select_option(index=2)
    stored = lab.chosen_text(select).rsplit(" (", 1)[0]  # "name (label)"
    assert lab.until(lambda: stored in (title.text_content() or "")), \
        "the stored image not shown"
    before = lab.until(lambda: len(bars := lab.bars(topk)) == 2 * K and bars)
    assert before, f"the stored image's bars: {lab.bars(topk)}"
    image = Image.new("L", (28, 28))
    ImageDraw.Draw(image).rectangle((9, 2, 18, 25), fill=255)  # a white bar on black
    image.save(tmp_path / UPLOAD)
    with widgets_page.expect_file_chooser() as chooser:  # its input is not in the page
        topk.locator(".widget-upload").click()
    chooser.value.set_files(str(tmp_path / UPLOAD))
    assert lab.until(lambda: UPLOAD in (title.text_content() or "")), \
        f"the chart still says {title.text_content()!r}"
    after = lab.until(lambda: len(bars := lab.bars(topk)) == 2 * K and bars)
    assert after and after != before, f"the bars did not change: {after}"
    caption = topk.locator(".widget-html-content", has_text=UPLOAD)
    assert lab.count(caption, 1) == 1  # under the image, not the stored one's name
    assert stored not in caption.first.inner_text()
    assert "choose a stored image" in lab.chosen_text(select)  # no longer names the stored one
    assert topk.locator("img").evaluate_all(
        "imgs => imgs.filter(i => i.offsetParent !== null && i.naturalWidth > 0).length") == 1
    lab.shot(topk, "topk-uploaded")


def test_gpu_monitor_draws_its_hosts(widgets_page) -> None:
    monitor = widgets_page.locator(".gpdl-gpu-monitor").first
    monitor.scroll_into_view_if_needed()
    assert lab.until(lambda: monitor.locator(".js-plotly-plot g.legend g.traces").count())
    assert lab.until(lambda: lab.drawn_lines(monitor) >= 2), "no host was drawn"
    assert monitor.locator("table.gpdl-table tbody tr").count() >= 1
    lab.shot(monitor, "gpu-monitor")
