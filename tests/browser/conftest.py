"""One JupyterLab, one chromium page and one quickstart run for the browser test modules.

The quickstart makes the tables the other notebooks use (``fashion_train_packed``,
``fashion_arch``, ``fashion_models``...). Each module writes its own notebook
into the lab's root and opens it on the same page, so the quickstart's
tests must run while the page still shows it: pytest's order (file names)
runs ``test_quickstart_browser`` before the modules that open other notebooks
(retrain, steering, tutorials, widgets).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import lab

QUICKSTART = lab.ROOT / "notebooks" / "01_quickstart.ipynb"


@pytest.fixture(scope="package")
def jupyter_lab(dsn: str, servers_dir: Path,
                shared_tmp_factory) -> Iterator[tuple[str, str, Path]]:
    """JupyterLab serving the quickstart and the modules' notebooks: ``(URL, token, root)``.

    The variables the tutorials read (as ``tests/notebooks`` sets them): the
    test server, 1000 training images, images where the server can read them,
    and the tests' servers dir (the Greenplum tutorial's ``gpdl install`` keeps it).
    """
    root = shared_tmp_factory("gpdl-lab-")
    shutil.copy(QUICKSTART, root / QUICKSTART.name)
    with lab.lab_server(root, shared_tmp_factory, {
            "DATABASE_URL": dsn, "GPDL_DEMO_LIMIT": "1000",
            "GPDL_DEMO_DATA": str(shared_tmp_factory("gpdl-lab-data-")),
            "GPDL_SERVERS_DIR": str(servers_dir)}) as (base, token):
        yield base, token, root


@pytest.fixture(scope="package")
def page(jupyter_lab) -> Iterator:
    """A chromium page on the quickstart in JupyterLab, logged in with the token.

    Returned once the kernel is idle; Run All clicked while a kernel still
    starts (it can meet a "Select Kernel" dialog) is the retrain notebook's case.
    """
    base, token, _ = jupyter_lab
    with lab.browser_page(lab.skip_without_chromium()) as page:
        lab.open_notebook(page, f"{base}/lab/tree/{QUICKSTART.name}?token={token}")
        yield page


@pytest.fixture(scope="package")
def ran(page):
    """The quickstart after Run All Cells, every cell done."""
    started = time.monotonic()
    lab.run_notebook(page, lab.RUN_TIMEOUT_S, "quickstart")
    print(f"ran the quickstart in JupyterLab in {time.monotonic() - started:.0f} s")
    lab.shot(page, "quickstart-page")
    return page
