"""The report and slides load nothing from the network: a tiny notebook exported."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import nbformat
import pytest

from gpdl_jupyter.report import has_math, write_reports
from gpdl_jupyter.web_assets import REVEAL, WebAssets
from tests.tiny_report import references, remote, tiny_notebook


@pytest.fixture(scope="module")
def assets() -> WebAssets:
    found = WebAssets.find()
    if found is None:
        pytest.skip("no web assets (scripts/setup.sh fetches them)")
    return found


def test_report_and_slides_load_nothing_remote(assets: WebAssets, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gpdl_jupyter.report"):
        files = write_reports(tiny_notebook(), tmp_path, "tiny", assets=assets)
    assert caplog.records == []
    assert files.reveal == tmp_path / REVEAL.folder
    for page in (files.html, files.slides):
        loaded = references(page)
        assert [url for _, url in loaded if remote(url)] == [], page.name
        for _, url in loaded:
            if not url.startswith("data:"):
                assert (page.parent / url).is_file(), f"{page.name} loads {url}: missing"
        text = page.read_text()
        assert "plotly.js v" in text and "Plotly.newPlot" in text
        assert "init_mathjax" not in text  # no math: no MathJax, nbconvert's or plotly's
        assert not any("mathjax" in url.lower() for _, url in loaded)
        assert not re.search(r"""import\s*\(?\s*['"]https?:""", text)  # no module from a CDN
    html_loads = [url for tag, url in references(files.html)]
    assert len(html_loads) == 1 and html_loads[0].startswith("data:text/javascript")  # require
    assert all(not url.startswith("reveal.js") for url in html_loads)  # one file


def test_slides_reference_the_reveal_folder_beside_them(assets: WebAssets,
                                                        tmp_path: Path) -> None:
    files = write_reports(tiny_notebook(), tmp_path, "tiny", assets=assets)
    slides = files.slides.read_text()
    assert slides.count("<section") == 6  # a slide and its subslide each
    stylesheets = {url for tag, url in references(files.slides) if tag == "link"}
    assert stylesheets == {f"{REVEAL.folder}/dist/reveal.css",
                           f"{REVEAL.folder}/dist/theme/simple.css"}
    for module in ("dist/reveal.js", "plugin/notes/notes.js"):  # what require() loads
        assert f'"{REVEAL.folder}/{module}"' in slides
        assert (files.reveal / module).is_file()
    for css in files.reveal.rglob("*.css"):  # every url() in them is embedded or beside
        for url in re.findall(r"""url\(\s*['"]?([^'")]+)""", css.read_text()):
            assert url.startswith("data:") or (css.parent / url).is_file(), f"{css}: {url}"
        assert "@import" not in css.read_text()  # the theme's Google Fonts are not loaded
    assert (files.reveal / "LICENSE").is_file()


def test_math_keeps_mathjax_and_says_so(assets: WebAssets, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gpdl_jupyter.report"):
        files = write_reports(tiny_notebook("The loss is $-\\sum y \\log p$."), tmp_path,
                              "math", assets=assets)
    assert [record.getMessage() for record in caplog.records] == [
        "math: its report and slides load MathJax (it has math) from a CDN"]
    assert any("mathjax" in url.lower() for _, url in references(files.html))
    assert any("mathjax" in url.lower() for _, url in references(files.slides))


def test_without_web_assets_the_reports_are_written_and_say_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("GPDL_WEB_ASSETS", str(tmp_path / "none"))
    with caplog.at_level(logging.WARNING, logger="gpdl_jupyter.report"):
        files = write_reports(tiny_notebook(), tmp_path, "tiny")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert messages[0].startswith(f"no web assets in {tmp_path / 'none'} (run scripts/setup.sh)")
    assert files.reveal is None and not (tmp_path / REVEAL.folder).exists()
    assert files.html.is_file() and files.slides.read_text().count("<section") == 6
    assert any("reveal.js@4.0.2" in url for _, url in references(files.slides))
    assert nbformat.read(files.notebook, as_version=4).cells[0].cell_type == "markdown"


@pytest.mark.parametrize(("markdown", "expected"), [
    ("Connect with `$DATABASE_URL`, else $GPDL_HOME.", False),
    ("It costs $5 and $6.", False),
    ("```sql\nSELECT $$a$$;\n```", False),
    ("The rate is $\\eta$.", True),
    ("$$\nx^2\n$$", True),
    ("Inline \\(x\\).", True),
    ("\\begin{align} a \\end{align}", True),
])
def test_math_in_markdown(markdown: str, expected: bool) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown)])
    assert has_math(notebook) is expected


def test_math_in_outputs() -> None:
    assert not has_math(tiny_notebook())  # plotly.js itself has many "$" in it
    assert has_math(tiny_notebook(chart_title="$\\alpha_t$"))
    latex = nbformat.v4.new_output("display_data", {"text/latex": "$x$", "text/plain": "x"})
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[latex])])
    assert has_math(notebook)
