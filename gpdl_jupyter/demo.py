"""The end-to-end demo on the embedded database (``gpdl demo``, the README's main job).

Steps, each printed with its timing: start the embedded PostgreSQL and install
gpdl; write Debian's Fashion-MNIST as PNG files in class folders; load them
into image tables in parallel on every segment; pack them into training and
validation buffers; print a summary.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpdl_backend import datasets
from gpdl_backend.embedded import EmbeddedServer
from gpdl_backend.images.loader import load_images
from gpdl_backend.install import install
from gpdl_backend.preprocess import training_preprocessor, validation_preprocessor


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
             limit: int | None = None) -> dict:
    """Run the demo; returns the tables it made with their image counts.

    Args:
        home: gpdl home of the embedded server. Defaults to ``default_home()``.
        port: its port. Defaults to the recorded one, else 54329.
        data_dir: where the PNG files go. Defaults to ``<home>/datasets/fashion-mnist``.
        limit: images per split (stratified), for a quick run. Defaults to all.
    """
    server = EmbeddedServer.default(home, port)
    with step(f"embedded PostgreSQL under {server.home}"):
        dsn = server.start(quiet=False)
        result = install(dsn, servers_dir=str(server.servers_dir))
        print(f"    gpdl {result.version} installed, {result.num_segments} segments")
    directory = data_dir or server.home / "datasets" / "fashion-mnist"
    with step(f"Fashion-MNIST as PNG files in {directory}"):
        bar, update = _bar("writing")
        with bar:
            counts = datasets.write_fashion_mnist(directory, limit=limit, progress=update)
        print(f"    {counts}")
    made: dict[str, int] = {}
    for split in ("train", "test"):
        table = f"fashion_{split}"
        with step(f"load {directory / split} into {table}"):
            bar, update = _bar("loading")
            with bar:
                loaded = load_images(dsn, str(directory / split), table, color_mode="L",
                                     if_exists="replace", progress=update)
            print(f"    {loaded.images} images, {loaded.errors} skipped, "
                  f"{loaded.images_per_second:.0f} images/s")
            made[table] = loaded.images
    with step("pack into training and validation buffers"):
        packed = training_preprocessor(dsn, "fashion_train", "fashion_train_packed",
                                       if_exists="replace")
        validation_preprocessor(dsn, "fashion_test", "fashion_test_packed",
                                "fashion_train_packed", if_exists="replace")
        print(f"    {packed.images} images in {packed.buffers} buffers over "
              f"{packed.num_segments} segments, classes: {', '.join(packed.class_values)}")
    print(f"\nready: {dsn}")
    return made
