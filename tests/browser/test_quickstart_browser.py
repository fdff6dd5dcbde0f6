"""The quickstart and every widget in a real browser: JupyterLab on loopback, Playwright.

JupyterLab runs from this Python on a free 127.0.0.1 port, with its own
settings (notebook windowing off, so every cell is in the DOM), a token, and
``DATABASE_URL`` set to the test server. Playwright (Python) drives Debian's
``/usr/bin/chromium`` (never a browser of its own). It opens the quickstart
and clicks Run All once its kernel is idle (and a "Select Kernel" dialog, if any, is
answered), waits until
every code cell ran (failing at the first error output or widget that cannot
display), then checks what a user sees: the learning curves' traces and
legend, k bars in the top-k chart. A second
notebook, written here, shows the other widgets on the quickstart's tables:
the architecture editor (visible number fields, add a layer, save), a fresh
top-k widget and the GPU monitor; the top-k widget answers an upload. A
third notebook retrains as tutorial 03 does (a baseline fit, the editor adds a
model to the selection, a second fit): Run All is clicked at once, while its
kernel still starts; each curves widget draws its traces, the retrained one a
curve more; after a page reload (the kernel live) the curves and the top-k
chart are drawn again. Screenshots go to
``tests/browser/screenshots/`` (or ``$GPDL_SCREENSHOTS``); their paths are printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from PIL import Image, ImageDraw

from gpdl_backend.embedded import free_port

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"
SCREENSHOTS = Path(os.environ.get("GPDL_SCREENSHOTS") or Path(__file__).parent / "screenshots")
CONFIGURATIONS, K = 4, 3  # the quickstart's grid (2 models x 2 learning rates) and top-k
RUN_TIMEOUT_S = 600
WIDGETS = "widgets.ipynb"
WIDGET_CELLS = (
    "%load_ext gpdl_jupyter\n%gpdl connect",
    "editor = %gpdl arch fashion_arch --model-id 1 --select fashion_mst\neditor",
    "fresh = %gpdl predict fashion_models -k 3 --images fashion_test\nfresh",
    "%gpdl gpu",
)
"""The other widgets, on the tables the quickstart made (the editor on cnn-8)."""
NUMBER_FIELDS = 4  # cnn-8: Conv2D filters and kernel, MaxPooling2D pool size, Dense units
RETRAIN = "retrain.ipynb"
RETRAIN_CELLS = (
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
UPLOAD = "upload-check.png"

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")


def _lab_settings(directory: Path) -> None:
    """User settings of this JupyterLab: every cell rendered, no news or update checks."""
    tracker = directory / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none", "autoStartDefaultKernel": True}))
    news = directory / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _write_notebook(path: Path, cells: tuple[str, ...]) -> None:
    """A Python 3 notebook of ``cells`` (code), not yet run."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)


@contextlib.contextmanager
def _lab_server(root: Path, shared_tmp_factory,
                env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """JupyterLab serving ``root`` on a free loopback port, own settings: ``(base URL, token)``."""
    settings = shared_tmp_factory("gpdl-lab-settings-")
    _lab_settings(settings)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, **(env or {}), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(shared_tmp_factory("gpdl-lab-workspaces-")),
           "JUPYTER_CONFIG_DIR": str(shared_tmp_factory("gpdl-lab-config-")),
           "JUPYTER_RUNTIME_DIR": str(shared_tmp_factory("gpdl-lab-runtime-"))}
    log = (root / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--allow-root", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=", "--ServerApp.open_browser=False"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + (root / "jupyterlab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, token
    finally:
        server.send_signal(signal.SIGTERM)  # shuts its kernels down too
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the session this test started
            server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def jupyter_lab(dsn: str, shared_tmp_factory) -> Iterator[tuple[str, str, Path]]:
    """JupyterLab serving the quickstart and the notebooks here: ``(base URL, token, root)``."""
    root = shared_tmp_factory("gpdl-lab-")
    shutil.copy(QUICKSTART, root / QUICKSTART.name)
    _write_notebook(root / WIDGETS, WIDGET_CELLS)
    _write_notebook(root / RETRAIN, RETRAIN_CELLS)
    with _lab_server(root, shared_tmp_factory, {
            "DATABASE_URL": dsn, "GPDL_DEMO_LIMIT": "1000",
            "GPDL_DEMO_DATA": str(shared_tmp_factory("gpdl-lab-data-"))}) as (base, token):
        yield base, token, root


@pytest.fixture(scope="module")
def page(jupyter_lab) -> Iterator:
    """A chromium page on the quickstart in JupyterLab, logged in with the token.

    Returned once the kernel is idle; Run All clicked while a kernel still
    starts (it can meet a "Select Kernel" dialog) is the retrain notebook's case.
    """
    base, token, _ = jupyter_lab
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            _open(page, f"{base}/lab/tree/{QUICKSTART.name}?token={token}")
            yield page
        finally:
            browser.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    _wait_for_kernel_idle(page, 180)
    page.wait_for_timeout(1000)  # a "Select Kernel" dialog can come just after
    dialog = page.locator(".jp-Dialog .jp-mod-accept")  # "Select Kernel", if asked
    if dialog.count():
        dialog.first.click()
        _wait_for_kernel_idle(page, 180)


def _wait_for_kernel_idle(page, timeout_s: float) -> None:
    status = page.locator(".jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if status.count() and status.first.get_attribute("data-status") == "idle":
            return
        page.wait_for_timeout(500)
    _shot(page, "kernel-not-idle")
    pytest.fail("the kernel did not become idle")


def _shot(target, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def _run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _kernel_state(base: str, token: str, notebook: str) -> str:
    """The server's word on ``notebook``'s kernel: ``starting``, ``idle``... or ``none``."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as answer:
        sessions = json.load(answer)
    return next((s["kernel"]["execution_state"] for s in sessions
                 if s["path"] == notebook and s.get("kernel")), "none")


def _run_all_at_once(page, base: str, token: str, notebook: str) -> str:
    """Open ``notebook`` and click Run All at once; returns its kernel's state at the click.

    (The page's own indicator says "idle" before it knows a kernel, so the
    server is asked.) A click while the menu item is still disabled is
    repeated, and a "Select Kernel" dialog (Run All met no kernel yet) is
    answered, until a cell is queued.
    """
    page.goto(f"{base}/lab/tree/{notebook}?reset&token={token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    at_click = _kernel_state(base, token, notebook)
    _run_all(page)
    deadline, again = time.monotonic() + 120, time.monotonic() + 20
    while not _started(page):
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count():
            dialog.first.click()
        elif time.monotonic() > deadline:
            _shot(page, "run-all-not-started")
            pytest.fail("Run All started no cell")
        elif time.monotonic() > again:
            page.keyboard.press("Escape")  # a menu left open by a disabled item
            _run_all(page)
            again = time.monotonic() + 20
        page.wait_for_timeout(250)
    return at_click


def _started(page) -> bool:
    """Whether a code cell is queued, running or done (``[*]:`` or ``[3]:``)."""
    texts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    return any(re.fullmatch(r"\[(\*|\d+)\]:", t.strip()) for t in texts)


def _fail_on_errors(page, name: str) -> None:
    """Fail at once on an error output or a widget that cannot display (not at the timeout)."""
    errors = page.locator('[data-mime-type="application/vnd.jupyter.error"], '
                          '.jp-OutputArea-output:has-text("Error displaying widget"), '
                          # a magic's refusal: IPython shows its UsageError on stderr
                          '[data-mime-type="application/vnd.jupyter.stderr"]'
                          ':has-text("UsageError:")')
    if errors.count():
        _shot(page, f"{name}-error")
        pytest.fail(f"{name}: a cell failed in JupyterLab:\n"
                    + errors.first.inner_text()[-3000:])


def _wait_until_all_ran(page, timeout_s: float, name: str = "quickstart") -> None:
    """Every code cell shows an execution count; fail at once on an error output."""
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _fail_on_errors(page, name)
        texts = prompts.all_inner_texts()
        if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
            _fail_on_errors(page, name)
            return
        page.wait_for_timeout(1000)
    _shot(page, f"{name}-timeout")
    pytest.fail(f"{name} did not finish in {timeout_s} s")


def _count(locator, expected: int, timeout_s: float = 60) -> int:
    """Poll until ``locator`` matches ``expected`` elements (widgets draw asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while locator.count() != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return locator.count()


def _until(check, timeout_s: float = 60):
    """Poll ``check()`` until it returns something true; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def _drawn_lines(plot) -> int:
    """Scatter traces plotly drew with at least two points (an SVG path with a segment)."""
    return plot.locator("g.scatterlayer g.trace path.js-line").evaluate_all(
        "paths => paths.filter(p => /[0-9][ ,]*L/.test(p.getAttribute('d') || '')).length")


def _legend(widget) -> list[str]:
    """The legend entries of ``widget``'s chart, as shown."""
    return widget.locator(".js-plotly-plot g.legend g.traces").all_text_contents()


def _bars(topk) -> list[str]:
    """The top-k chart's class labels and the bars' percentages, as shown."""
    plot = topk.locator(".js-plotly-plot")
    return (plot.locator(".ytick text").all_text_contents()
            + plot.locator(".bars .point").all_text_contents())


def _chosen_text(select) -> str:
    """The option a dropdown shows as chosen."""
    return select.evaluate("s => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text"
                           " : ''").replace("\xa0", " ")  # ipywidgets' nbsp


def _visible_number_inputs(widget) -> int:
    """Number fields Chromium really shows (computed visibility and a size)."""
    return widget.locator("input[type=number]").evaluate_all(
        "inputs => inputs.filter(i => getComputedStyle(i).visibility === 'visible' "
        "&& i.getBoundingClientRect().width > 0).length")


@pytest.fixture(scope="module")
def ran(page):
    """The quickstart after Run All Cells, every cell done."""
    started = time.monotonic()
    _run_all(page)
    if not _until(lambda: _started(page), 30):  # clicked while Run All was still disabled
        _run_all(page)
        assert _until(lambda: _started(page), 60), "Run All started no cell"
    _wait_until_all_ran(page, RUN_TIMEOUT_S)
    print(f"ran the quickstart in JupyterLab in {time.monotonic() - started:.0f} s")
    _shot(page, "quickstart-page")
    return page


def test_learning_curves_draw_one_legend_entry_per_configuration(ran) -> None:
    curves = ran.locator(".gpdl-learning-curves").first
    curves.scroll_into_view_if_needed()
    legend = curves.locator(".js-plotly-plot g.legend g.traces")
    assert _count(legend, CONFIGURATIONS) == CONFIGURATIONS
    assert "cnn-8" in (legend.first.text_content() or "")  # the model's name, not "model 1"
    # Run All during kernel start-up: the traces are drawn, not plotly's empty axes.
    lines = _until(lambda: _drawn_lines(curves) >= 2 * CONFIGURATIONS and _drawn_lines(curves))
    assert lines >= 2 * CONFIGURATIONS  # training and validation of each, hops too
    header = curves.locator(".widget-html-content", has_text=re.compile(r"· finished · iteration"))
    assert _count(header, 1) == 1
    _shot(curves, "learning-curves")


def test_topk_draws_k_bars(ran) -> None:
    topk = ran.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    bars = topk.locator(".js-plotly-plot .bars .point")
    assert _count(bars, K) == K
    assert "top 3" in (topk.locator(".js-plotly-plot .gtitle").first.text_content() or "")
    _shot(topk, "topk")


def test_static_snapshots_render_too(ran) -> None:
    """The snapshot() figures (plotly's mimetype renderer) sit outside the widgets."""
    widgets = ran.locator(".gpdl-learning-curves .js-plotly-plot, .gpdl-topk .js-plotly-plot")
    assert widgets.count() == 2
    assert _count(ran.locator(".jp-Notebook .js-plotly-plot"), 4) == 4


@pytest.fixture(scope="module")
def widgets_page(ran, jupyter_lab):
    """The second notebook (editor, fresh top-k, GPU monitor), all cells run."""
    base, token, _ = jupyter_lab
    _open(ran, f"{base}/lab/tree/{WIDGETS}?reset&token={token}")
    _run_all(ran)
    if not _until(lambda: _started(ran), 30):
        _run_all(ran)
    _wait_until_all_ran(ran, 300, "widgets")
    return ran


def test_editor_shows_editable_fields_and_saves(widgets_page) -> None:
    editor = widgets_page.locator(".gpdl-arch-editor").first
    editor.wait_for()
    editor.scroll_into_view_if_needed()
    assert _until(lambda: _visible_number_inputs(editor) == NUMBER_FIELDS), \
        f"{_visible_number_inputs(editor)} number fields shown, not {NUMBER_FIELDS}"
    _shot(editor, "editor")
    summary = editor.locator(".widget-html-content", has_text="parameters ·").first
    before = summary.inner_text()
    filters = editor.locator("input[type=number]").first  # the Conv2D's filters
    filters.fill("16")
    filters.press("Enter")
    assert _until(lambda: summary.inner_text() != before), "editing a field changed nothing"
    edited = summary.inner_text()
    editor.get_by_role("button", name="Add layer").click()
    assert _until(lambda: summary.inner_text() != edited), "adding a layer changed nothing"
    assert "5 layers" in summary.inner_text()
    editor.get_by_role("button", name="Save as new model").click()
    status = editor.locator(".widget-html-content", has_text="saved as model_id")
    assert _count(status, 1) == 1, "save showed no status"
    editor.locator("button", has_text="Add to selection").click()  # its name has an icon
    added = editor.locator(".widget-html-content", has_text="added to fashion_mst")
    assert _count(added, 1) == 1
    _shot(editor, "editor-saved")


def test_topk_first_state_says_what_to_do(widgets_page) -> None:
    topk = widgets_page.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    assert "choose a stored image" in _chosen_text(topk.locator("select").first)
    assert topk.locator("img").evaluate_all(
        "imgs => imgs.filter(i => i.offsetParent !== null).length") == 0  # no broken image
    note = topk.locator(".js-plotly-plot .annotation-text", has_text="no image yet")
    assert _count(note, 1) == 1
    _shot(topk, "topk-first-state")
    topk.locator("select").first.select_option(index=1)  # a stored image, as a user picks
    assert _count(topk.locator(".js-plotly-plot .bars .point"), K) == K
    _shot(topk, "topk-chosen")


def test_topk_answers_an_upload(widgets_page, tmp_path: Path) -> None:
    """A file set on the upload button replaces the stored image: new bars, its name."""
    topk = widgets_page.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    select, title = topk.locator("select").first, topk.locator(".js-plotly-plot .gtitle").first
    select.select_option(index=2)
    stored = _chosen_text(select).rsplit(" (", 1)[0]  # "name (label)"
    assert _until(lambda: stored in (title.text_content() or "")), "the stored image not shown"
    before = _until(lambda: len(bars := _bars(topk)) == 2 * K and bars)
    assert before, f"the stored image's bars: {_bars(topk)}"
    image = Image.new("L", (28, 28))
    ImageDraw.Draw(image).rectangle((9, 2, 18, 25), fill=255)  # a white bar on black
    image.save(tmp_path / UPLOAD)
    with widgets_page.expect_file_chooser() as chooser:  # its input is not in the page
        topk.locator(".widget-upload").click()
    chooser.value.set_files(str(tmp_path / UPLOAD))
    assert _until(lambda: UPLOAD in (title.text_content() or "")), \
        f"the chart still says {title.text_content()!r}"
    after = _until(lambda: len(bars := _bars(topk)) == 2 * K and bars)
    assert after and after != before, f"the bars did not change: {after}"
    caption = topk.locator(".widget-html-content", has_text=UPLOAD)
    assert _count(caption, 1) == 1  # under the image, not the stored one's name
    assert stored not in caption.first.inner_text()
    assert "choose a stored image" in _chosen_text(select)  # no longer names the stored one
    assert topk.locator("img").evaluate_all(
        "imgs => imgs.filter(i => i.offsetParent !== null && i.naturalWidth > 0).length") == 1
    _shot(topk, "topk-uploaded")


def test_gpu_monitor_draws_its_hosts(widgets_page) -> None:
    monitor = widgets_page.locator(".gpdl-gpu-monitor").first
    monitor.scroll_into_view_if_needed()
    assert _until(lambda: monitor.locator(".js-plotly-plot g.legend g.traces").count())
    assert _until(lambda: _drawn_lines(monitor) >= 2), "no host was drawn"
    assert monitor.locator("table.gpdl-table tbody tr").count() >= 1
    _shot(monitor, "gpu-monitor")


@pytest.fixture(scope="module")
def retrain_page(ran, jupyter_lab):
    """The retrain notebook, Run All clicked while its kernel starts, every cell done."""
    base, token, _ = jupyter_lab
    started = time.monotonic()
    at_click = _run_all_at_once(ran, base, token, RETRAIN)
    print(f"Run All clicked with the kernel: {at_click}")
    assert at_click in ("none", "starting"), f"kernel {at_click}: not the start-up case"
    _wait_until_all_ran(ran, RUN_TIMEOUT_S, "retrain")
    print(f"ran the retrain notebook in JupyterLab in {time.monotonic() - started:.0f} s")
    return ran


def _curves_drawn(page, configurations: tuple[int, ...]) -> list[int]:
    """Lines drawn by each curves widget, once each has its legend and two lines a curve."""
    curves = page.locator(".gpdl-learning-curves")
    assert _count(curves, len(configurations)) == len(configurations)
    for index, expected in enumerate(configurations):
        widget = curves.nth(index)
        widget.scroll_into_view_if_needed()
        assert _count(widget.locator(".js-plotly-plot g.legend g.traces"), expected) == expected
        _until(lambda w=widget, n=expected: _drawn_lines(w) >= 2 * n)
    return [_drawn_lines(curves.nth(i)) for i in range(len(configurations))]


def test_curves_draw_after_run_all_while_the_kernel_starts(retrain_page) -> None:
    lines = _curves_drawn(retrain_page, (1, 2))
    assert lines[0] >= 2 and lines[1] >= 4, f"lines drawn: {lines} (plotly's empty axes?)"
    _shot(retrain_page.locator(".gpdl-learning-curves").first, "startup-learning-curves")


def test_retrain_draws_one_more_curve(retrain_page) -> None:
    curves = retrain_page.locator(".gpdl-learning-curves")
    _curves_drawn(retrain_page, (1, 2))
    before, after = _legend(curves.nth(0)), _legend(curves.nth(1))
    assert len(after) == len(before) + 1, (before, after)
    assert sum("cnn-8 wider" in entry for entry in after) == 1, after  # the edited model
    assert not any("cnn-8 wider" in entry for entry in before), before
    assert _drawn_lines(curves.nth(1)) > _drawn_lines(curves.nth(0))
    _shot(curves.nth(1), "retrain-learning-curves")


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
    assert _until(lambda: _widget_outputs(root / RETRAIN) == 3, 30), "the outputs were not saved"
    page.reload()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    if not _until(lambda: page.locator(".gpdl-learning-curves").count() == 2):
        _shot(page, "reload-no-widgets")
    lines = _curves_drawn(page, (1, 2))
    assert lines[0] >= 2 and lines[1] >= 4, f"lines drawn after the reload: {lines}"
    topk = page.locator(".gpdl-topk").first
    topk.scroll_into_view_if_needed()
    assert _count(topk.locator(".js-plotly-plot .bars .point"), K) == K
    assert "top 3" in (topk.locator(".js-plotly-plot .gtitle").first.text_content() or "")
    _shot(page.locator(".gpdl-learning-curves").nth(1), "reload-learning-curves")
    _shot(topk, "reload-topk")
