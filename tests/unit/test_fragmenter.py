"""Tests of the fragmenter: listing files in a stable order and splitting them."""

from __future__ import annotations

import inspect
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from gpdl_backend.errors import UsageError
from gpdl_backend.server.fragmenter import (
    FileRef,
    Fragment,
    for_segment,
    fragments,
    list_files,
)


def make_tree(root: Path, *paths: str) -> None:
    """Create ``paths`` under ``root``; the content of each is its own path."""
    for path in paths:
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(path.encode())


def listed(location: str | Path) -> list[str]:
    """The paths that ``list_files`` yields for a local location."""
    fs, _ = fsspec.core.url_to_fs(str(location))
    return [ref.path for ref in list_files(fs, str(location))]


@pytest.fixture
def memory_fs() -> Iterator[Any]:
    """An fsspec memory filesystem with a unique root, emptied afterwards."""
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/gpdl-test"):
        fs.rm("/gpdl-test", recursive=True)


def test_lists_files_with_labels_names_and_sizes(tmp_path: Path) -> None:
    make_tree(tmp_path, "cat/1.png", "dog/2.png")
    fs, _ = fsspec.core.url_to_fs(str(tmp_path))
    refs = list(list_files(fs, str(tmp_path)))
    assert refs == [
        FileRef(str(tmp_path / "cat/1.png"), "1.png", "cat", len("cat/1.png")),
        FileRef(str(tmp_path / "dog/2.png"), "2.png", "dog", len("dog/2.png")),
    ]


def test_order_is_sorted_depth_first_files_before_subdirectories(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        "b/2.png",
        "top.png",
        "b/10.png",
        "a/z/deep.png",
        "a/y.png",
        "a-x/1.png",
        "A/1.png",
    )
    expected = ["top.png", "A/1.png", "a/y.png", "a/z/deep.png", "a-x/1.png"]
    expected += ["b/10.png", "b/2.png"]
    assert listed(tmp_path) == [str(tmp_path / p) for p in expected]
    assert listed(tmp_path) == listed(tmp_path)


def test_label_is_the_parent_directory_at_any_depth(tmp_path: Path) -> None:
    make_tree(tmp_path, "train/cat/x/1.png", "train/2.png")
    fs, _ = fsspec.core.url_to_fs(str(tmp_path))
    labels = [(ref.name, ref.label) for ref in list_files(fs, str(tmp_path / "train"))]
    assert labels == [("2.png", "train"), ("1.png", "x")]


def test_hidden_files_and_directories_are_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path, ".DS_Store", "cat/.1.png", ".cache/cat/2.png", "cat/3.png")
    assert listed(tmp_path) == [str(tmp_path / "cat/3.png")]


def test_file_url_yields_plain_paths(tmp_path: Path) -> None:
    make_tree(tmp_path, "cat/1.png")
    assert listed(f"file://{tmp_path}") == [str(tmp_path / "cat/1.png")]


def test_single_file(tmp_path: Path) -> None:
    make_tree(tmp_path, "cat/1.png", "cat/2.png")
    fs, _ = fsspec.core.url_to_fs(str(tmp_path))
    refs = list(list_files(fs, str(tmp_path / "cat/2.png")))
    assert refs == [FileRef(str(tmp_path / "cat/2.png"), "2.png", "cat", len("cat/2.png"))]


def test_missing_location_is_a_usage_error_at_call_time(tmp_path: Path) -> None:
    fs, _ = fsspec.core.url_to_fs(str(tmp_path))
    with pytest.raises(UsageError, match="does not exist"):
        list_files(fs, str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="does not exist"):
        list_files(fs, str(tmp_path / "nope/*.png"))


def test_empty_directory_yields_nothing(tmp_path: Path) -> None:
    assert listed(tmp_path) == []


def test_broken_symlinks_are_skipped_and_loops_cut(tmp_path: Path) -> None:
    make_tree(tmp_path, "cat/1.png")
    (tmp_path / "cat/broken.png").symlink_to(tmp_path / "missing.png")
    (tmp_path / "cat/loop").symlink_to(tmp_path)
    assert listed(tmp_path) == [str(tmp_path / "cat/1.png")]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*/*.png", ["cat/1.png", "dog/3.png"]),
        ("cat/*", ["cat/1.png", "cat/2.jpg"]),
        ("*.png", ["top.png"]),
        ("[c]at/?.png", ["cat/1.png"]),
        ("**/*.png", ["top.png", "cat/1.png", "dog/3.png", "dog/old/4.png"]),
        ("*/**/4.png", ["dog/old/4.png"]),
        ("*/*.gif", []),
    ],
)
def test_glob_matches_one_component_per_star(
    tmp_path: Path, pattern: str, expected: list[str]
) -> None:
    make_tree(tmp_path, "top.png", "cat/1.png", "cat/2.jpg", "dog/3.png", "dog/old/4.png")
    assert listed(f"{tmp_path}/{pattern}") == [str(tmp_path / p) for p in expected]


def test_glob_does_not_walk_directories_that_cannot_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, "train/cat/1.png", "other/deep/er/2.png")
    scanned: list[str] = []
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        scanned.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert listed(f"{tmp_path}/train/*/*.png") == [str(tmp_path / "train/cat/1.png")]
    assert scanned == [str(tmp_path / "train"), str(tmp_path / "train/cat")]


def test_listing_is_lazy_on_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, "a/1.png", "b/2.png", "c/3.png")
    scanned: list[str] = []
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        scanned.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files = list_files(LocalFileSystem(), str(tmp_path))
    assert inspect.isgenerator(files)
    assert scanned == []
    assert next(files).name == "1.png"
    assert scanned == [str(tmp_path), str(tmp_path / "a")]


class RecordingFileSystem:
    """A remote-looking filesystem over a dict tree that records ``ls`` calls."""

    def __init__(self, tree: dict[str, list[str]]) -> None:
        self.tree = tree
        self.calls: list[str] = []

    def _strip_protocol(self, path: str) -> str:
        return path.removeprefix("fake://")

    def unstrip_protocol(self, path: str) -> str:
        return f"fake://{path}"

    def info(self, path: str) -> dict[str, Any]:
        return {"name": path, "type": "directory" if path in self.tree else "file"}

    def ls(self, path: str, detail: bool = True) -> list[dict[str, Any]]:
        self.calls.append(path)
        return [
            {"name": f"{path}/{name}", "type": "directory" if name.isalpha() else "file"}
            for name in self.tree[path]
        ]


def test_listing_streams_one_directory_at_a_time() -> None:
    fs = RecordingFileSystem(
        {"b": ["y", "x"], "b/x": ["1.png", "2.png"], "b/y": ["3.png"]},
    )
    files = list_files(fs, "fake://b")
    assert inspect.isgenerator(files)
    first = next(files)
    assert first == FileRef("fake://b/x/1.png", "1.png", "x", None)
    assert fs.calls == ["b", "b/x"]
    assert [ref.path for ref in files] == ["fake://b/x/2.png", "fake://b/y/3.png"]
    assert fs.calls == ["b", "b/x", "b/y"]


def test_listing_many_local_files_is_fast(tmp_path: Path) -> None:
    for label in ("a", "b", "c"):
        (tmp_path / label).mkdir()
        for i in range(300):
            (tmp_path / label / f"{i}.png").touch()
    fs = LocalFileSystem()
    start = time.perf_counter()
    count = sum(1 for _ in list_files(fs, str(tmp_path)))
    assert count == 900
    assert time.perf_counter() - start < 0.25  # about 3 ms; 60K files take about 0.2 s


def test_memory_filesystem_paths_carry_the_protocol(memory_fs: Any) -> None:
    for path in ("dog/2.png", "cat/1.png", "cat/.hidden.png", "cat/sub/3.png"):
        memory_fs.pipe(f"memory://gpdl-test/train/{path}", path.encode())
    fs, _ = fsspec.core.url_to_fs("memory://gpdl-test/train")
    refs = list(list_files(fs, "memory://gpdl-test/train"))
    assert [(ref.path, ref.label, ref.size) for ref in refs] == [
        ("memory:///gpdl-test/train/cat/1.png", "cat", 9),
        ("memory:///gpdl-test/train/cat/sub/3.png", "sub", 13),
        ("memory:///gpdl-test/train/dog/2.png", "dog", 9),
    ]
    assert fs.cat_file(refs[0].path) == b"cat/1.png"
    globbed = list_files(fs, "memory://gpdl-test/train/*/?.png")
    assert [ref.name for ref in globbed] == ["1.png", "2.png"]
    single = list(list_files(fs, "memory://gpdl-test/train/dog/2.png"))
    assert single == [FileRef("memory:///gpdl-test/train/dog/2.png", "2.png", "dog", 9)]
    with pytest.raises(UsageError, match="does not exist"):
        list_files(fs, "memory://gpdl-test/nope")


def refs(count: int) -> list[FileRef]:
    """``count`` distinct file refs."""
    return [FileRef(f"/d/{i}.png", f"{i}.png", "d", None) for i in range(count)]


def test_fragments_group_consecutive_files() -> None:
    files = refs(10)
    parts = list(fragments(files, 4))
    assert [part.index for part in parts] == [0, 1, 2]
    assert [len(part.files) for part in parts] == [4, 4, 2]
    assert [ref for part in parts for ref in part.files] == files
    assert list(fragments([], 4)) == []
    assert list(fragments(files, 10)) == [Fragment(0, tuple(files))]


def test_fragments_stream() -> None:
    endless = (FileRef(f"/{i}", str(i), "", None) for i in itertools.count())
    first = next(fragments(endless, 3))
    assert [ref.name for ref in first.files] == ["0", "1", "2"]


@pytest.mark.parametrize("batch_size", [0, -1, 1.5])
def test_bad_batch_size_is_a_usage_error(batch_size: Any) -> None:
    with pytest.raises(UsageError, match="batch_size"):
        fragments(refs(3), batch_size)


def test_every_fragment_goes_to_exactly_one_segment() -> None:
    parts = list(fragments(refs(23), 2))
    for num_segments in (1, 3, 5, 16):
        taken = [
            part.index
            for segment in range(num_segments)
            for part in for_segment(iter(parts), segment, num_segments)
        ]
        assert sorted(taken) == [part.index for part in parts]
    assert [p.index for p in for_segment(parts, 1, 3)] == [1, 4, 7, 10]


def test_no_segment_keeps_everything() -> None:
    parts = list(fragments(refs(5), 2))
    assert list(for_segment(parts, None, None)) == parts
    assert list(for_segment(parts)) == parts


@pytest.mark.parametrize(
    ("segment", "num_segments", "message"),
    [
        (0, None, "together"),
        (None, 2, "together"),
        (0, 0, "num_segments"),
        (2, 2, "segment must be in 0..1"),
        (-1, 2, "segment must be"),
    ],
)
def test_bad_segment_arguments_are_usage_errors(
    segment: int | None, num_segments: int | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        for_segment([], segment, num_segments)
