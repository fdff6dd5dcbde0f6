"""The tutorials: built from ``notebooks/build.py``, valid, executed with nbval, exported.

- Unit: the committed notebooks are what ``build.py`` writes; every cell has
  slide metadata; every code cell is valid IPython and every ``%gpdl`` line
  parses.
- Database: ``pytest --nbval-lax`` runs tutorials 01-03 and 05 in a subprocess
  against the test server (``DATABASE_URL``) with a kernel of this Python,
  comparing the ``# NBVAL_CHECK_OUTPUT`` cells, and 04 as well when that
  server is Greenplum; the quickstart's HTML report and reveal.js slides (what
  ``gpdl demo`` writes) show its charts.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = [
    "01_quickstart.ipynb", "02_object_storage.ipynb", "03_architecture_editor.ipynb",
    pytest.param("04_greenplum.ipynb", marks=pytest.mark.greenplum_only(
        reason="the Greenplum tutorial installs on a cluster and shows its segments' rows")),
    "05_sql.ipynb",
]
DEMO_LIMIT = "1000"  # training images of the quickstart here: 100 per class, fast


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


# --- unit ------------------------------------------------------------------------------------
def test_notebooks_are_built_from_build_py(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_build().main(["--check"]) == 0, capsys.readouterr().out + \
        " — run .venv/bin/python notebooks/build.py"
    assert [p.name for p in all_notebooks()] == sorted(load_build().NOTEBOOKS)


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: p.stem)
def test_outputs_are_clean_but_the_checked_ones(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        assert "slide_type" in cell.metadata.get("slideshow", {}), cell.id
        if cell.cell_type != "code":
            continue
        if "# NBVAL_CHECK_OUTPUT" in cell.source:
            assert [o.output_type for o in cell.outputs] == ["stream"], cell.id
            assert cell.execution_count is not None, cell.id  # nbval skips unrun cells
        else:
            assert (cell.outputs, cell.execution_count) == ([], None), cell.id


def _placeholder(name: str) -> str:
    """A stand-in value for a ``{{name}}`` in a %gpdl line (ids and counts are integers)."""
    numeric = name.isupper() or name.endswith("_id") or name in ("narrow", "wide")
    return "1" if numeric else name


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: p.stem)
def test_every_cell_is_valid(path: Path) -> None:
    """Each code cell compiles as IPython; each %gpdl line parses with the magic's parsers.

    A tutorial has at least four magic commands: %gpdl lines, or %%sql cells (05).
    """
    from IPython.core.inputtransformer2 import TransformerManager

    from gpdl_jupyter.magics import commands
    from gpdl_jupyter.magics.commands import COMMANDS, Context
    from gpdl_jupyter.magics.parsing import body_words, split_words

    transformer = TransformerManager()
    notebook = nbformat.read(path, as_version=4)
    checked = 0
    for cell in (c for c in notebook.cells if c.cell_type == "code"):
        compile(transformer.transform_cell(cell.source), f"{path.name}:{cell.id}", "exec")
        lines = cell.source.splitlines()
        magic_lines = [(i, line.split("%gpdl", 1)[1]) for i, line in enumerate(lines)
                       if re.match(r"^(\w+ = )?%%?gpdl\b", line)]
        for index, rest in magic_lines:
            text = re.sub(r"\{\{(\w+)\}\}", lambda m: _placeholder(m.group(1)), rest)
            words = split_words(text.lstrip("%"))
            name = words[0]
            assert name in COMMANDS, f"{path.name}:{cell.id}: unknown command {name}"
            if lines[index].startswith("%%gpdl") and COMMANDS[name].BODY == "options":
                words += body_words("\n".join(lines[index + 1:]))
            commands.parse(name, words[1:], Context())
            checked += 1
        checked += cell.source.startswith("%%sql")
    assert checked >= 4


# --- database --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def notebook_env(dsn: str, servers_dir: Path, shared_tmp_factory) -> dict[str, str]:
    """The variables the notebooks read; images go where the server can read them.

    ``GPDL_SERVERS_DIR``: ``gpdl install`` in the Greenplum tutorial records the
    tests' servers dir again, not ``/etc/gpdl/servers``.
    """
    data = shared_tmp_factory("gpdl-notebooks-")
    return {**os.environ, "DATABASE_URL": dsn, "GPDL_DEMO_LIMIT": DEMO_LIMIT,
            "GPDL_DEMO_DATA": str(data), "GPDL_SERVERS_DIR": str(servers_dir)}


@pytest.mark.db
@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("name", EXECUTED, ids=lambda n: n.split(".")[0])
def test_tutorial_runs_with_nbval(name: str, notebook_env: dict[str, str],
                                  shared_tmp_factory) -> None:
    env = {**notebook_env, "GPDL_DEMO_DATA": str(shared_tmp_factory(f"gpdl-{name[:2]}-"))}
    if name.startswith("01"):
        env["GPDL_DEMO_DATA"] = notebook_env["GPDL_DEMO_DATA"]  # shared with the report test
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout", "600",
               "--nbval-sanitize-with", str(NOTEBOOKS / "nbval_sanitize.cfg"),
               "--rootdir", str(NOTEBOOKS), str(NOTEBOOKS / name)]
    result = subprocess.run(command, cwd=NOTEBOOKS, env=env, capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", result.stdout), result.stdout[-2000:]
    if name.startswith("04"):  # its gpdl install kept what the tests' install recorded
        import psycopg2

        with psycopg2.connect(env["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT value FROM gpdl.config WHERE key = 'servers_dir'")
            assert cur.fetchone()[0] == env["GPDL_SERVERS_DIR"]
        conn.close()


@pytest.fixture(scope="module")
def quickstart_report(notebook_env: dict[str, str], shared_tmp_factory):
    """The quickstart run as ``gpdl demo`` runs it, with its HTML report and slides."""
    from gpdl_jupyter.report import run_notebook, write_reports

    out = shared_tmp_factory("gpdl-report-")
    keys = ("DATABASE_URL", "GPDL_DEMO_LIMIT", "GPDL_DEMO_DATA")
    notebook = run_notebook(NOTEBOOKS / "01_quickstart.ipynb", out,
                            env={key: notebook_env[key] for key in keys})
    return notebook, write_reports(notebook, out, "01_quickstart")


def _plotly_divs(html: str) -> int:
    return len(re.findall(r'<div [^>]*class="plotly-graph-div"', html))


@pytest.mark.db
@pytest.mark.notebooks
@pytest.mark.slow
def test_html_report_draws_the_charts_offline(quickstart_report) -> None:
    _, files = quickstart_report
    html = files.html.read_text()
    assert _plotly_divs(html) == 2  # learning curves and top-k bars
    assert "Plotly.newPlot" in html and "plotly.js v" in html  # plotly.js embedded
    assert not re.search(r'src="[^"]*plot\.ly', html)  # not loaded from a CDN
    assert "LearningCurves(children" not in html
    assert "live LearningCurves widget" in html and "live TopK widget" in html
    assert "Traceback" not in html
    assert nbformat.read(files.notebook, as_version=4).cells[-1].cell_type == "markdown"


@pytest.mark.db
@pytest.mark.notebooks
@pytest.mark.slow
def test_slides_show_the_figures(quickstart_report) -> None:
    _, files = quickstart_report
    slides = files.slides.read_text()
    assert "reveal" in slides and slides.count("<section") >= 6
    assert _plotly_divs(slides) == 2
    assert "plotly.js v" in slides
    assert "# NBVAL_CHECK_OUTPUT" not in slides  # CI checks are skipped in the slides


@pytest.mark.db
@pytest.mark.notebooks
@pytest.mark.slow
def test_the_demo_prints_its_time_to_first_curve(quickstart_report, notebook_env, capsys) -> None:
    from gpdl_jupyter import demo

    demo._print_time_to_first_curve(notebook_env["DATABASE_URL"], demo.QUICKSTART_MODELS)
    line = capsys.readouterr().out
    match = re.fullmatch(r"time to first curve: ([\d.]+) s from the fit call to its first "
                         r"evaluated iteration; ([\d.]+) s to the last\n", line)
    assert match, line
    first, last = map(float, match.groups())
    assert 0 < first < last  # the quickstart evaluates each of its iterations
