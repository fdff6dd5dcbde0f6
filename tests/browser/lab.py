"""JupyterLab in Debian's chromium, as a user sees it: the browser tests' shared helpers.

JupyterLab runs from this Python on a free 127.0.0.1 port, with its own
settings (notebook windowing off, so every cell is in the DOM) and a token.
Playwright (Python) drives ``/usr/bin/chromium`` (never a browser of its own).
A notebook is opened once its kernel is idle (a "Select Kernel" dialog, if
any, answered), Run All is clicked, and the wait ends when every code cell
shows an execution count, failing at once at an error output, a magic's
``UsageError`` or a widget that cannot display. Screenshots go to
``tests/browser/screenshots/`` (or ``$GPDL_SCREENSHOTS``); their paths are
printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from gpdl_backend.embedded import free_port
from tests.local_servers import wait_until_answering

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("GPDL_SCREENSHOTS") or Path(__file__).parent / "screenshots")
RUN_TIMEOUT_S = 600
"""The longest a notebook that trains may take to run all its cells."""


def skip_without_chromium() -> Any:
    """Skip the calling test module without Debian's chromium; Playwright's sync API."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium)",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


def write_notebook(path: Path, cells: tuple[str, ...]) -> None:
    """A Python 3 notebook of ``cells`` (code), not yet run."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)


def _lab_settings(directory: Path) -> None:
    """User settings of this JupyterLab: every cell rendered, no news or update checks."""
    tracker = directory / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none", "autoStartDefaultKernel": True}))
    news = directory / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@contextlib.contextmanager
def lab_server(root: Path, shared_tmp_factory: Callable[[str], Path],
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
        if not wait_until_answering(f"{base}/api/status?token={token}", server, 90):
            pytest.fail("JupyterLab did not start:\n"
                        + (root / "jupyterlab.log").read_text()[-3000:])
        yield base, token
    finally:
        server.send_signal(signal.SIGTERM)  # shuts its kernels down too
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the session this test started
            server.wait(timeout=10)
        log.close()


@contextlib.contextmanager
def browser_page(playwright_api: Any) -> Iterator[Any]:
    """A chromium page of 1400 x 1000 px, a minute for each step."""
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def open_notebook(page: Any, url: str) -> None:
    """Go to a notebook's ``url`` and wait until its kernel is idle."""
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    _wait_for_kernel_idle(page, 180)
    page.wait_for_timeout(1000)  # a "Select Kernel" dialog can come just after
    dialog = page.locator(".jp-Dialog .jp-mod-accept")  # "Select Kernel", if asked
    if dialog.count():
        dialog.first.click()
        _wait_for_kernel_idle(page, 180)


def run_notebook(page: Any, timeout_s: float, name: str) -> None:
    """Click Run All on the open notebook and wait until every code cell ran."""
    run_all(page)
    if not until(lambda: started(page), 30):  # clicked while Run All was still disabled
        run_all(page)
        assert until(lambda: started(page), 60), f"{name}: Run All started no cell"
    wait_until_all_ran(page, timeout_s, name)


def open_and_run(page: Any, base: str, token: str, notebook: str, timeout_s: float) -> None:
    """Open ``notebook`` (a kernel of its own: ``?reset``), Run All, every cell done."""
    started_at = time.monotonic()
    open_notebook(page, f"{base}/lab/tree/{notebook}?reset&token={token}")
    run_notebook(page, timeout_s, Path(notebook).stem)
    print(f"ran {notebook} in JupyterLab in {time.monotonic() - started_at:.0f} s")


def _wait_for_kernel_idle(page: Any, timeout_s: float) -> None:
    status = page.locator(".jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if status.count() and status.first.get_attribute("data-status") == "idle":
            return
        page.wait_for_timeout(500)
    shot(page, "kernel-not-idle")
    pytest.fail("the kernel did not become idle")


def shot(target: Any, name: str) -> Path:
    """A screenshot of a page or an element, saved as ``name``.png; its path printed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def run_all(page: Any) -> None:
    """Run > Run All Cells, clicked in the menu bar as a user does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def kernel_state(base: str, token: str, notebook: str) -> str:
    """The server's word on ``notebook``'s kernel: ``starting``, ``idle``... or ``none``."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as answer:
        sessions = json.load(answer)
    return next((s["kernel"]["execution_state"] for s in sessions
                 if s["path"] == notebook and s.get("kernel")), "none")


def run_all_at_once(page: Any, base: str, token: str, notebook: str) -> str:
    """Open ``notebook`` and click Run All at once; returns its kernel's state at the click.

    (The page's own indicator says "idle" before it knows a kernel, so the
    server is asked.) A click while the menu item is still disabled is
    repeated, and a "Select Kernel" dialog (Run All met no kernel yet) is
    answered, until a cell is queued.
    """
    page.goto(f"{base}/lab/tree/{notebook}?reset&token={token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    at_click = kernel_state(base, token, notebook)
    run_all(page)
    deadline, again = time.monotonic() + 120, time.monotonic() + 20
    while not started(page):
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count():
            dialog.first.click()
        elif time.monotonic() > deadline:
            shot(page, "run-all-not-started")
            pytest.fail("Run All started no cell")
        elif time.monotonic() > again:
            page.keyboard.press("Escape")  # a menu left open by a disabled item
            run_all(page)
            again = time.monotonic() + 20
        page.wait_for_timeout(250)
    return at_click


def started(page: Any) -> bool:
    """Whether a code cell is queued, running or done (``[*]:`` or ``[3]:``)."""
    texts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    return any(re.fullmatch(r"\[(\*|\d+)\]:", t.strip()) for t in texts)


def fail_on_errors(page: Any, name: str) -> None:
    """Fail at once on an error output or a widget that cannot display (not at the timeout)."""
    errors = page.locator('[data-mime-type="application/vnd.jupyter.error"], '
                          '.jp-OutputArea-output:has-text("Error displaying widget"), '
                          # a magic's refusal: IPython shows its UsageError on stderr
                          '[data-mime-type="application/vnd.jupyter.stderr"]'
                          ':has-text("UsageError:")')
    if errors.count():
        shot(page, f"{name}-error")
        pytest.fail(f"{name}: a cell failed in JupyterLab:\n"
                    + errors.first.inner_text()[-3000:])


def wait_until_all_ran(page: Any, timeout_s: float, name: str) -> None:
    """Every code cell shows an execution count; fail at once on an error output."""
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fail_on_errors(page, name)
        texts = prompts.all_inner_texts()
        if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
            fail_on_errors(page, name)
            return
        page.wait_for_timeout(1000)
    shot(page, f"{name}-timeout")
    pytest.fail(f"{name} did not finish in {timeout_s} s")


def count(locator: Any, expected: int, timeout_s: float = 60) -> int:
    """Poll until ``locator`` matches ``expected`` elements (widgets draw asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while locator.count() != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return locator.count()


def until(check: Callable[[], Any], timeout_s: float = 60) -> Any:
    """Poll ``check()`` until it returns something true; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def drawn_lines(plot: Any) -> int:
    """Scatter traces plotly drew with at least two points (an SVG path with a segment)."""
    return plot.locator("g.scatterlayer g.trace path.js-line").evaluate_all(
        "paths => paths.filter(p => /[0-9][ ,]*L/.test(p.getAttribute('d') || '')).length")


def legend(widget: Any) -> list[str]:
    """The legend entries of ``widget``'s chart, as shown."""
    return widget.locator(".js-plotly-plot g.legend g.traces").all_text_contents()


def bars(topk: Any) -> list[str]:
    """The top-k chart's class labels and the bars' percentages, as shown."""
    plot = topk.locator(".js-plotly-plot")
    return (plot.locator(".ytick text").all_text_contents()
            + plot.locator(".bars .point").all_text_contents())


def chosen_text(select: Any) -> str:
    """The option a dropdown shows as chosen."""
    return select.evaluate("s => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text"
                           " : ''").replace("\xa0", " ")  # ipywidgets' nbsp


def curves_drawn(page: Any, configurations: tuple[int, ...]) -> list[int]:
    """Lines drawn by each curves widget, once each has its legend and two lines a curve."""
    curves = page.locator(".gpdl-learning-curves")
    assert count(curves, len(configurations)) == len(configurations)
    for index, expected in enumerate(configurations):
        widget = curves.nth(index)
        widget.scroll_into_view_if_needed()
        assert count(widget.locator(".js-plotly-plot g.legend g.traces"), expected) == expected
        until(lambda w=widget, n=expected: drawn_lines(w) >= 2 * n)
    return [drawn_lines(curves.nth(i)) for i in range(len(configurations))]
