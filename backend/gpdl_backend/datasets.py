"""Ready-made image datasets written as class-folder trees of image files.

Two sources, both laid out the way gpdl's loader expects (one folder per class):

* Fashion-MNIST, read from the IDX files that Debian's ``dataset-fashion-mnist``
  package installs, written as ``<out_dir>/<split>/<class>/<split>_<index>.png``.
* Synthetic images, ``<out_dir>/class_<k>/img_<i>.png``: coloured, oriented stripes
  plus noise, so that a tiny CNN learns them quickly (smoke tests, benchmarks).

Writing is spread over a process pool in chunks. Each writer records what it was
asked for in a marker file (``.gpdl_dataset.json``) before it starts and marks it
complete as its last step: a second call with the same arguments returns at once,
and an interrupted or differently-parametrised run is redone from scratch.

Example::

    >>> from gpdl_backend.datasets import write_fashion_mnist
    >>> write_fashion_mnist("data/fashion", limit=7000)  # doctest: +SKIP
    {'train': 7000, 'test': 7000}
"""

from __future__ import annotations

import colorsys
import gzip
import json
import multiprocessing
import os
import shutil
import subprocess
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gpdl_backend.errors import FatalError, UsageError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "MARKER_NAME",
    "QUICKSTART_LIMIT",
    "find_fashion_mnist",
    "read_idx",
    "write_fashion_mnist",
    "write_synthetic_images",
]

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
"""The ten Fashion-MNIST class names, indexed by label, safe as folder names."""

FASHION_MNIST_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)
"""Where Debian's ``dataset-fashion-mnist`` package puts the IDX files."""

MARKER_NAME = ".gpdl_dataset.json"
QUICKSTART_LIMIT = 6000
"""Training images the quickstart and the demo use by default (10%, stratified)."""
"""Marker file a writer creates first and marks complete last."""

_PACKAGE = "dataset-fashion-mnist"
_INSTALL_HINT = f"install it with `apt-get install {_PACKAGE}`"
_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_SPLITS = ("train", "test")
# IDX element type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IMAGE_FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg"), "jpg": ("JPEG", ".jpg")}
_SYNTHETIC_MODES = ("RGB", "L")

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- IDX files


def find_fashion_mnist(directory: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Locate the four Fashion-MNIST IDX files.

    Args:
        directory: folder holding ``train-images-idx3-ubyte.gz`` and its three
            siblings (plain, un-gzipped files are accepted too). Defaults to None:
            Debian's location, first the known folder(s) in ``FASHION_MNIST_DIRS``,
            then wherever ``dpkg -L dataset-fashion-mnist`` lists the files.

    Returns:
        Paths keyed ``train_images``, ``train_labels``, ``test_images``,
        ``test_labels``.

    Raises:
        UsageError: a file is missing; the message says how to install the package.

    Example::

        >>> find_fashion_mnist()["test_labels"].name  # doctest: +SKIP
        't10k-labels-idx1-ubyte.gz'
    """
    if directory is not None:
        found = _files_in(Path(directory))
        if found is None:
            raise UsageError(
                f"Fashion-MNIST IDX files not found in {directory} "
                f"(need {', '.join(n + '.gz' for n in _FASHION_FILES.values())}); "
                f"or {_INSTALL_HINT} and leave the directory out"
            )
        return found
    for candidate in (*FASHION_MNIST_DIRS, *_dpkg_dirs()):
        found = _files_in(Path(candidate))
        if found is not None:
            return found
    raise UsageError(f"Fashion-MNIST not found: {_INSTALL_HINT}")


def _files_in(directory: Path) -> dict[str, Path] | None:
    """Return the four IDX paths in ``directory`` (``.gz`` preferred), or None."""
    found = {}
    for key, stem in _FASHION_FILES.items():
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                found[key] = directory / name
                break
        else:
            return None
    return found


def _dpkg_dirs() -> list[str]:
    """Folders holding the package's training-images file, as dpkg lists them."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", _PACKAGE], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return []
    marker = _FASHION_FILES["train_images"]
    return [
        str(Path(line).parent)
        for line in listing.stdout.splitlines()
        if Path(line).name in (marker, marker + ".gz")
    ]


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped or plain; detected from its first bytes).

    Args:
        path: the file.

    Returns:
        The array, with the file's element type in native byte order and the
        shape its header declares (e.g. ``(60000, 28, 28)`` of uint8).

    Raises:
        UsageError: the file is missing, not gzip-readable, has a bad magic number
            or element type, or its size does not match its declared dimensions.

    Example::

        >>> read_idx(find_fashion_mnist()["test_labels"]).shape  # doctest: +SKIP
        (10000,)
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError as exc:
        raise UsageError(f"IDX file not found: {path}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise UsageError(f"corrupt IDX file {path}: cannot decompress ({exc})") from exc
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise UsageError(f"corrupt IDX file {path}: bad magic number {raw[:4].hex() or 'empty'}")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise UsageError(f"corrupt IDX file {path}: unknown element type 0x{type_code:02x}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise UsageError(f"corrupt IDX file {path}: header declares {ndim} dimensions")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise UsageError(
            f"corrupt IDX file {path}: {len(raw)} bytes, header {shape} needs {expected}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- Fashion-MNIST


def write_fashion_mnist(
    out_dir: str | os.PathLike[str],
    splits: Sequence[str] = _SPLITS,
    limit: int | None = None,
    progress: Progress | None = None,
    processes: int | None = None,
    source_dir: str | os.PathLike[str] | None = None,
) -> dict[str, int]:
    """Write Fashion-MNIST as ``out_dir/<split>/<class>/<split>_<index:05d>.png``.

    Images are 28x28 grayscale (mode ``L``) PNGs with the IDX pixels unchanged;
    ``<index>`` is the image's position in its split's IDX file.

    Args:
        out_dir: destination folder, created if needed. Its ``<split>`` folders
            are replaced when they hold a previous, different or unfinished run.
        splits: which of ``"train"`` (60,000 images) and ``"test"`` (10,000) to
            write. Defaults to both.
        limit: keep at most this many images per split, *stratified*: classes are
            taken in turn, each in file order, so ``limit=50`` is the first 5 of
            each class and any 10% subset holds all ten classes, equally (±1).
            Defaults to None (everything).
        progress: called as ``progress(done, total)`` after each chunk, counting
            images over all splits. Defaults to None.
        processes: worker processes. Defaults to None (one per available CPU);
            1 writes in this process.
        source_dir: where the IDX files are, see ``find_fashion_mnist``. Defaults
            to None (Debian's location).

    Returns:
        Number of images written (or already present) per split.

    Raises:
        UsageError: unknown split, bad limit, data not installed or corrupt, or
            ``out_dir`` already holds a ``<split>`` folder that gpdl did not write.
        FatalError: a worker process died.

    Example::

        >>> write_fashion_mnist("data/fashion", limit=100, processes=1)  # doctest: +SKIP
        {'train': 100, 'test': 100}
    """
    splits = tuple(splits)
    unknown = [s for s in splits if s not in _SPLITS]
    if unknown or not splits or len(set(splits)) != len(splits):
        raise UsageError(f"splits must be distinct names from {_SPLITS}, got {list(splits)}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise UsageError(f"limit must be a positive integer or None, got {limit!r}")
    _workers(processes)
    out = Path(out_dir)
    params = {"dataset": "fashion-mnist", "splits": list(splits), "limit": limit}
    done = _completed_counts(out, params)
    if done is not None:
        return done
    files = find_fashion_mnist(source_dir)
    selected = {}
    for split in splits:
        images = read_idx(files[f"{split}_images"])
        labels = read_idx(files[f"{split}_labels"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UsageError(
                f"corrupt Fashion-MNIST {split}: images {images.shape} do not match "
                f"labels {labels.shape}"
            )
        if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
            raise UsageError(f"Fashion-MNIST {split} labels out of range: {int(labels.max())}")
        indices = np.arange(len(labels)) if limit is None else _stratified_first(labels, limit)
        selected[split] = (images, labels, indices)

    _start(out, params, [out / s for s in splits])
    for split in splits:
        for name in FASHION_MNIST_CLASSES:
            (out / split / name).mkdir(parents=True, exist_ok=True)
    tasks = [
        (str(out / split), split, images[chunk], labels[chunk], chunk)
        for split, (images, labels, indices) in selected.items()
        for chunk in _chunks(indices, labels[indices], processes)
    ]
    total = sum(len(indices) for _, _, indices in selected.values())
    _run(_write_fashion_chunk, tasks, total, progress, processes)
    counts = {split: len(indices) for split, (_, _, indices) in selected.items()}
    _finish(out, params, counts)
    return counts


def _stratified_first(labels: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the first ``limit`` samples taking classes in turn, in file order.

    Each sample gets its rank within its own class; ordering by (rank, label) is
    a round robin over the classes that, once a class runs out, goes on with the
    rest. The kept indices are returned sorted.
    """
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - starts[labels[order]]
    keep = np.lexsort((labels, rank))[:limit]
    return np.sort(keep)


def _write_fashion_chunk(
    split_dir: str, split: str, images: np.ndarray, labels: np.ndarray, indices: np.ndarray
) -> int:
    """Write one chunk of Fashion-MNIST images as PNGs; return how many."""
    for image, label, index in zip(images, labels, indices, strict=True):
        name = FASHION_MNIST_CLASSES[int(label)]
        path = os.path.join(split_dir, name, f"{split}_{int(index):05d}.png")
        Image.fromarray(image, "L").save(path, format="PNG")
    return len(indices)


# --------------------------------------------------------------------------- synthetic


def write_synthetic_images(
    out_dir: str | os.PathLike[str],
    count: int,
    size: tuple[int, int] = (32, 32),
    mode: str = "RGB",
    num_classes: int = 10,
    seed: int = 0,
    image_format: str = "png",
    processes: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Write ``count`` learnable synthetic images as ``out_dir/class_<k>/img_<i:06d>.png``.

    Image ``i`` belongs to class ``i % num_classes`` (balanced classes). Class
    ``k`` is stripes at angle ``180° * k / num_classes`` in its own hue on a dark
    background; each image draws a random stripe phase, brightness and Gaussian
    pixel noise from a generator seeded by ``(seed, i)``, so the files are the
    same for a seed whatever ``processes`` is. ``k`` is zero-padded to the width
    of ``num_classes - 1`` so that folder order is class order.

    Args:
        out_dir: destination folder, created if needed; its ``class_*`` folders
            are replaced when they hold a previous, different or unfinished run.
        count: number of images (positive).
        size: ``(width, height)`` in pixels. Defaults to ``(32, 32)``.
        mode: ``"RGB"`` or ``"L"`` (grayscale: the stripe angle still tells
            classes apart). Defaults to ``"RGB"``.
        num_classes: number of classes (positive). Defaults to 10.
        seed: random seed. Defaults to 0.
        image_format: ``"png"`` or ``"jpeg"`` (files end ``.jpg``). Defaults to
            ``"png"``.
        processes: worker processes. Defaults to None (one per available CPU);
            1 writes in this process.
        progress: called as ``progress(done, total)`` after each chunk. Defaults
            to None.

    Returns:
        Number of images written (or already present).

    Raises:
        UsageError: a bad argument, or ``out_dir`` holds a ``class_*`` folder that
            gpdl did not write.
        FatalError: a worker process died.

    Example::

        >>> write_synthetic_images("data/synthetic", 1000, processes=1)  # doctest: +SKIP
        1000
    """
    width, height = _check_size(size)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UsageError(f"count must be a positive integer, got {count!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    if mode not in _SYNTHETIC_MODES:
        raise UsageError(f"mode must be one of {_SYNTHETIC_MODES}, got {mode!r}")
    if image_format.lower() not in _IMAGE_FORMATS:
        raise UsageError(f"image_format must be one of {sorted(_IMAGE_FORMATS)}")
    image_format = image_format.lower()
    _workers(processes)
    out = Path(out_dir)
    params = {
        "dataset": "synthetic",
        "count": count,
        "size": [width, height],
        "mode": mode,
        "num_classes": num_classes,
        "seed": seed,
        "image_format": image_format,
    }
    if _completed_counts(out, params) is not None:
        return count
    class_dirs = _class_dirs(out, num_classes)
    stale = [p for p in out.glob("class_*") if p.is_dir()] if out.is_dir() else []
    _start(out, params, stale)
    for directory in class_dirs:
        directory.mkdir(parents=True, exist_ok=True)
    spec = (str(out), width, height, mode, num_classes, seed, image_format)
    indices = np.arange(count)
    tasks = [(spec, chunk) for chunk in _chunks(indices, indices % num_classes, processes)]
    _run(_write_synthetic_chunk, tasks, count, progress, processes)
    _finish(out, params, {"all": count})
    return count


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    """Validate ``(width, height)``."""
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"size must be (width, height), got {size!r}") from exc
    if width < 1 or height < 1:
        raise UsageError(f"size must be positive, got {size!r}")
    return width, height


def _class_dirs(out: Path, num_classes: int) -> list[Path]:
    """The ``class_<k>`` folders, ``k`` zero-padded to a common width."""
    digits = len(str(num_classes - 1))
    return [out / f"class_{k:0{digits}d}" for k in range(num_classes)]


def _class_pattern(
    label: int, width: int, height: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class ``label``'s stripe angles (radians per pixel, height x width) and colour."""
    angle = np.pi * label / num_classes
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cycles = 3.0 / max(width, height)  # about three stripes across the image
    wave = 2 * np.pi * cycles * (xs * np.cos(angle) + ys * np.sin(angle))
    colour = np.array(colorsys.hsv_to_rgb(label / num_classes, 0.8, 1.0), dtype=np.float32)
    return wave, colour


def _synthetic_image(
    index: int, seed: int, wave: np.ndarray, colour: np.ndarray, mode: str
) -> np.ndarray:
    """Pixels of one image: its class's stripes and colour, random phase and noise."""
    rng = np.random.default_rng([seed, index])
    stripes = 0.5 + 0.5 * np.sin(wave + rng.uniform(0, 2 * np.pi))
    pixels = 0.1 + stripes[..., None] * (colour * rng.uniform(0.8, 0.95))
    pixels += rng.normal(0.0, 0.08, size=pixels.shape)
    if mode == "L":
        pixels = 0.299 * pixels[..., 0] + 0.587 * pixels[..., 1] + 0.114 * pixels[..., 2]
    return np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _write_synthetic_chunk(spec: tuple[Any, ...], indices: np.ndarray) -> int:
    """Write the synthetic images ``indices`` (all of one class); return how many."""
    out, width, height, mode, num_classes, seed, image_format = spec
    pil_format, suffix = _IMAGE_FORMATS[image_format]
    class_dirs = _class_dirs(Path(out), num_classes)
    patterns: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for index in indices.tolist():
        label = index % num_classes
        if label not in patterns:
            patterns[label] = _class_pattern(label, width, height, num_classes)
        pixels = _synthetic_image(index, seed, *patterns[label], mode)
        path = class_dirs[label] / f"img_{index:06d}{suffix}"
        Image.fromarray(pixels, mode).save(path, format=pil_format)
    return len(indices)


# --------------------------------------------------------------------------- plumbing


def _completed_counts(out: Path, params: dict[str, Any]) -> dict[str, int] | None:
    """Counts from a complete marker for the same ``params``, else None."""
    try:
        marker = json.loads((out / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(marker, dict) and marker.get("complete") and marker.get("params") == params:
        return marker.get("counts")
    return None


def _start(out: Path, params: dict[str, Any], folders: Iterable[Path]) -> None:
    """Mark ``out`` as being written, then empty ``folders`` of an older run.

    Raises:
        UsageError: a non-empty folder is there without a gpdl marker beside it.
    """
    folders = [f for f in folders if f.exists()]
    has_marker = (out / MARKER_NAME).is_file()
    foreign = [f for f in folders if not has_marker and (f.is_file() or any(f.iterdir()))]
    if foreign:
        raise UsageError(
            f"{foreign[0]} exists and was not written by gpdl; choose an empty directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out, {"complete": False, "params": params})
    for folder in folders:
        shutil.rmtree(folder)


def _finish(out: Path, params: dict[str, Any], counts: dict[str, int]) -> None:
    """Mark ``out`` complete: the last thing a writer does."""
    _write_marker(out, {"complete": True, "params": params, "counts": counts})


def _write_marker(out: Path, content: dict[str, Any]) -> None:
    """Replace the marker file atomically."""
    partial = out / (MARKER_NAME + ".tmp")
    partial.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(partial, out / MARKER_NAME)


def _workers(processes: int | None) -> int:
    """Resolve ``processes`` (None: the CPUs this process may run on)."""
    if processes is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1
    if isinstance(processes, bool) or processes < 1:
        raise UsageError(f"processes must be a positive integer or None, got {processes!r}")
    return processes


def _chunks(indices: np.ndarray, labels: np.ndarray, processes: int | None) -> list[np.ndarray]:
    """Split ``indices`` into chunks of one class each, the classes taken in turn.

    A chunk writes into one class folder and the next chunks into others, so
    that workers seldom create files in the same directory at once (the
    file system serialises that). Chunks hold 250 to 2000 images, about 8 per
    worker, or a whole class when it is smaller.
    """
    per_chunk = min(2000, max(250, -(-len(indices) // (8 * _workers(processes)))))
    per_class = [
        [members[start : start + per_chunk] for start in range(0, len(members), per_chunk)]
        for members in (indices[labels == label] for label in np.unique(labels))
    ]
    return [chunk for turn in zip_longest(*per_class) for chunk in turn if chunk is not None]


def _run(
    work: Callable[..., int],
    tasks: list[tuple[Any, ...]],
    total: int,
    progress: Progress | None,
    processes: int | None,
) -> None:
    """Run ``work(*task)`` for every task, in a pool when that helps.

    Workers are forked where the platform can: they start at once and, unlike
    spawned ones, do not re-run the caller's ``__main__`` (a script without a
    ``__name__`` guard, stdin, ``python -c``). They run only numpy and Pillow,
    so threads the caller holds (a Jupyter kernel's, TensorFlow's pools) do not
    get in their way. Elsewhere they are spawned.

    Raises:
        FatalError: a worker process died (killed, out of memory).
    """
    workers = min(_workers(processes), len(tasks))
    done = 0
    if workers <= 1:
        for task in tasks:
            done += work(*task)
            if progress is not None:
                progress(done, total)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(work, *task) for task in tasks]
        try:
            for future in as_completed(futures):
                done += future.result()
                if progress is not None:
                    progress(done, total)
        except BrokenProcessPool as exc:
            raise FatalError(f"a worker process died ({exc}); try processes=1") from exc
        except BaseException:
            for future in futures:
                future.cancel()
            raise
