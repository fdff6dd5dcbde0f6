"""The body of ``gpdl.read_images``: fragmenter → accessor → resolver → rows.

Runs inside the server (one call per segment). Memory stays bounded by one
row: decoded images are flushed as a row when the batch is full or the row
would pass ``MAX_FIELD_BYTES``. Files that cannot be read or decoded are
reported in the row's ``error_paths`` / ``error_reasons`` and skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gpdl_backend.errors import ImageDecodeError, UsageError
from gpdl_backend.server import access, accessor, fragmenter, resolver

# PostgreSQL refuses a field over 1 GB; stay well below it, leaving room for
# the copies a value makes between Python and the server.
MAX_FIELD_BYTES = 256 * 2**20
COLOR_MODES = ("RGB", "L")


def _settings(GD: Any) -> dict:
    return GD.get("gpdl.settings", {}) if GD is not None else {}


def _open(plpy: Any, GD: Any, location: str, server: str | None):
    """The filesystem of ``location``, once the calling role may read it (see ``access``).

    Outside the server (``GD`` None, the tests' in-process calls) there is no
    role: the OS user's own access applies.
    """
    if not location or not isinstance(location, str):
        raise UsageError("location must be a non-empty path or URL")
    config = None if server is None else access.load_server_config(
        _settings(GD).get("servers_dir", "/etc/gpdl/servers"), server)
    if GD is not None:
        access.check_location(location, config, access.caller(plpy, config))
    fs, _ = accessor.open_filesystem(location, config.storage_options if config else None)
    return fs


def _listing_error(location: str, server: str | None, error: Exception) -> UsageError:
    """A clear message for a location that cannot be listed."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, PermissionError) and error.filename is not None and not server:
        return UsageError(f"permission denied listing {error.filename}: the database "
                          "server's OS user may not read it")
    if isinstance(error, PermissionError) or "AccessDenied" in text or "Forbidden" in text \
            or "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text:
        via = f"server config {server!r}" if server else "no server config"
        return UsageError(f"access denied listing {location} with {via}: check its credentials")
    if isinstance(error, FileNotFoundError) or "NoSuchBucket" in text:
        return UsageError(f"location {location} does not exist")
    return UsageError(f"cannot list {location}: {text}")


def count_files(plpy: Any, GD: Any, location: str, server: str | None = None) -> int:
    """The number of files at ``location``; refuses a missing or empty one.

    Raises:
        UsageError: a location the calling role may not read (``access``), a
            missing or empty location, bad credentials.
    """
    fs = _open(plpy, GD, location, server)
    try:
        count = sum(1 for _ in fragmenter.list_files(fs, location))
    except UsageError:
        raise
    except Exception as error:
        raise _listing_error(location, server, error) from error
    if count == 0:
        raise UsageError(f"no files found at {location}")
    return count


def read_images(
    plpy: Any,
    GD: Any,
    location: str,
    batch_size: int = 500,
    server: str | None = None,
    resize: list[int] | None = None,
    color_mode: str = "RGB",
    int_pixels: bool = False,
    segment: int | None = None,
    num_segments: int | None = None,
    progress: bool = False,
    threads: int = 8,
) -> Iterator[tuple]:
    """Yield image-table rows for this segment's fragments of ``location``.

    Args:
        plpy: the plpython module (for notices), or None outside the server.
        GD: plpython's global dictionary (install settings), or None.
        location: directory, glob or URL (file, s3, gs, http...).
        batch_size: images per row. Defaults to 500.
        server: name of the object-store config holding credentials.
        resize: ``[height, width]`` to resize every image to; None keeps sizes
            (which must then all be equal).
        color_mode: ``"RGB"`` or ``"L"``. Defaults to ``"RGB"``.
        int_pixels: also fill the PXF-compatible ``pixels INT[]`` column.
        segment, num_segments: which share of the fragments to read.
        progress: send a ``gpdl-progress <files> <errors>`` notice per fragment.
        threads: concurrent reads of remote objects. Defaults to 8.

    Yields:
        ``(fullpaths, names, y, dims, x, pixels, error_paths, error_reasons)``.

    Raises:
        UsageError: bad arguments, or images of mixed sizes without ``resize``.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    if color_mode not in COLOR_MODES:
        raise UsageError(f"color_mode must be one of {COLOR_MODES}, not {color_mode!r}")
    size = _resize_size(resize)
    fs = _open(plpy, GD, location, server)
    files = fragmenter.list_files(fs, location)
    mine = fragmenter.for_segment(fragmenter.fragments(files, batch_size), segment, num_segments)
    first: tuple[str, tuple[int, ...]] | None = None
    told_split = False
    try:
        for fragment in mine:
            batch = _Batch()
            for ref in fragment.files:
                if ref.error is not None:
                    batch.fail(ref.path, ref.error)
            readable = [ref for ref in fragment.files if ref.error is None]
            for ref, data in accessor.read_files(fs, readable, threads):
                if isinstance(data, BaseException):
                    batch.fail(ref.path, f"read failed: {type(data).__name__}: {data}")
                    continue
                try:
                    image = resolver.decode(data, color_mode, size)
                except ImageDecodeError as error:
                    batch.fail(ref.path, str(error))
                    continue
                if first is None:
                    first = (ref.path, image.shape)
                elif image.shape != first[1]:
                    raise UsageError(
                        f"mixed image sizes: {ref.path} is {_shape(image.shape)} but "
                        f"{first[0]} is {_shape(first[1])}; pass resize to load them together"
                    )
                if batch.would_overflow(image, int_pixels):
                    if not told_split and plpy is not None:
                        plpy.notice(f"gpdl: a row of {batch_size} images would pass "
                                    f"{MAX_FIELD_BYTES >> 20} MB; splitting into rows of "
                                    f"{len(batch.images)}")
                        told_split = True
                    yield batch.row(int_pixels, with_errors=False)
                    batch.clear_images()
                batch.add(ref, image)
            yield batch.row(int_pixels, with_errors=True)
            if progress and plpy is not None:
                plpy.notice(f"gpdl-progress {len(fragment.files)} {len(batch.error_paths)}")
    except (UsageError, ImageDecodeError):
        raise
    except Exception as error:
        if first is None:
            raise _listing_error(location, server, error) from error
        raise


def _resize_size(resize: list[int] | None) -> tuple[int, int] | None:
    if resize is None:
        return None
    if len(resize) != 2 or any((not isinstance(v, int)) or v < 1 for v in resize):
        raise UsageError(f"resize must be [height, width] of positive integers, not {resize!r}")
    return int(resize[0]), int(resize[1])


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


class _Batch:
    """Images decoded for one row, plus the files of the fragment that failed."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.paths: list[str] = []
        self.names: list[str] = []
        self.labels: list[str] = []
        self.error_paths: list[str] = []
        self.error_reasons: list[str] = []
        self.nbytes = 0

    def fail(self, path: str, reason: str) -> None:
        self.error_paths.append(path)
        self.error_reasons.append(reason)

    def add(self, ref: fragmenter.FileRef, image: np.ndarray) -> None:
        self.images.append(image)
        self.paths.append(ref.path)
        self.names.append(ref.name)
        self.labels.append(ref.label)
        self.nbytes += image.nbytes

    def would_overflow(self, image: np.ndarray, int_pixels: bool) -> bool:
        per_value = 4 if int_pixels else 1  # INT[] stores 4 bytes a pixel value
        return bool(self.images) and (self.nbytes + image.nbytes) * per_value > MAX_FIELD_BYTES

    def clear_images(self) -> None:
        self.images, self.paths, self.names, self.labels = [], [], [], []
        self.nbytes = 0

    def row(self, int_pixels: bool, with_errors: bool) -> tuple:
        errors_paths = self.error_paths if with_errors else []
        errors_reasons = self.error_reasons if with_errors else []
        if not self.images:
            return ([], [], [], None, None, None, errors_paths, errors_reasons)
        stacked = np.stack(self.images)
        dims = list(stacked.shape)
        pixels = stacked.reshape(-1).tolist() if int_pixels else None
        return (self.paths, self.names, self.labels, dims, stacked.tobytes(), pixels,
                errors_paths, errors_reasons)
