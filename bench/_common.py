"""Shared set-up of the benchmarks: a private embedded server, cached data sets, tables.

By default every benchmark starts its own embedded PostgreSQL server (a
throwaway home under ``/tmp`` that the server's user can read, on a free port),
so it never touches a developer's server; ``--dsn`` points it at another server
instead (e.g. a Greenplum cluster: gpdl is installed there when missing or
out of date, and the benchmark's tables are dropped at the end). Image files
are written once into a cache directory (``--data-dir``, default
``/tmp/gpdl-bench``) and reused by later runs; the server's OS user (``gpdl``,
or ``gpadmin`` on Greenplum) must be able to read them.

Example::

    with database(None, segments=2) as dsn:
        folder = fashion_mnist_dir(DEFAULT_DATA_DIR, ("train",), limit=2000)
        load_and_pack(dsn, folder / "train", "train_images", "train_packed")
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "backend") not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT / "backend"))

from gpdl_backend import __version__ as gpdl_version  # noqa: E402
from gpdl_backend import engine as engines  # noqa: E402
from gpdl_backend import selection  # noqa: E402
from gpdl_backend.client import table_name  # noqa: E402
from gpdl_backend.datasets import write_fashion_mnist  # noqa: E402
from gpdl_backend.embedded import EmbeddedServer, free_port  # noqa: E402
from gpdl_backend.images.loader import load_images  # noqa: E402
from gpdl_backend.install import default_site_paths, install  # noqa: E402
from gpdl_backend.preprocess import (  # noqa: E402
    read_summary,
    training_preprocessor,
    validation_preprocessor,
)

try:
    from gpdl_backend import model_tables
except ImportError:  # older checkout: plain SQL below
    model_tables = None

DEFAULT_DATA_DIR = Path("/tmp/gpdl-bench")
OUT_DIR = ROOT / "bench" / "out"
_READABLE = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def say(message: str) -> None:
    """Print a timestamped progress line at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Stopwatch:
    """Named wall-clock phases: ``with watch("load"): ...``; ``watch.seconds["load"]``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def readable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the database server's user."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(_READABLE)
    return path


@contextlib.contextmanager
def private_server(segments: int = 2, keep: bool = False) -> Iterator[str]:
    """Start a throwaway embedded server with gpdl installed; yields its DSN.

    Args:
        segments: virtual segments. Defaults to 2.
        keep: leave the server running and its home in place (prints where).
    """
    home = Path(tempfile.mkdtemp(prefix="gpdl-bench-home-", dir="/tmp"))
    home.chmod(_READABLE)
    server = EmbeddedServer(home, free_port())
    try:
        dsn = server.start(quiet=True)
        install(dsn, servers_dir=str(server.servers_dir), num_segments=segments)
        say(f"embedded server on port {server.port}, {segments} segments, home {home}")
        yield dsn
    finally:
        if keep:
            say(f"kept the server running: GPDL_HOME={home}")
        else:
            server.stop()
            shutil.rmtree(home, ignore_errors=True)


# --- the database under test ---------------------------------------------------------
def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--dsn``, ``--segments`` and ``--keep-server``: where a benchmark runs."""
    parser.add_argument("--dsn", default=None,
                        help="run on this server (e.g. a Greenplum cluster) instead of a "
                             "private embedded one; gpdl is installed there if missing")
    parser.add_argument("--segments", type=int, default=2,
                        help="virtual segments of the embedded server (default 2; a "
                             "Greenplum --dsn uses its primary segments)")
    parser.add_argument("--keep-server", action="store_true",
                        help="leave the embedded server running (with --dsn: keep the "
                             "benchmark's tables)")


@contextlib.contextmanager
def database(dsn: str | None, segments: int = 2, keep: bool = False) -> Iterator[str]:
    """The benchmark's database: ``dsn`` with gpdl installed, else a private embedded server.

    Args:
        dsn: a server to use; None starts :func:`private_server`.
        segments: the embedded server's virtual segments (ignored with ``dsn``).
        keep: leave the embedded server running.
    """
    if dsn is None:
        with private_server(segments, keep=keep) as private:
            yield private
        return
    ensure_installed(dsn)
    engine = probe(dsn)
    where = psycopg2.extensions.parse_dsn(dsn)
    say(f"server {where.get('host', '')}:{where.get('port', '')}/{where.get('dbname', '')}: "
        f"{engine.kind}, {engine.num_segments} segments")
    yield dsn


def ensure_installed(dsn: str) -> None:
    """Install gpdl unless this checkout's version and site paths are installed already.

    A current install is left alone (reinstalling recreates every function,
    which would disturb other sessions on a shared cluster); an install keeps
    the recorded server-config directory.
    """
    paths = default_site_paths()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('gpdl.config') IS NOT NULL")
        config: dict[str, str] = {}
        if cur.fetchone()[0]:
            cur.execute("SELECT key, value FROM gpdl.config")
            config = dict(cur.fetchall())
    conn.close()
    if (config.get("version") == gpdl_version
            and config.get("site_paths") == os.pathsep.join(paths)):
        return
    say(f"installing gpdl {gpdl_version} (installed: {config.get('version', 'none')})")
    install(dsn, site_paths=paths, servers_dir=config.get("servers_dir"))


def probe(dsn: str) -> engines.Engine:
    """The server's kind and segments (PostgreSQL: the installed virtual segment count)."""
    with psycopg2.connect(dsn) as conn:
        engine = engines.probe(conn)
    conn.close()
    return engine


def drop_tables(dsn: str, *prefixes: str) -> None:
    """Drop the current schema's tables whose names start with any of ``prefixes``."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for prefix in prefixes:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                        "AND starts_with(tablename, %s)", (prefix,))
            for (name,) in cur.fetchall():
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                    sql.Identifier(name)))
    conn.close()


def session_pids(cur: Any, engine: engines.Engine, prefix: str) -> list[int]:
    """Server processes of the sessions whose application name starts with ``prefix``.

    On Greenplum: the coordinator's backends and every segment process of
    those sessions (the ones that train).
    """
    cur.execute(engine.session_backends(prefix))
    return [row[0] for row in cur.fetchall()]


# --- data sets ------------------------------------------------------------------------
def readable_tree(path: Path) -> Path:
    """Make a cached tree readable by the server's OS user: o+r files, o+rx directories.

    Raises:
        SystemExit: a directory above ``path`` does not let others in.
    """
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise SystemExit(f"{parent} is not searchable by others (the server's OS user "
                             f"cannot reach {path}): chmod o+x it or pick another --data-dir")
    for directory, _, names in os.walk(path):
        _add_mode(Path(directory), stat.S_IROTH | stat.S_IXOTH)
        for name in names:
            _add_mode(Path(directory, name), stat.S_IROTH)
    return path


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def fashion_mnist_dir(data_dir: Path, splits: Sequence[str], limit: int | None) -> Path:
    """Fashion-MNIST PNGs (``<dir>/<split>/<class>/*.png``), written once into the cache."""
    name = "fm-" + "-".join(splits) + (f"-{limit}" if limit else "-all")
    out = readable_dir(data_dir) / name
    started = time.perf_counter()
    counts = write_fashion_mnist(out, splits=tuple(splits), limit=limit)
    took = time.perf_counter() - started
    if took > 1:
        say(f"wrote Fashion-MNIST {counts} PNGs to {out} in {took:.0f} s")
    return readable_tree(out)


def load_and_pack(dsn: str, folder: Path, images_table: str, packed_table: str,
                  training_table: str | None = None, color_mode: str = "L",
                  watch: Stopwatch | None = None) -> int:
    """Load a class-folder tree into an image table and pack it; returns images packed.

    ``training_table`` given: pack as validation data of that packed table.
    """
    watch = watch or Stopwatch()
    with watch(f"load {images_table}"):
        loaded = load_images(dsn, str(folder), images_table, color_mode=color_mode,
                             if_exists="replace")
    with watch(f"pack {packed_table}"):
        if training_table is None:
            packed = training_preprocessor(dsn, images_table, packed_table, if_exists="replace")
        else:
            packed = validation_preprocessor(dsn, images_table, packed_table, training_table,
                                             if_exists="replace")
    say(f"loaded {loaded.images} images into {images_table} "
        f"({loaded.images_per_second:.0f} img/s), packed {packed.buffers} buffers "
        f"into {packed_table}")
    return packed.images


def export_packed(dsn: str, table: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """A packed table's pixels (uint8 N×H×W×C), class indexes and summary, via psycopg2."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        summary = read_summary(cur, table_name(table))
        cur.execute(sql.SQL("SELECT x, y, x_shape FROM {} ORDER BY __dist_key__, buffer_id")
                    .format(sql.Identifier(table)))
        images, labels = [], []
        for x, y, shape in cur.fetchall():
            images.append(np.frombuffer(x, dtype=np.uint8).reshape(shape))
            labels.append(np.frombuffer(y, dtype=">i2").astype(np.int64))
    conn.close()
    return np.concatenate(images), np.concatenate(labels), summary


# --- architectures ----------------------------------------------------------------
def cnn_json(shape: Sequence[int] = (28, 28, 1), classes: int = 10) -> str:
    """Keras' classic MNIST CNN, slimmed: 2 conv + max-pool, dropout, dense (~225K params)."""
    from gpdl_backend.keras_model import import_keras

    keras = import_keras()
    layers = keras.layers
    return keras.Sequential([
        keras.Input(tuple(shape)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(classes, activation="softmax"),
    ], name="cnn").to_json()


def vgg_json(shape: Sequence[int] = (28, 28, 1), classes: int = 10) -> str:
    """A tiny 3-block VGG: conv-BN-pool, then (conv-BN-conv-pool) at 32 and 64 filters.

    BatchNorm's momentum is 0.9, not Keras' 0.99: with a few epochs of a small
    data set the moving statistics must settle within a few hundred steps, or
    the model evaluates at chance level however well it trains (~145K params).
    """
    from gpdl_backend.keras_model import import_keras

    keras = import_keras()
    layers = keras.layers
    stack: list[Any] = [keras.Input(tuple(shape)),
                        layers.Conv2D(16, 3, padding="same", activation="relu"),
                        layers.BatchNormalization(momentum=0.9),
                        layers.MaxPooling2D()]
    for filters in (32, 64):
        stack += [
            layers.Conv2D(filters, 3, padding="same", activation="relu"),
            layers.BatchNormalization(momentum=0.9),
            layers.Conv2D(filters, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
        ]
    stack += [layers.Flatten(), layers.Dropout(0.3), layers.Dense(128, activation="relu"),
              layers.Dense(classes, activation="softmax")]
    return keras.Sequential(stack, name="vgg3").to_json()


ARCHITECTURES = {"cnn": cnn_json, "vgg3": vgg_json}


# --- model tables -------------------------------------------------------------------
def load_architectures(dsn: str, table: str, archs: Mapping[str, str]) -> dict[str, int]:
    """Put architectures (name -> Keras JSON) into a fresh model architecture table."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.close()
    ids = {}
    for name, arch in archs.items():
        if model_tables is not None:
            ids[name] = model_tables.load_keras_model(dsn, table, arch, name=name)
            continue
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (model_id serial PRIMARY KEY, model_arch json, "
                "model_weights bytea, name text, description text)").format(
                sql.Identifier(table)))
            cur.execute(sql.SQL("INSERT INTO {} (model_arch, name) VALUES (%s, %s) "
                                "RETURNING model_id").format(sql.Identifier(table)),
                        (arch, name))
            ids[name] = cur.fetchone()[0]
        conn.close()
    return ids


def generate_grid(dsn: str, arch_table: str, mst_table: str, model_ids: Sequence[int],
                  compile_grid: Mapping[str, Any], fit_grid: Mapping[str, Any]
                  ) -> list[selection.ModelConfig]:
    """A fresh model selection table holding a grid search (``generate_model_configs``)."""
    if model_tables is not None:
        return model_tables.generate_model_configs(
            dsn, arch_table, mst_table, model_ids, compile_grid, fit_grid, if_exists="replace")
    configs = selection.generate_model_configs(model_ids, compile_grid, fit_grid)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        table, summary = sql.Identifier(mst_table), sql.Identifier(mst_table + "_summary")
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(table, summary))
        cur.execute(sql.SQL("CREATE TABLE {} (mst_key serial PRIMARY KEY, model_id integer, "
                            "compile_params text, fit_params text)").format(table))
        cur.execute(sql.SQL("CREATE TABLE {} (model_arch_table text, object_table text)")
                    .format(summary))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, NULL)").format(summary), (arch_table,))
        for config in configs:
            cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(table),
                        (config.mst_key, config.model_id, config.compile_params,
                         config.fit_params))
    conn.close()
    return configs


def read_configs(dsn: str, mst_table: str, arch_table: str) -> list[dict[str, Any]]:
    """The selection table's rows with their architecture JSON and name."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL(
            "SELECT s.mst_key, s.model_id, a.name, a.model_arch::text, s.compile_params, "
            "s.fit_params FROM {} s JOIN {} a USING (model_id) ORDER BY s.mst_key").format(
            sql.Identifier(mst_table), sql.Identifier(arch_table)))
        names = ["mst_key", "model_id", "arch", "model_arch", "compile_params", "fit_params"]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.close()
    return rows


def describe_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Short fields of a configuration: optimizer, learning rate, batch size, epochs."""
    compile_params = selection.parse_compile_params(config["compile_params"])
    fit = selection.parse_fit_params(config["fit_params"])
    kwargs = dict(compile_params.optimizer_kwargs)
    return {"opt": compile_params.optimizer,
            "lr": kwargs.get("learning_rate", kwargs.get("lr")),
            "bs": fit.batch_size, "epochs": fit.epochs}


class BackendCpu:
    """CPU seconds used so far by a job's segment backends, read from ``/proc``.

    Call :meth:`sample` now and then while the job runs (the driver closes the
    sessions at the end): on a shared machine, CPU seconds over wall seconds
    says what share of the cores the job actually got.
    """

    def __init__(self, dsn: str, output: str) -> None:
        self._dsn, self._prefix = dsn, f"gpdl:{output}:seg"
        self._conn: Any = None
        self._engine: engines.Engine | None = None
        self.latest: dict[int, float] = {}

    def sample(self) -> None:
        try:
            if self._conn is None:
                self._conn = psycopg2.connect(self._dsn)
                self._conn.autocommit = True
                self._engine = engines.probe(self._conn)
            with self._conn.cursor() as cur:
                pids = session_pids(cur, self._engine, self._prefix)
        except psycopg2.Error:
            return
        for pid in pids:
            seconds = process_cpu_seconds(pid)
            if seconds is not None:
                self.latest[pid] = seconds

    @property
    def seconds(self) -> float:
        return sum(self.latest.values())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def driver_started(dsn: str, output: str) -> float | None:
    """When a job's driver opened its control session (epoch seconds): ``Driver.run``'s start.

    Ask while the job runs (the driver closes its sessions at the end).
    """
    try:
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT extract(epoch FROM min(backend_start)) FROM pg_stat_activity "
                        "WHERE application_name LIKE %s", (f"gpdl:%{output}:control",))
            value = cur.fetchone()[0]
        conn.close()
    except psycopg2.Error:
        return None
    return float(value) if value is not None else None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- output -------------------------------------------------------------------------
def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
        return "" if value is None else str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h)
              for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in text:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    """Write ``bench/out/<name>-<timestamp>.json`` and return its path."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "loadavg_at_start": load}
