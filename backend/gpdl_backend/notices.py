"""Progress NOTICEs of the SQL API: one format, written by the server, read by the client.

A long call (``gpdl.load_images``, ``gpdl.madlib_keras_fit_multiple_model``)
reports as it goes with lines a person reads in psql and the client parses for
its progress bars::

    gpdl load train_images: 5000/60000 files, 0 errors
    gpdl training public.models: 16/80 units, iteration 1 of 5

Example:
    >>> parse_progress(progress_line("load t", 5, 10, "files, 0 errors"))
    Progress(what='load t', done=5, total=10, detail='files, 0 errors')
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["Progress", "parse_progress", "progress_line"]

_LINE = re.compile(r"^gpdl (?P<what>.+?): (?P<done>\d+)/(?P<total>\d+)(?: (?P<detail>.*))?$")


class Progress(NamedTuple):
    what: str
    done: int
    total: int
    detail: str


def progress_line(what: str, done: int, total: int, detail: str = "") -> str:
    """The NOTICE text for ``done`` of ``total`` (``detail``: the unit and more)."""
    return f"gpdl {what}: {done}/{total}" + (f" {detail}" if detail else "")


def parse_progress(message: str) -> Progress | None:
    """A progress NOTICE's parts; None for any other message."""
    match = _LINE.match(message.strip())
    if match is None:
        return None
    return Progress(match["what"], int(match["done"]), int(match["total"]),
                    match["detail"] or "")
