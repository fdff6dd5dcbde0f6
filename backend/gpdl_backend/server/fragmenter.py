"""Fragmenter: list the image files under a location and split them into fragments.

Listing streams: directories are walked depth-first, one directory listed at a
time, entries sorted by name, so memory is bounded by the largest directory
(plus the subdirectories still to visit) and the order is the same on every
segment and every run.

Runs inside the database server: imports fsspec only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from gpdl_backend.errors import UsageError

__all__ = ["FileRef", "Fragment", "for_segment", "fragments", "list_files"]

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file to load.

    Attributes:
        path: what to hand to the filesystem's ``open`` / ``cat_file``: a plain
            absolute path for local files, a URL with its protocol otherwise
            (``"s3://bucket/train/cat/1.png"``).
        name: the file's name (``"1.png"``).
        label: the parent directory's name (``"cat"``).
        size: the size in bytes, or ``None`` when the listing does not say.
        error: why this entry cannot be read (a subdirectory the server may not
            list); the loader records it as a failed file and goes on.
    """

    path: str
    name: str
    label: str
    size: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Fragment:
    """A numbered group of consecutive files: the unit of work of one segment."""

    index: int
    files: tuple[FileRef, ...]


def list_files(fs: Any, location: str) -> Iterator[FileRef]:
    """Stream the files under ``location``, sorted, hidden ones skipped.

    ``location`` is a directory (walked recursively), a single file, or a glob
    pattern (``*``, ``?``, ``[...]``; ``*`` stays within one path component,
    ``**`` spans any number of directories). Names starting with "." are
    skipped, as are directories beneath them.

    Args:
        fs: an fsspec filesystem, e.g. from ``fsspec.core.url_to_fs(location)``.
        location: the user's location, with or without its protocol
            (``"s3://b/train"``, ``"/data/train"``, ``"file:///data/*/*.png"``).

    Returns:
        A generator of FileRef, depth-first, sorted by name within each
        directory, a directory's files before its subdirectories.

    Raises:
        UsageError: the location (or a glob pattern's fixed prefix) does not exist.

    Example:
        >>> fs, _ = fsspec.core.url_to_fs("/data/train")
        >>> next(list_files(fs, "/data/train"))
        FileRef(path='/data/train/cat/1.png', name='1.png', label='cat', size=1234)
    """
    path = fs._strip_protocol(location)
    root, pattern = _split_glob(path)
    local = isinstance(fs, LocalFileSystem)
    if local:
        root = os.path.normpath(root)
    kind = _kind(fs, root, local)
    if kind is None:
        shown = f"{location} (its prefix {root})" if pattern else location
        raise UsageError(f"location {shown} does not exist")
    if kind == "file":
        return _single(fs, root, local, pattern)
    glob = _Glob(root, pattern) if pattern else None
    walk = _walk_local(root, glob) if local else _walk_remote(fs, root, glob)
    if local:
        return walk
    return (FileRef(fs.unstrip_protocol(f.path), f.name, f.label, f.size) for f in walk)


def fragments(files: Iterable[FileRef], batch_size: int) -> Iterator[Fragment]:
    """Group consecutive files into fragments of ``batch_size``, numbered from 0.

    Args:
        files: the files, e.g. from ``list_files``; consumed lazily.
        batch_size: files per fragment (the last one may hold fewer).

    Returns:
        An iterator of Fragment with index 0, 1, 2, ...

    Raises:
        UsageError: ``batch_size`` is not a positive integer.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    return _batches(iter(files), batch_size)


def for_segment(
    fragments: Iterable[Fragment],
    segment: int | None = None,
    num_segments: int | None = None,
) -> Iterator[Fragment]:
    """Keep the fragments that segment ``segment`` of ``num_segments`` loads.

    Fragment ``i`` goes to segment ``i % num_segments``, so every fragment is
    loaded by exactly one segment.

    Args:
        fragments: all fragments, in index order.
        segment: this segment's number, 0-based. Defaults to ``None`` (all).
        num_segments: how many segments share the work. Defaults to ``None`` (all).

    Returns:
        An iterator over this segment's fragments.

    Raises:
        UsageError: only one of the two is given, or they are out of range.
    """
    if segment is None and num_segments is None:
        return iter(fragments)
    if segment is None or num_segments is None:
        raise UsageError("segment and num_segments must be given together")
    if not isinstance(num_segments, int) or num_segments < 1:
        raise UsageError(f"num_segments must be a positive integer, not {num_segments!r}")
    if not isinstance(segment, int) or not 0 <= segment < num_segments:
        raise UsageError(f"segment must be in 0..{num_segments - 1}, not {segment!r}")
    return (f for f in fragments if f.index % num_segments == segment)


def _batches(files: Iterator[FileRef], batch_size: int) -> Iterator[Fragment]:
    """Yield consecutive batches of ``files`` as numbered fragments."""
    index = 0
    while batch := tuple(islice(files, batch_size)):
        yield Fragment(index, batch)
        index += 1


def _split_glob(path: str) -> tuple[str, tuple[str, ...]]:
    """Split ``path`` into its longest glob-free prefix and the pattern's components."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if not _GLOB_CHARS.isdisjoint(part):
            return "/".join(parts[:i]) or "/", tuple(parts[i:])
    return path, ()


def _kind(fs: Any, path: str, local: bool) -> str | None:
    """Return "file", "directory" or None (missing) for ``path``."""
    if local:
        if os.path.isdir(path):
            return "directory"
        return "file" if os.path.isfile(path) else None
    try:
        info = fs.info(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return "directory" if info.get("type") == "directory" else "file"


def _single(fs: Any, path: str, local: bool, pattern: tuple[str, ...]) -> Iterator[FileRef]:
    """Yield the one file at ``path`` (nothing if a glob pattern follows it)."""
    if pattern:
        return
    parent, _, name = path.rpartition("/")
    label = parent.rpartition("/")[2]
    if local:
        yield FileRef(path, name, label, os.path.getsize(path))
    else:
        size = fs.info(path).get("size")
        yield FileRef(fs.unstrip_protocol(path), name, label, size)


def _walk_local(root: str, glob: _Glob | None) -> Iterator[FileRef]:
    """Walk a local directory tree with ``os.scandir``, sorted, symlink loops cut."""
    stack = [(root, frozenset[tuple[int, int]]())]
    while stack:
        directory, seen = stack.pop()
        stat = os.stat(directory)
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            continue
        seen = seen | {key}
        label = directory.rpartition("/")[2]
        try:
            with os.scandir(directory) as scan:
                entries = sorted((e for e in scan if not e.name.startswith(".")), key=_by_name)
        except PermissionError as error:
            if directory == root:
                raise
            # One unreadable subdirectory is one failed entry, not a failed load.
            yield FileRef(directory, label, directory.rpartition("/")[0].rpartition("/")[2],
                          None, f"cannot list directory: {error.strerror}")
            continue
        subdirs = []
        for entry in entries:
            if entry.is_dir():
                if glob is None or glob.may_contain(entry.path):
                    subdirs.append((entry.path, seen))
            elif entry.is_file() and (glob is None or glob.matches(entry.path)):
                yield FileRef(entry.path, entry.name, label, entry.stat().st_size)
        stack.extend(reversed(subdirs))


_by_name = attrgetter("name")


def _walk_remote(fs: Any, root: str, glob: _Glob | None) -> Iterator[FileRef]:
    """Walk a remote directory tree with ``fs.ls``, one directory at a time, sorted."""
    stack = [root.rstrip("/") or "/"]
    while stack:
        directory = stack.pop()
        label = directory.rpartition("/")[2]
        entries = []
        for info in fs.ls(directory, detail=True):
            path = info["name"].rstrip("/")
            name = path.rpartition("/")[2]
            if path != directory and name and not name.startswith("."):
                entries.append((name, path, info.get("type"), info.get("size")))
        entries.sort(key=itemgetter(0))  # stable: a name listed twice keeps its order
        subdirs = []
        for name, path, kind, size in entries:
            if kind == "directory":
                if glob is None or glob.may_contain(path):
                    subdirs.append(path)
            elif glob is None or glob.matches(path):
                yield FileRef(path, name, label, size)
        stack.extend(reversed(subdirs))


class _Glob:
    """A glob pattern below a fixed root, matched one path component at a time."""

    def __init__(self, root: str, pattern: tuple[str, ...]) -> None:
        self._skip = len(root.rstrip("/")) + 1
        self._pattern = pattern

    def matches(self, path: str) -> bool:
        """Whether the file at ``path`` matches the whole pattern."""
        return _match(tuple(path[self._skip :].split("/")), self._pattern)

    def may_contain(self, path: str) -> bool:
        """Whether the directory at ``path`` may hold matching files (prunes the walk)."""
        return _match_prefix(tuple(path[self._skip :].split("/")), self._pattern)


def _match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Match path components against glob components (``**`` = any directories)."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(parts[i:], rest) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match(parts[1:], rest)


def _match_prefix(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether a directory with components ``parts`` can lead to a match."""
    for i, part in enumerate(parts):
        if i >= len(pattern) - 1:
            return pattern[i:] == ("**",)
        if pattern[i] == "**":
            return True
        if not fnmatchcase(part, pattern[i]):
            return False
    return True
