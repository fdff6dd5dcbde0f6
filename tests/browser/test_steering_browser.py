"""A person steers a running search from the learning-curves widget, in a real browser.

A notebook written here starts a search (``%%gpdl automl``, hyperopt, one
configuration of 300 iterations, so it runs until stopped) on the
quickstart's tables. In chromium, as a user does, the test chooses the
configuration, clones it with other fit params, extends the clone, and stops
the original; the widget's message line, legend and table must say each.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest

from gpdl_backend.errors import UsageError
from gpdl_jupyter import api
from tests.browser import lab

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

OUTPUT = "steer_search"
NOTEBOOK = "steering.ipynb"
CELLS = (
    f"%load_ext gpdl_jupyter\n%gpdl connect\n%gpdl drop {OUTPUT} {OUTPUT}_mst",
    f"%%gpdl automl fashion_train_packed {OUTPUT} {OUTPUT}_mst --arch fashion_arch "
    "--validation fashion_test_packed --metrics-frequency 1\n"
    "method: hyperopt\nparams: {num_configs: 1, num_iterations: 300, algorithm: rand}\n"
    "model_ids: [1]\ncompile:\n  loss: [categorical_crossentropy]\n"
    "  optimizer_params_list:\n    - optimizer: [Adam]\n      lr: [0.003]\n"
    "  metrics: [accuracy]\nfit:\n  batch_size: [64]\n  epochs: [1]",
)
"""A search that trains mst 1 until a person stops it."""
CELL_TEXT = """(widget, [mst, title]) => {
  const titles = [...widget.querySelectorAll('table.gpdl-table thead th')]
                   .map(th => th.textContent.replace(/[ ▲▼]+$/, ''));
  const row = widget.querySelector(`table.gpdl-table tr[data-mst="${mst}"]`);
  const column = titles.indexOf(title);
  return row && column >= 0 ? row.children[column].textContent : null;
}"""

lab.skip_without_chromium()


@pytest.fixture(scope="module")
def search(ran, jupyter_lab, dsn: str) -> Iterator:
    """The steering notebook run: its search trains mst 1; stopped at the end whatever happens."""
    base, token, root = jupyter_lab
    lab.write_notebook(root / NOTEBOOK, CELLS)
    try:
        lab.open_and_run(ran, base, token, NOTEBOOK, 300)
        yield ran.locator(".gpdl-learning-curves").first
    finally:
        with contextlib.suppress(UsageError):  # already over: nothing to stop
            api.stop(OUTPUT, dsn=dsn)


def _cell(curves, mst: int, title: str) -> str | None:
    """The text of configuration ``mst``'s ``title`` column in the widget's table."""
    return curves.evaluate(CELL_TEXT, [mst, title])


def _row(curves, mst: int) -> tuple[str | None, str | None]:
    """Configuration ``mst``'s status and iteration, as its table row shows them."""
    return _cell(curves, mst, "status"), _cell(curves, mst, "iteration")


def _choose(curves, index: int) -> None:
    """Choose the ``index``-th configuration in the widget's dropdown, as a user does."""
    curves.locator(".widget-dropdown", has_text="Configuration").locator("select") \
        .select_option(index=index)


def _set(field, value: str) -> None:
    field.fill(value)
    field.press("Enter")


def test_a_person_clones_extends_and_stops_configurations(search) -> None:
    curves = search
    curves.scroll_into_view_if_needed()
    message = curves.locator(".widget-html-content", has_text="mst ")
    clone, extend = (curves.locator("button", has_text=name) for name in ("Clone", "Extend"))
    stop = curves.locator("button", has_text="Stop configuration")
    assert lab.until(lambda: float(_cell(curves, 1, "iteration") or 0) >= 1, 120), \
        "the search drew no iteration"
    assert lab.until(clone.is_enabled), "Clone stays disabled while the search runs"
    assert extend.is_disabled()  # the search still decides about mst 1
    lab.shot(curves, "steering-running")

    _set(curves.locator(".widget-text", has_text="iterations").locator("input"), "1")
    _set(curves.locator("input[placeholder^='fit params']"), "batch_size=32,epochs=1")
    clone.click()
    cloned = message.filter(has_text="mst 2: a clone of mst 1, 1 iterations")
    assert lab.count(cloned, 1, 120) == 1, message.all_inner_texts()
    # Each legend entry says what sets it apart, the original's too (not its first name).
    legend = ["batch 64 · mst 1", "batch 32 · mst 2"]
    assert lab.until(lambda: lab.legend(curves) == legend), lab.legend(curves)
    assert lab.until(lambda: _cell(curves, 2, "batch") == "32"), _cell(curves, 2, "batch")

    _choose(curves, 1)  # mst 2, the clone
    assert lab.until(extend.is_enabled), "a clone cannot be extended"
    _set(curves.locator(".widget-text", has_text="iterations").locator("input"), "2")
    extend.click()
    extended = message.filter(has_text="mst 2 trains to iteration 3")
    assert lab.count(extended, 1, 120) == 1, message.all_inner_texts()
    # The clone may have finished its first iteration before the extend: "finished"
    # alone can be that earlier end, so its row must say iteration 3 too.
    assert lab.until(lambda: _row(curves, 2) == ("finished", "3"), 300), \
        f"the clone: {_row(curves, 2)}"
    lab.shot(curves, "steering-cloned-extended")

    _choose(curves, 0)  # mst 1, still training
    assert lab.until(stop.is_enabled), "mst 1 cannot be stopped"
    stop.click()
    assert lab.until(lambda: _cell(curves, 1, "status") == "stopped", 120), \
        f"mst 1 is {_cell(curves, 1, 'status')}"
    header = curves.locator(".widget-html-content", has_text=f"{OUTPUT} ·")
    # Nothing is left to train (the clone finished): the search ends by itself.
    assert lab.until(lambda: re.search(r"· finished · iteration", header.first.inner_text()),
                     120), header.first.inner_text()
    assert lab.until(stop.is_hidden) and clone.is_disabled()  # nothing left to stop
    lab.shot(curves, "steering-stopped")
