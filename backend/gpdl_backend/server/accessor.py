"""Accessor: open a location's filesystem and read the bytes of listed files.

Credentials come from named server configs on the database host (like PXF's
``SERVER=``, see ``access``): they never travel through SQL text or logs.

Runs inside the database server: imports fsspec only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import fsspec.core
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import known_implementations

from gpdl_backend.errors import UsageError
from gpdl_backend.server.fragmenter import FileRef

__all__ = ["open_filesystem", "read_files"]


def open_filesystem(location: str, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Open the fsspec filesystem that serves ``location``.

    Args:
        location: a path or URL (``"/data/train"``, ``"s3://bucket/train"``).
        options: storage options for the filesystem, e.g. from
            a server config (``access.load_server_config``). Defaults to ``None`` (no options).

    Returns:
        ``(fs, path)``: the filesystem and the location in its path form.

    Raises:
        UsageError: unknown protocol, its package not installed (naming what to
            ``pip install``), or options the filesystem does not take.

    Example:
        >>> fs, path = open_filesystem("s3://bucket/train", {"anon": True})
    """
    try:
        return fsspec.core.url_to_fs(location, **(options or {}))
    except ImportError as error:
        protocol = fsspec.core.split_protocol(location)[0] or "file"
        package = known_implementations.get(protocol, {}).get("class", protocol)
        raise UsageError(
            f"location {location}: protocol {protocol!r} needs a package: "
            f"pip install {package.split('.')[0]} ({error})"
        ) from None
    except ValueError as error:
        raise UsageError(f"location {location}: {error}") from None
    except TypeError as error:
        raise UsageError(f"location {location}: bad storage options: {error}") from None


def read_files(
    fs: Any,
    refs: Sequence[FileRef],
    threads: int = 8,
    executor: Executor | None = None,
) -> Iterator[tuple[FileRef, bytes | Exception]]:
    """Read whole files, in input order, one result per file.

    Local files are read one after another with plain ``open`` (fastest there);
    remote ones through ``fs.cat_file`` with up to ``2 * threads`` reads in
    flight. A failed read yields its exception in place of the bytes.

    Args:
        fs: the fsspec filesystem the refs belong to.
        refs: the files, e.g. one fragment's ``files``.
        threads: concurrent remote reads. Defaults to 8.
        executor: a thread pool to reuse across calls (the caller shuts it
            down); ``None`` starts one per call and stops it at the end or when
            the iterator is closed. Defaults to ``None``.

    Returns:
        An iterator of ``(ref, bytes or exception)``.

    Raises:
        UsageError: ``threads`` is not a positive integer.

    Example:
        >>> for ref, data in read_files(fs, fragment.files):
        ...     if isinstance(data, Exception): record(ref, data)
    """
    if not isinstance(threads, int) or threads < 1:
        raise UsageError(f"threads must be a positive integer, not {threads!r}")
    if isinstance(fs, LocalFileSystem):
        return _read_local(refs)
    return _read_remote(fs, refs, threads, executor)


def _read_local(refs: Sequence[FileRef]) -> Iterator[tuple[FileRef, bytes | Exception]]:
    """Read local files sequentially with plain ``open``."""
    for ref in refs:
        try:
            with open(ref.path.removeprefix("file://"), "rb") as file:
                yield ref, file.read()
        except Exception as error:
            yield ref, error


def _read_remote(
    fs: Any, refs: Sequence[FileRef], threads: int, executor: Executor | None
) -> Iterator[tuple[FileRef, bytes | Exception]]:
    """Read remote files through a thread pool, a bounded number in flight."""
    own = executor is None
    pool = ThreadPoolExecutor(threads, thread_name_prefix="gpdl-read") if own else executor
    pending: deque[tuple[FileRef, Future[bytes]]] = deque()
    todo = iter(refs)
    try:
        for ref in todo:
            pending.append((ref, pool.submit(fs.cat_file, ref.path)))
            if len(pending) >= 2 * threads:
                break
        while pending:
            ref, future = pending.popleft()
            try:
                result: bytes | Exception = future.result()
            except Exception as error:
                result = error
            following = next(todo, None)
            if following is not None:
                pending.append((following, pool.submit(fs.cat_file, following.path)))
            yield ref, result
    finally:
        for _, future in pending:
            future.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
