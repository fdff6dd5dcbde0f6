"""The end-to-end demo on the embedded database (``gpdl demo``, the README's main job).

Steps, each printed with its timing: start the embedded PostgreSQL and install
gpdl; write Debian's Fashion-MNIST as PNG files in class folders (a stratified
subset, the quickstart's by default); then run the quickstart notebook headless
against the same server, which loads those files into image tables in parallel
on every segment, packs them, defines configurations, trains them all at once
and infers the top 3, each cell's time printed; last, write the executed
notebook, a self-contained HTML report (learning curves and top-k charts drawn
offline) and reveal.js slides that run offline (reveal.js in a folder beside
them; see ``gpdl_jupyter.report``). The data is written and loaded once: the
notebook finds the demo's files, and its load is the demo's load. Without a
notebook the demo loads and packs the files itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from psycopg2 import sql

from gpdl_backend import datasets
from gpdl_backend.embedded import EmbeddedServer
from gpdl_backend.install import install_if_needed
from gpdl_jupyter import api
from gpdl_jupyter.connection import mask_password
from gpdl_jupyter.report import CellEvent, NotebookFailed, ReportFiles, run_notebook, write_reports

QUICKSTART = Path(__file__).resolve().parent.parent / "notebooks" / "01_quickstart.ipynb"
"""The notebook the demo runs (in the checkout)."""
QUICKSTART_MODELS = "fashion_models"
"""The quickstart's fit output, whose first evaluation is its first curve point."""


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step's title, then its duration."""
    print(f"==> {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def _bar(desc: str):
    from tqdm import tqdm

    bar = tqdm(desc=f"    {desc}", unit="img", dynamic_ncols=True, mininterval=0.5)

    def update(done: int, total: int, errors: int = 0) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    return bar, update


def run_demo(home: Path | None = None, port: int | None = None, data_dir: Path | None = None,
             limit: int = datasets.QUICKSTART_LIMIT, out_dir: Path | None = None,
             notebook: Path | None = QUICKSTART, show_password: bool = False) -> None:
    """Run the demo.

    Args:
        home: gpdl home of the embedded server. Defaults to ``default_home()``.
        port: its port. Defaults to the recorded one, else 54329.
        data_dir: where the PNG files go. Defaults to
            ``<home>/datasets/fashion-mnist-<limit>``, where the quickstart looks.
        limit: images per split (stratified); 60000 is all of Fashion-MNIST.
            Defaults to the quickstart's 6000 (10%, a couple of minutes).
        out_dir: where the executed notebook and its reports go. Defaults to
            ``<home>/demo``.
        notebook: the notebook to run after the foundation steps; None loads and
            packs the data instead. Defaults to the quickstart.
        show_password: print the server's DSN with its password. Defaults to
            False (masked; the full DSN is in ``<home>/dsn``, mode 0600).

    Raises:
        NotebookFailed: a cell of the notebook failed (the partial notebook
            and its report are written first).
    """
    server = EmbeddedServer.default(home, port)
    with step(f"embedded PostgreSQL under {server.home}"):
        dsn = server.start(quiet=False)
        result = install_if_needed(dsn, servers_dir=str(server.servers_dir))
        done = "installed" if result.changed else "already installed"
        print(f"    gpdl {result.version} {done}, {result.num_segments} segments")
    directory = data_dir or server.home / "datasets" / f"fashion-mnist-{limit}"
    with step(f"Fashion-MNIST as PNG files in {directory}"):
        bar, update = _bar("writing")
        with bar:
            counts = datasets.write_fashion_mnist(directory, limit=limit, progress=update)
        print(f"    {counts}")
    if notebook is None:
        _load_and_pack(directory, dsn)
    print(f"\nready: {dsn if show_password else mask_password(dsn)}")
    if notebook is not None:  # the notebook loads the files just written
        env = {"DATABASE_URL": dsn, "GPDL_DEMO_LIMIT": str(limit),
               "GPDL_DEMO_DATA": str(directory)}
        files = run_quickstart(notebook, out_dir or server.home / "demo", env)
        if notebook == QUICKSTART:
            _print_time_to_first_curve(dsn, QUICKSTART_MODELS)
        beside = f" (with {files.reveal.name}/ beside it)" if files.reveal else ""
        print(f"\nexecuted notebook: {files.notebook}\nHTML report:       {files.html}\n"
              f"slides:            {files.slides}{beside}")


def _load_and_pack(directory: Path, dsn: str) -> None:
    """What the quickstart's first cells do, for a demo without a notebook."""
    for split in ("train", "test"):
        table = f"fashion_{split}"
        with step(f"load {directory / split} into {table}"):
            bar, update = _bar("loading")
            with bar:
                loaded = api.load_images(str(directory / split), table, color_mode="L",
                                         if_exists="replace", progress=update, dsn=dsn)
            print(f"    {loaded.images} images, {loaded.errors} skipped, "
                  f"{loaded.images_per_second:.0f} images/s")
    with step("pack into training and validation buffers"):
        packed = api.preprocess("fashion_train", "fashion_train_packed", if_exists="replace",
                                dsn=dsn)
        api.preprocess("fashion_test", "fashion_test_packed",
                       validation_of="fashion_train_packed", if_exists="replace", dsn=dsn)
        print(f"    {packed.images} images in {packed.buffers} buffers over "
              f"{packed.num_segments} segments, classes: {', '.join(packed.class_values)}")


def _print_time_to_first_curve(dsn: str, models: str) -> None:
    """How long the user waited for the first point of the learning curves, and the rest.

    ``metrics_elapsed_time`` counts from the job's start, recorded as the fit
    call began planning, so its first value is the wait for the first point.
    """
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT min(metrics_elapsed_time[1]), "
                            "max(metrics_elapsed_time[cardinality(metrics_elapsed_time)]) "
                            "FROM {}").format(sql.Identifier(models + "_info")))
        first, last = cur.fetchone()
    conn.close()
    if first is not None:
        print(f"time to first curve: {first:.1f} s from the fit call to its first "
              f"evaluated iteration; {last:.1f} s to the last")


def _print_cell(event: CellEvent) -> None:
    line = event.first_line if len(event.first_line) <= 70 else event.first_line[:69] + "…"
    print(f"    [{event.index:>2}/{event.total}] {event.seconds:5.1f} s  {line}", flush=True)


def run_quickstart(notebook: Path, out_dir: Path, env: dict[str, str]) -> ReportFiles:
    """Execute ``notebook`` headless with ``env``, then write it and its reports to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = notebook.stem
    with step(f"run {notebook.name} headless (a fresh kernel, DATABASE_URL = the demo's server)"):
        try:
            executed = run_notebook(notebook, out_dir, env=env, on_cell=_print_cell)
        except NotebookFailed as error:
            files = write_reports(error.notebook, out_dir, stem)
            print(f"    the partly executed notebook: {files.notebook}")
            raise
    with step(f"write the executed notebook, an HTML report and slides into {out_dir}"):
        files = write_reports(executed, out_dir, stem)
    return files
