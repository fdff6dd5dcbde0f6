"""What a ``%gpdl`` command gets besides its arguments: the magic's options and the cell."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Context"]


def _ignore(_dsn: str) -> None:
    return None


@dataclass(frozen=True)
class Context:
    """The magic's options at the time of the call, the cell body and the namespace.

    Args:
        dsn: ``GpdlMagic.dsn`` (empty: resolve). Defaults to "".
        show_sql: ``GpdlMagic.show_sql``. Defaults to False.
        num_segments: ``GpdlMagic.num_segments``. Defaults to None.
        batch_size: ``GpdlMagic.batch_size``. Defaults to 500.
        iterations: ``GpdlMagic.iterations``. Defaults to 10.
        theme: ``GpdlMagic.theme``. Defaults to "notebook".
        live: ``GpdlMagic.live``. Defaults to True.
        refresh: ``GpdlMagic.refresh`` (seconds). Defaults to 2.0.
        cell: the ``%%gpdl`` cell body. Defaults to None (line magic).
        user_ns: the notebook's namespace. Defaults to empty.
        set_dsn: records the connection ``connect`` chose. Defaults to a no-op.
    """

    dsn: str = ""
    show_sql: bool = False
    num_segments: int | None = None
    batch_size: int = 500
    iterations: int = 10
    theme: str = "notebook"
    live: bool = True
    refresh: float = 2.0
    cell: str | None = None
    user_ns: Mapping[str, Any] = field(default_factory=dict)
    set_dsn: Callable[[str], None] = _ignore
