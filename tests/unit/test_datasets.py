"""Tests of gpdl_backend.datasets: IDX reading, Fashion-MNIST and synthetic writers."""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpdl_backend import datasets
from gpdl_backend.datasets import (
    FASHION_MNIST_CLASSES,
    MARKER_NAME,
    find_fashion_mnist,
    read_idx,
    write_fashion_mnist,
    write_synthetic_images,
)
from gpdl_backend.errors import UsageError

_IDX_CODES = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D}


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as an IDX file."""
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write ``array`` to ``path`` as IDX, gzipped unless told otherwise."""
    raw = _idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def _fake_source(directory: Path, train_labels: list[int], test_labels: list[int]) -> Path:
    """A small Fashion-MNIST look-alike: image ``i`` is filled with ``i % 256``."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, labels in (("train", train_labels), ("t10k", test_labels)):
        count = len(labels)
        images = np.repeat(np.arange(count, dtype=np.uint8), 28 * 28).reshape(count, 28, 28)
        _write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.array(labels, np.uint8))
    return directory


def _debian_fashion_mnist() -> dict[str, Path]:
    """The installed Fashion-MNIST files, or skip the test."""
    try:
        return find_fashion_mnist()
    except UsageError:
        pytest.skip("dataset-fashion-mnist is not installed")


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-5, 0, 70000], dtype=np.int32),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
    ],
)
def test_read_idx_round_trips(tmp_path: Path, array: np.ndarray, compress: bool) -> None:
    result = read_idx(_write_idx(tmp_path / "data.idx", array, compress))
    assert result.dtype == array.dtype
    assert result.dtype.isnative
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad magic"),
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x07", "bad magic"),
        (b"\x00\x00\x42\x01\x00\x00\x00\x01\x07", "element type"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "dimensions"),
        (_idx_bytes(np.zeros((4, 5), np.uint8))[:-1], "bytes"),
        (_idx_bytes(np.zeros((4, 5), np.uint8)) + b"\x00", "bytes"),
        (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")[:15], "decompress"),
        (b"\x1f\x8b" + b"not really gzip", "decompress"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "corrupt.idx"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=f"corrupt IDX file .*{message}"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        read_idx(tmp_path / "nothing.gz")


# --------------------------------------------------------------------------- find


def test_class_names_are_ten_safe_folder_names() -> None:
    assert len(FASHION_MNIST_CLASSES) == 10
    assert len(set(FASHION_MNIST_CLASSES)) == 10
    assert all(re.fullmatch(r"[a-z0-9_-]+", name) for name in FASHION_MNIST_CLASSES)


def test_find_in_directory(tmp_path: Path) -> None:
    source = _fake_source(tmp_path, [0, 1], [2])
    found = find_fashion_mnist(source)
    assert set(found) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert found["test_labels"] == source / "t10k-labels-idx1-ubyte.gz"


def test_find_in_directory_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="apt-get install dataset-fashion-mnist"):
        find_fashion_mnist(tmp_path)


def test_find_default_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    monkeypatch.setattr(datasets, "_dpkg_dirs", lambda: [])
    with pytest.raises(UsageError, match="apt-get install dataset-fashion-mnist"):
        find_fashion_mnist()


def test_find_default_falls_back_to_dpkg(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = _debian_fashion_mnist()
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", ())
    assert find_fashion_mnist() == installed


# --------------------------------------------------------------------------- Fashion-MNIST


def _pngs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def test_write_fashion_mnist_real_data(tmp_path: Path) -> None:
    files = _debian_fashion_mnist()
    calls: list[tuple[int, int]] = []
    counts = write_fashion_mnist(
        tmp_path, limit=50, processes=2, progress=lambda d, t: calls.append((d, t))
    )
    assert counts == {"train": 50, "test": 50}
    assert calls[-1] == (100, 100)
    for split in ("train", "test"):
        assert sorted(p.name for p in (tmp_path / split).iterdir()) == sorted(FASHION_MNIST_CLASSES)
        for name in FASHION_MNIST_CLASSES:
            assert len(list((tmp_path / split / name).glob(f"{split}_*.png"))) == 5
    paths = _pngs(tmp_path)
    assert len(paths) == 100
    for path in paths[::7]:
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "L", (28, 28))

    # The file name is the index in the IDX file; class folder and pixels match it.
    labels = read_idx(files["test_labels"])
    images = read_idx(files["test_images"])
    path = next((tmp_path / "test").rglob("*.png"))
    index = int(path.stem.split("_")[1])
    assert path.parent.name == FASHION_MNIST_CLASSES[labels[index]]
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), images[index])

    marker = json.loads((tmp_path / MARKER_NAME).read_text())
    assert marker["complete"] is True
    assert marker["counts"] == {"train": 50, "test": 50}


def test_write_fashion_mnist_limit_is_stratified(tmp_path: Path) -> None:
    # Class 0 is rare and late in the file: the first 6 images would miss it.
    source = _fake_source(tmp_path / "src", [1, 2, 1, 2, 1, 2, 1, 2, 0, 1], [3, 3])
    counts = write_fashion_mnist(tmp_path / "out", limit=5, processes=1, source_dir=source)
    assert counts == {"train": 5, "test": 2}
    written = {p.relative_to(tmp_path / "out").as_posix() for p in _pngs(tmp_path / "out")}
    assert written == {
        "train/t-shirt_top/train_00008.png",
        "train/trouser/train_00000.png",
        "train/trouser/train_00002.png",
        "train/pullover/train_00001.png",
        "train/pullover/train_00003.png",
        "test/dress/test_00000.png",
        "test/dress/test_00001.png",
    }
    with Image.open(tmp_path / "out/train/t-shirt_top/train_00008.png") as image:
        assert np.all(np.asarray(image) == 8)


def test_stratified_ten_percent_has_every_class() -> None:
    labels = np.repeat(np.arange(10, dtype=np.uint8), 100)  # sorted: worst case
    keep = datasets._stratified_first(labels, 100)
    assert np.bincount(labels[keep]).tolist() == [10] * 10
    assert keep.tolist() == sorted(keep.tolist())


def test_write_fashion_mnist_is_idempotent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = _fake_source(tmp_path / "src", [0, 1, 2, 3], [4, 5])
    out = tmp_path / "out"
    first = write_fashion_mnist(out, processes=1, source_dir=source)

    def fail(*args: object) -> None:
        raise AssertionError("rewrote a complete dataset")

    monkeypatch.setattr(datasets, "_run", fail)
    assert write_fashion_mnist(out, processes=1, source_dir=source) == first


def test_write_fashion_mnist_redoes_an_interrupted_run(tmp_path: Path) -> None:
    source = _fake_source(tmp_path / "src", [0, 1, 2, 3], [4, 5])
    out = tmp_path / "out"
    write_fashion_mnist(out, processes=1, source_dir=source)
    marker = json.loads((out / MARKER_NAME).read_text())
    marker["complete"] = False
    (out / MARKER_NAME).write_text(json.dumps(marker))
    stray = out / "train" / "trouser" / "train_99999.png"
    stray.write_bytes(b"left over")

    assert write_fashion_mnist(out, processes=1, source_dir=source) == {"train": 4, "test": 2}
    assert not stray.exists()
    assert len(_pngs(out)) == 6
    assert json.loads((out / MARKER_NAME).read_text())["complete"] is True


def test_write_fashion_mnist_new_limit_replaces_old_files(tmp_path: Path) -> None:
    source = _fake_source(tmp_path / "src", [0, 1, 2, 3], [4, 5])
    out = tmp_path / "out"
    write_fashion_mnist(out, processes=1, source_dir=source)
    assert write_fashion_mnist(out, limit=1, processes=1, source_dir=source) == {
        "train": 1,
        "test": 1,
    }
    assert len(_pngs(out)) == 2


def test_write_fashion_mnist_refuses_foreign_folder(tmp_path: Path) -> None:
    source = _fake_source(tmp_path / "src", [0, 1], [2])
    (tmp_path / "out" / "train").mkdir(parents=True)
    (tmp_path / "out" / "train" / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not written by gpdl"):
        write_fashion_mnist(tmp_path / "out", source_dir=source)
    assert (tmp_path / "out" / "train" / "mine.txt").exists()


@pytest.mark.parametrize(
    "kwargs",
    [{"splits": ("validation",)}, {"splits": ()}, {"limit": 0}, {"processes": 0}],
)
def test_write_fashion_mnist_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        write_fashion_mnist(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- synthetic


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("img_*")}


def test_synthetic_layout_counts_and_sizes(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    written = write_synthetic_images(
        tmp_path,
        25,
        size=(20, 12),
        num_classes=4,
        processes=1,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert written == 25
    assert calls[-1] == (25, 25)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "class_0",
        "class_1",
        "class_2",
        "class_3",
    ]
    assert len(list((tmp_path / "class_0").iterdir())) == 7  # images 0, 4, ..., 24
    assert (tmp_path / "class_1" / "img_000005.png").is_file()
    for path in tmp_path.rglob("*.png"):
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (20, 12))
    assert json.loads((tmp_path / MARKER_NAME).read_text())["complete"] is True


@pytest.mark.parametrize(
    ("mode", "image_format", "suffix", "pil_format"),
    [("L", "png", ".png", "PNG"), ("RGB", "jpeg", ".jpg", "JPEG"), ("L", "JPG", ".jpg", "JPEG")],
)
def test_synthetic_modes_and_formats(
    tmp_path: Path, mode: str, image_format: str, suffix: str, pil_format: str
) -> None:
    write_synthetic_images(tmp_path, 6, mode=mode, image_format=image_format, processes=1)
    paths = sorted(tmp_path.rglob("img_*"))
    assert len(paths) == 6
    for path in paths:
        assert path.suffix == suffix
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == (pil_format, mode, (32, 32))


def test_synthetic_class_folders_sort_in_class_order(tmp_path: Path) -> None:
    write_synthetic_images(tmp_path, 12, num_classes=12, processes=1)
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == [f"class_{k:02d}" for k in range(12)]


def test_synthetic_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    # 600 images make three chunks, so processes=2 really uses the pool.
    write_synthetic_images(tmp_path / "a", 600, seed=3, processes=1)
    write_synthetic_images(tmp_path / "b", 600, seed=3, processes=2)
    write_synthetic_images(tmp_path / "c", 600, seed=4, processes=1)
    a, b, c = (_read_tree(tmp_path / name) for name in "abc")
    assert len(a) == 600
    assert a == b
    assert a.keys() == c.keys()
    assert a != c


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_synthetic_images_are_learnable(tmp_path: Path, mode: str) -> None:
    """A nearest-centroid classifier on shift-invariant features beats chance."""
    write_synthetic_images(tmp_path, 400, mode=mode, processes=1)
    features, labels = [], []
    for path in sorted(tmp_path.rglob("*.png")):
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        spectrum = np.abs(np.fft.fft2(pixels.mean(axis=2))).ravel()
        features.append(np.concatenate([pixels.mean(axis=(0, 1)), spectrum / spectrum[0]]))
        labels.append(int(path.parent.name.removeprefix("class_")))
    x, y = np.array(features), np.array(labels)
    train = np.arange(len(y)) % 2 == 0
    centroids = np.stack([x[train & (y == k)].mean(axis=0) for k in range(10)])
    distances = ((x[~train, None, :] - centroids[None]) ** 2).sum(axis=2)
    accuracy = float((distances.argmin(axis=1) == y[~train]).mean())
    assert accuracy > 0.9


def test_synthetic_is_idempotent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_synthetic_images(tmp_path, 10, processes=1)
    before = _read_tree(tmp_path)

    def fail(*args: object) -> None:
        raise AssertionError("rewrote a complete dataset")

    monkeypatch.setattr(datasets, "_run", fail)
    assert write_synthetic_images(tmp_path, 10, processes=1) == 10
    monkeypatch.undo()
    assert write_synthetic_images(tmp_path, 5, processes=1) == 5
    after = _read_tree(tmp_path)
    assert len(after) == 5
    assert all(after[name] == before[name] for name in after)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0},
        {"count": 5, "size": (0, 4)},
        {"count": 5, "size": 32},
        {"count": 5, "mode": "CMYK"},
        {"count": 5, "num_classes": 0},
        {"count": 5, "image_format": "gif"},
        {"count": 5, "processes": -1},
    ],
)
def test_synthetic_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        write_synthetic_images(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())
