"""Progress bars for long calls made from a notebook (tqdm's notebook bar when it can).

Example::

    with progress_bar("file", "loading train_images") as update:
        api.load_images("/data/train", "train_images", progress=update)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["progress_bar", "training_listener"]


@contextmanager
def progress_bar(unit: str, desc: str) -> Iterator[Callable[..., None]]:
    """A bar and its ``update(done, total, errors=0)`` callback; closed on exit."""
    from tqdm.auto import tqdm

    bar = tqdm(unit=unit, desc=desc, dynamic_ncols=True, mininterval=0.5)

    def update(done: int, total: int, errors: int = 0) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix(errors=errors, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


@contextmanager
def training_listener(desc: str) -> Iterator[Callable[[Any], None]]:
    """A bar of training units and the ``listener`` feeding it from driver events."""
    with progress_bar("unit", desc) as update:
        def listener(event: Any) -> None:
            if getattr(event, "kind", None) == "unit":
                update(event.units_done, event.units_total)

        yield listener
