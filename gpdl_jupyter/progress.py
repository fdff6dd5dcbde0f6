"""Progress bars for long calls made from a notebook (tqdm's notebook bar when it can).

Example::

    with progress_bar("file", "loading train_images") as update:
        api.load_images("/data/train", "train_images", progress=update)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["progress_bar", "tqdm_bar", "training_listener"]


def tqdm_bar(unit: str, desc: str, *, notebook: bool = True) -> tuple[Any, Callable[..., None]]:
    """A tqdm bar and its ``update(done, total, errors=0)`` callback; the caller closes the bar.

    Args:
        unit: what is counted, e.g. ``"file"``.
        desc: the bar's label.
        notebook: tqdm's notebook bar when running in one (``tqdm.auto``); False
            for the terminal bar. Defaults to True.

    Example:
        >>> bar, update = tqdm_bar("img", "writing", notebook=False)
        >>> update(5, 10, errors=1)
        >>> bar.close()
    """
    if notebook:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm

    bar = tqdm(unit=unit, desc=desc, dynamic_ncols=True, mininterval=0.5)

    def update(done: int, total: int, errors: int = 0) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix(errors=errors, refresh=False)
        bar.refresh()

    return bar, update


@contextmanager
def progress_bar(unit: str, desc: str) -> Iterator[Callable[..., None]]:
    """A bar and its ``update(done, total, errors=0)`` callback; closed on exit.

    A call that raises leaves the notebook bar red, even at 100%: a load whose
    every file failed counted them all, yet made nothing.
    """
    bar, update = tqdm_bar(unit, desc)
    try:
        yield update
    except BaseException:
        bar.close()
        if hasattr(bar, "container"):  # tqdm's notebook bar (a widget)
            bar.display(bar_style="danger", check_delay=False)
        raise
    bar.close()


@contextmanager
def training_listener(desc: str) -> Iterator[Callable[[Any], None]]:
    """A bar of training units and the ``listener`` feeding it from driver events."""
    with progress_bar("unit", desc) as update:
        def listener(event: Any) -> None:
            if getattr(event, "kind", None) == "unit":
                update(event.units_done, event.units_total)

        yield listener
