"""Image loading: gpdl's parallel in-database loader vs the raw Pillow decode rate.

For each data set, the same files are

(a) read and decoded by plain Pillow into numpy arrays on every core of this
    machine (a process pool over the sorted file list, listing included): the
    physical limit of any loader here;
(b) loaded end to end by ``load_images`` into the embedded server (its own
    throwaway server, 2 virtual segments by default), or with ``--dsn`` into
    that server (on Greenplum one statement runs on all primary segments):
    listing, reading, decoding, writing the rows, publishing the table.

Both are run ``--repeat`` times, alternating, and the best run of each is kept
(the machine may be shared). The files are written once into ``--data-dir``
and stay in the page cache for both sides.

Loader memory: the private (unique) memory of the server processes running
the load (on Greenplum its segment processes) is sampled while loading N and
10N files; it must not grow with the file count.

Targets (issue 2): gpdl >= 50% of the raw decode rate; 50K CIFAR-sized PNGs in
<= 15 s; flat memory.

Run::

    .venv/bin/python bench/bench_load.py           # 50K synthetic + 60K Fashion-MNIST
    .venv/bin/python bench/bench_load.py --quick   # CI smoke size
    .venv/bin/python bench/bench_load.py --dsn postgresql://gpadmin@127.0.0.1:7000/gpdl
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import psutil
import psycopg2
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from gpdl_backend import datasets
from gpdl_backend.errors import GpdlError
from gpdl_backend.images.loader import load_images

TABLE = "bench_load_images"


@dataclass(frozen=True)
class DataSet:
    name: str
    folder: Path
    color_mode: str


# --- data ---------------------------------------------------------------------------
def synthetic(data_dir: Path, count: int) -> DataSet:
    """``count`` synthetic 32x32 RGB PNGs (CIFAR-10 sized), written once."""
    folder = common.readable_dir(data_dir) / f"synthetic-32x32-{count}"
    started = time.perf_counter()
    datasets.write_synthetic_images(folder, count, size=(32, 32), mode="RGB")
    if time.perf_counter() - started > 1:
        common.say(f"wrote {count} synthetic PNGs to {folder}")
    common.readable_tree(folder)
    return DataSet(f"synthetic 32x32 RGB ({count // 1000}K)", folder, "RGB")


def fashion_mnist(data_dir: Path, limit: int | None) -> DataSet | None:
    """Fashion-MNIST's training PNGs (28x28 L), or None without Debian's package."""
    try:
        folder = common.fashion_mnist_dir(data_dir, ("train",), limit)
    except GpdlError as error:
        common.say(f"skipping Fashion-MNIST: {error}")
        return None
    count = sum(1 for _ in _files(folder / "train"))
    return DataSet(f"Fashion-MNIST train ({count // 1000}K)", folder / "train", "L")


def _files(folder: Path) -> Iterator[str]:
    """The image files under ``folder``, sorted, hidden ones skipped (like the loader)."""
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield os.path.join(directory, name)


# --- (a) raw decode -------------------------------------------------------------------
def _decode_chunk(paths: list[str], mode: str) -> int:
    """Read and decode files to uint8 arrays; returns the pixel bytes decoded."""
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        total += np.asarray(Image.open(BytesIO(data)).convert(mode)).nbytes
    return total


def raw_decode(data: DataSet, pool: ProcessPoolExecutor, workers: int) -> tuple[int, float]:
    """Images and seconds to list, read and decode every file on all cores."""
    started = time.perf_counter()
    paths = list(_files(data.folder))
    chunks = [paths[i::workers * 8] for i in range(workers * 8)]
    decoded = sum(pool.map(_decode_chunk, chunks, [data.color_mode] * len(chunks)))
    seconds = time.perf_counter() - started
    assert decoded > 0
    return len(paths), seconds


# --- (b) gpdl -------------------------------------------------------------------------
def gpdl_load(dsn: str, data: DataSet, batch_size: int) -> tuple[int, float]:
    """Images and seconds of ``load_images`` end to end."""
    started = time.perf_counter()
    result = load_images(dsn, str(data.folder), TABLE, batch_size=batch_size,
                         color_mode=data.color_mode, if_exists="replace")
    seconds = time.perf_counter() - started
    return result.images, seconds


# --- memory ---------------------------------------------------------------------------
class BackendMemory:
    """Samples, in a thread, the memory of the server processes running a load.

    They are found by their statement (``gpdl.read_images`` of the folder) in
    ``pg_stat_activity``, or ``gp_stat_activity`` on Greenplum, where the
    segment processes do the work: a shared server's other sessions are left
    out. ``anon`` is a process's anonymous resident memory (``RssAnon``: its
    heap, i.e. Python, numpy arrays, decoded batches, sort and tuple stores);
    ``rss`` also counts the shared buffers and files it has touched, which grow
    with the data written whatever the loader's own memory does.
    """

    def __init__(self, dsn: str, folder: Path, interval: float = 0.05) -> None:
        self.dsn, self.interval = dsn, interval
        self.pattern = f"%gpdl.read_images('{folder}',%"  # the location comes first
        self.peak_anon = 0
        self.peak_rss = 0
        self.peak_total_anon = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackendMemory:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = psycopg2.connect(self.dsn)
            conn.autocommit = True
            if common.probe(self.dsn).is_greenplum:  # leave out this session's own processes
                query = ("SELECT pid FROM gp_stat_activity WHERE query LIKE %s "
                         "AND sess_id <> current_setting('gp_session_id')::int")
            else:
                query = ("SELECT pid FROM pg_stat_activity WHERE query LIKE %s "
                         "AND pid <> pg_backend_pid()")
        finally:
            self._ready.set()  # never leave __enter__ waiting
        try:
            while not self._stop.is_set():
                with conn.cursor() as cur:
                    cur.execute(query, (self.pattern,))
                    self._sample([row[0] for row in cur.fetchall()])
                self._stop.wait(self.interval)
        finally:
            conn.close()

    def _sample(self, pids: list[int]) -> None:
        total = 0
        for pid in pids:
            try:
                info = psutil.Process(pid).memory_info()
            except psutil.Error:
                continue
            anon = info.rss - info.shared  # RssAnon (statm: shared = file + shmem)
            self.peak_anon = max(self.peak_anon, anon)
            self.peak_rss = max(self.peak_rss, info.rss)
            total += anon
        self.peak_total_anon = max(self.peak_total_anon, total)


def memory_run(dsn: str, data: DataSet, batch_size: int) -> dict[str, float]:
    with BackendMemory(dsn, data.folder) as memory:
        images, seconds = gpdl_load(dsn, data, batch_size)
    mib = 2**20
    return {"images": images, "seconds": seconds, "peak_anon_mib": memory.peak_anon / mib,
            "peak_total_anon_mib": memory.peak_total_anon / mib,
            "peak_rss_mib": memory.peak_rss / mib}


# --- main -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small counts for a CI smoke run (5K synthetic, 6K Fashion-MNIST)")
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR,
                        help="cache of image files, readable by the server (default "
                             "/tmp/gpdl-bench)")
    common.add_server_options(parser)
    parser.add_argument("--batch-size", type=int, default=500, help="images per row")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side; best kept")
    parser.add_argument("--no-fashion", action="store_true", help="skip Fashion-MNIST")
    args = parser.parse_args(argv)

    count = 5_000 if args.quick else 50_000
    memory_small = count // 10
    sets = [synthetic(args.data_dir, count)]
    if not args.no_fashion:
        fashion = fashion_mnist(args.data_dir, 6_000 if args.quick else None)
        if fashion is not None:
            sets.append(fashion)
    small = synthetic(args.data_dir, memory_small)
    workers = os.cpu_count() or 1
    common.say(f"{workers} CPUs, load average {os.getloadavg()[0]:.2f}")

    rows, result = [], {"machine": common.machine(), "dsn": args.dsn,
                        "batch_size": args.batch_size, "sets": {}}
    with common.database(args.dsn, args.segments, keep=args.keep_server) as dsn, \
            ProcessPoolExecutor(workers) as pool:
        engine = common.probe(dsn)
        result.update(server=engine.kind, segments=engine.num_segments)
        pool.submit(int).result()  # start the workers before timing
        for data in sets:
            raw_best, gpdl_best = 0.0, 0.0
            for run in range(args.repeat):
                images, seconds = raw_decode(data, pool, workers)
                raw_best = max(raw_best, images / seconds)
                loaded, load_seconds = gpdl_load(dsn, data, args.batch_size)
                assert loaded == images, (loaded, images)
                gpdl_best = max(gpdl_best, loaded / load_seconds)
                common.say(f"{data.name} run {run + 1}: raw {images / seconds:.0f} img/s, "
                           f"gpdl {loaded / load_seconds:.0f} img/s ({load_seconds:.2f} s)")
            ratio = gpdl_best / raw_best
            rows.append([data.name, images, raw_best, gpdl_best, images / gpdl_best, ratio])
            result["sets"][data.name] = {"images": images, "raw_img_s": raw_best,
                                         "gpdl_img_s": gpdl_best, "ratio": ratio}
        # A segment's memory settles after its first few rows: give the small run
        # several rows per segment (--quick: 500 files, so smaller rows).
        memory_batch = args.batch_size if not args.quick else 50
        memory = [memory_run(dsn, small, memory_batch), memory_run(dsn, sets[0], memory_batch)]
        if args.dsn and not args.keep_server:
            common.drop_tables(dsn, TABLE)
    result["memory"] = memory
    result["memory_batch_size"] = memory_batch

    print()
    print(f"gpdl on {engine.kind}, {engine.num_segments} segments; raw Pillow on {workers} "
          f"cores of this machine")
    common.print_table(
        ["data set", "images", "raw Pillow img/s", "gpdl img/s", "gpdl s", "ratio"], rows)
    print(f"\nloader memory, {memory_batch} images per row:")
    common.print_table(
        ["files", "load s", "peak backend anon MiB", "peak sum anon MiB",
         "peak backend RSS MiB (incl. shared buffers)"],
        [[m["images"], m["seconds"], m["peak_anon_mib"], m["peak_total_anon_mib"],
          m["peak_rss_mib"]] for m in memory])
    growth = memory[1]["peak_anon_mib"] / max(memory[0]["peak_anon_mib"], 1e-9)
    cifar = result["sets"][sets[0].name]
    print()
    print(f"targets: ratio >= 0.5 (got {min(r[5] for r in rows):.2f}); "
          f"{count // 1000}K CIFAR-sized in <= {15 * count / 50_000:.1f} s "
          f"(got {cifar['images'] / cifar['gpdl_img_s']:.1f} s); memory flat over 10x files "
          f"(peak backend anon x{growth:.2f})")
    print(f"results: {common.write_result('bench_load', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
