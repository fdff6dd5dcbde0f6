"""The quickstart in a real browser: JupyterLab on loopback, driven by Playwright in chromium.

JupyterLab runs from this Python on a free 127.0.0.1 port, with its own
settings (notebook windowing off, so every cell is in the DOM), a token, and
``DATABASE_URL`` set to the test server. Playwright (Python) drives Debian's
``/usr/bin/chromium`` (never a browser of its own): open the quickstart, run
all cells, wait until every code cell ran, then check what the live widgets
drew: one legend entry per configuration in the learning curves, k bars in
the top-k chart. Screenshots go to ``tests/browser/screenshots/`` (or
``$GPDL_SCREENSHOTS``); their paths are printed.
"""

from __future__ import annotations

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

import pytest

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


@pytest.fixture(scope="module")
def jupyter_lab(dsn: str, shared_tmp_factory) -> Iterator[tuple[str, str, Path]]:
    """JupyterLab serving a copy of the quickstart: ``(base URL, token, root dir)``."""
    root = shared_tmp_factory("gpdl-lab-")
    shutil.copy(QUICKSTART, root / QUICKSTART.name)
    settings = shared_tmp_factory("gpdl-lab-settings-")
    _lab_settings(settings)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "DATABASE_URL": dsn, "GPDL_DEMO_LIMIT": "1000",
           "GPDL_DEMO_DATA": str(shared_tmp_factory("gpdl-lab-data-")),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
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
        yield base, token, root
    finally:
        server.send_signal(signal.SIGTERM)  # shuts its kernels down too
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the session this test started
            server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def page(jupyter_lab) -> Iterator:
    """A chromium page on the quickstart in JupyterLab, logged in with the token."""
    base, token, _ = jupyter_lab
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{QUICKSTART.name}?token={token}")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _wait_for_kernel_idle(page, 120)
            page.wait_for_timeout(1000)
            dialog = page.locator(".jp-Dialog .jp-mod-accept")  # "Select Kernel", if asked
            if dialog.count():
                dialog.first.click()
                _wait_for_kernel_idle(page, 120)
            yield page
        finally:
            browser.close()


def _wait_for_kernel_idle(page, timeout_s: float) -> None:
    status = page.locator(".jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if status.count() and status.first.get_attribute("data-status") == "idle":
            return
        page.wait_for_timeout(500)
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


def _wait_until_all_ran(page, timeout_s: float) -> None:
    """Every code cell shows an execution count; fail at once on an error output."""
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        errors = page.locator('[data-mime-type="application/vnd.jupyter.error"]')
        if errors.count():
            _shot(page, "quickstart-error")
            pytest.fail("a cell failed in JupyterLab:\n" + errors.first.inner_text()[-3000:])
        texts = prompts.all_inner_texts()
        if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
            return
        page.wait_for_timeout(1000)
    _shot(page, "quickstart-timeout")
    pytest.fail(f"the quickstart did not finish in {timeout_s} s")


def _count(locator, expected: int, timeout_s: float = 60) -> int:
    """Poll until ``locator`` matches ``expected`` elements (widgets draw asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while locator.count() != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return locator.count()


@pytest.fixture(scope="module")
def ran(page):
    """The quickstart after Run All Cells, every cell done."""
    started = time.monotonic()
    _run_all(page)
    _wait_until_all_ran(page, RUN_TIMEOUT_S)
    print(f"ran the quickstart in JupyterLab in {time.monotonic() - started:.0f} s")
    _shot(page, "quickstart-page")
    return page


def test_learning_curves_draw_one_legend_entry_per_configuration(ran) -> None:
    curves = ran.locator(".gpdl-learning-curves").first
    curves.scroll_into_view_if_needed()
    legend = curves.locator(".js-plotly-plot g.legend g.traces")
    assert _count(legend, CONFIGURATIONS) == CONFIGURATIONS
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
