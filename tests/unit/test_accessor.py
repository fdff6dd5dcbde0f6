"""Tests of the accessor: server configs, opening filesystems, reading bytes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import known_implementations

from gpdl_backend.errors import UsageError
from gpdl_backend.server.accessor import open_filesystem, read_files
from gpdl_backend.server.fragmenter import FileRef, list_files


def ref(path: str) -> FileRef:
    """A FileRef for ``path``."""
    return FileRef(path, path.rpartition("/")[2], "label", None)


def reader_threads() -> list[threading.Thread]:
    """The accessor's own pool threads still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("gpdl-read")]


@pytest.fixture
def memory_files() -> Iterator[list[FileRef]]:
    """Twenty files in the memory filesystem, listed; removed afterwards."""
    fs = fsspec.filesystem("memory")
    for i in range(20):
        fs.pipe(f"memory://gpdl-accessor/train/c{i % 3}/{i:02d}.png", f"image {i}".encode())
    yield list(list_files(fs, "memory://gpdl-accessor/train"))
    fs.rm("/gpdl-accessor", recursive=True)


def test_open_local_and_memory_filesystems(tmp_path: Path) -> None:
    fs, path = open_filesystem(str(tmp_path))
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path)
    fs, path = open_filesystem(f"file://{tmp_path}", {})
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path)
    fs, path = open_filesystem("memory://bucket/train")
    assert isinstance(fs, MemoryFileSystem) and path == "/bucket/train"


def test_unknown_protocol_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Protocol not known: nope"):
        open_filesystem("nope://bucket/x")


def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    implementation = {"class": "gpdl_no_such_fs.FileSystem", "err": "Install gpdl_no_such_fs"}
    monkeypatch.setitem(known_implementations, "gpdltest", implementation)
    with pytest.raises(UsageError, match="pip install gpdl_no_such_fs"):
        open_filesystem("gpdltest://bucket/x")


def test_local_reads_keep_order_and_report_failures(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"A")
    (tmp_path / "b.png").write_bytes(b"B")
    refs = [ref(str(tmp_path / "b.png")), ref(str(tmp_path / "gone.png"))]
    refs += [ref(f"file://{tmp_path}/a.png")]
    results = list(read_files(LocalFileSystem(), refs))
    assert [r for r, _ in results] == refs
    assert results[0][1] == b"B" and results[2][1] == b"A"
    assert isinstance(results[1][1], FileNotFoundError)


def test_remote_reads_keep_order(memory_files: list[FileRef]) -> None:
    fs, _ = open_filesystem("memory://gpdl-accessor")
    refs = [*memory_files, ref("memory:///gpdl-accessor/train/gone.png")]
    results = list(read_files(fs, refs, threads=3))
    assert [r for r, _ in results] == refs
    for file, data in results[:-1]:
        assert data == f"image {int(file.name[:2])}".encode()
    assert isinstance(results[-1][1], FileNotFoundError)
    assert reader_threads() == []


class SlowFileSystem:
    """A remote-looking filesystem whose reads take a while and are counted."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def cat_file(self, path: str) -> bytes:
        with self.lock:
            self.started.append(path)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(0.005)
        with self.lock:
            self.running -= 1
        if path.endswith("bad"):
            raise PermissionError(path)
        return path.encode()


def test_remote_reads_are_bounded_and_overlapped() -> None:
    fs = SlowFileSystem()
    refs = [ref(f"fake://b/{i}") for i in range(40)]
    results = read_files(fs, refs, threads=2)
    first = next(results)
    assert first == (refs[0], b"fake://b/0")
    assert len(fs.started) <= 2 * 2 + 1
    rest = list(results)
    assert [data for _, data in rest] == [r.path.encode() for r in refs[1:]]
    assert fs.most_running == 2


def test_one_bad_remote_file_does_not_stop_the_rest() -> None:
    fs = SlowFileSystem()
    refs = [ref("fake://b/1"), ref("fake://b/bad"), ref("fake://b/3")]
    results = [data for _, data in read_files(fs, refs)]
    assert results[0] == b"fake://b/1" and results[2] == b"fake://b/3"
    assert isinstance(results[1], PermissionError)


def test_closing_early_stops_the_pool() -> None:
    fs = SlowFileSystem()
    results = read_files(fs, [ref(f"fake://b/{i}") for i in range(100)], threads=4)
    next(results)
    results.close()
    assert reader_threads() == []
    assert len(fs.started) < 20


def test_a_given_executor_is_reused_and_left_running() -> None:
    fs = SlowFileSystem()
    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            got = [data for _, data in read_files(fs, [ref("fake://b/1")], executor=pool)]
            assert got == [b"fake://b/1"]
        assert pool.submit(lambda: 7).result() == 7


@pytest.mark.parametrize("threads", [0, -2, 1.5])
def test_bad_thread_count_is_a_usage_error(threads: Any) -> None:
    with pytest.raises(UsageError, match="threads"):
        read_files(LocalFileSystem(), [], threads=threads)
