"""The report and slides of a tiny notebook work offline in Debian's chromium (file://).

Every http(s) request is aborted and recorded (none is expected); the slides
must come up as reveal.js slides (one present at a time, the arrow key moves
on), the report must draw its plotly chart. No database; a few seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpdl_jupyter.report import ReportFiles, write_reports
from gpdl_jupyter.web_assets import WebAssets
from tests.browser import lab
from tests.tiny_report import tiny_notebook

pytestmark = [pytest.mark.browser]

playwright_api = lab.skip_without_chromium()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    assets = WebAssets.find()
    if assets is None:
        pytest.skip("no web assets (scripts/setup.sh fetches them)")
    return write_reports(tiny_notebook(), tmp_path_factory.mktemp("offline"), "tiny",
                         assets=assets)


@pytest.fixture(scope="module")
def offline_browser() -> Iterator[tuple[object, list[str]]]:
    """A chromium context that aborts every http(s) request, and the list of them."""
    remote: list[str] = []

    def refuse(route) -> None:
        remote.append(route.request.url)
        route.abort()

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(lab.CHROMIUM),
                                             args=lab.CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.route(re.compile(r"^(https?|wss?)://"), refuse)
        yield context, remote
        browser.close()


def _open(context, path: Path):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors


def test_slides_run_reveal_offline(reports: ReportFiles, offline_browser) -> None:
    context, remote = offline_browser
    page, errors = _open(context, reports.slides)
    page.wait_for_selector(".reveal.ready", timeout=15_000)
    ready = page.evaluate("() => require('reveal.js-4.0.2/dist/reveal.js').isReady()")
    slides = page.locator(".reveal .slides > section")
    assert ready is True and slides.count() == 3
    assert page.locator(".reveal .slides > section.present").count() == 1
    assert slides.nth(0).get_attribute("class").split().count("present") == 1
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(".reveal .slides > section:nth-child(2).present", timeout=5_000)
    assert page.locator(".reveal .slides > section.present").count() == 1
    assert page.locator(".reveal .slides > section.past").count() == 1
    assert (remote, errors) == ([], [])


def test_report_draws_its_chart_offline(reports: ReportFiles, offline_browser) -> None:
    context, remote = offline_browser
    page, errors = _open(context, reports.html)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15_000)
    assert page.evaluate("() => typeof require === 'function'")  # embedded require.js
    assert page.locator(".js-plotly-plot").count() == 1
    assert (remote, errors) == ([], [])
