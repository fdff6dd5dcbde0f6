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


def tqdm_bar(unit: str, desc: str, *, notebook: bool = True,
             counted: str = "errors") -> tuple[Any, Callable[..., None]]:
    """A tqdm bar and its ``update(done, total, count=0)`` callback; the caller closes the bar.

    Args:
        unit: what is counted, e.g. ``"file"``.
        desc: the bar's label.
        notebook: tqdm's notebook bar when running in one (``tqdm.auto``); False
            for the terminal bar. Defaults to True.
        counted: what ``count`` counts, shown after the bar as ``counted=count``:
            ``"errors"`` (the files a load skipped) or ``"retries"`` (the units a
            training job ran again). Defaults to ``"errors"``.

    Example:
        >>> bar, update = tqdm_bar("unit", "training models", notebook=False,
        ...                        counted="retries")
        >>> update(5, 12, 1)  # shows "5/12 ... retries=1"
        >>> bar.close()
    """
    if notebook:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm

    bar = tqdm(unit=unit, desc=desc, dynamic_ncols=True, mininterval=0.5)

    def update(done: int, total: int, count: int = 0) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix({counted: count}, refresh=False)
        bar.refresh()

    return bar, update


@contextmanager
def progress_bar(unit: str, desc: str,
                 counted: str = "errors") -> Iterator[Callable[..., None]]:
    """A bar and its ``update(done, total, count=0)`` callback (``tqdm_bar``); closed on exit.

    A call that raises leaves the notebook bar red, even at 100%: a load whose
    every file failed counted them all, yet made nothing.
    """
    bar, update = tqdm_bar(unit, desc, counted=counted)
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
    """A bar of training units (and retried ones), and the ``listener`` feeding it events."""
    with progress_bar("unit", desc, counted="retries") as update:
        retries = 0

        def listener(event: Any) -> None:
            nonlocal retries
            retries = getattr(event, "unit_retries", 0) or retries
            if getattr(event, "kind", None) == "unit":
                update(event.units_done, event.units_total, retries)

        yield listener
