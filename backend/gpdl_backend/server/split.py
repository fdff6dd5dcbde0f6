"""Server-side helpers of the preprocessor (run inside the database)."""

from __future__ import annotations

from collections.abc import Iterator

from gpdl_backend.errors import UsageError


def split_images(
    x: bytes, dims: list[int], y: list[str], fullpaths: list[str]
) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(fullpath, label, pixels)`` for each image of one image-table row.

    Raises:
        UsageError: the row's dims, labels and bytes disagree.
    """
    if x is None or not dims:
        return
    count = dims[0]
    per_image = 1
    for value in dims[1:]:
        per_image *= value
    data = memoryview(x)
    if len(data) != count * per_image or len(y) != count or len(fullpaths) != count:
        raise UsageError(
            f"corrupt image row: dims {dims} give {count * per_image} bytes for {count} "
            f"images, but x has {len(data)} bytes and there are {len(y)} labels"
        )
    for i in range(count):
        yield fullpaths[i], y[i], bytes(data[i * per_image:(i + 1) * per_image])
