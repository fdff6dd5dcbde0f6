"""Default magic options from a project's ``pyproject.toml`` (``[tool.gpdl]``).

The nearest ``pyproject.toml`` found walking up from the working directory
counts; its ``[tool.gpdl]`` table sets defaults of ``GpdlMagic`` options by
name, e.g.::

    [tool.gpdl]
    dsn = "postgresql://gpdl@127.0.0.1:54329/gpdl"
    batch_size = 250
    theme = "presentation"

Sub-tables (``[tool.gpdl.something]``) belong to other gpdl tools and are
left alone.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gpdl_backend.errors import UsageError

__all__ = ["find_pyproject", "gpdl_options"]


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` in ``start`` (default: cwd) or a parent."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def gpdl_options(path: Path) -> dict[str, Any]:
    """The scalar settings of ``[tool.gpdl]`` in ``path`` (empty when there is none).

    Raises:
        UsageError: the file is not valid TOML.

    Example:
        >>> gpdl_options(Path("pyproject.toml"))   # doctest: +SKIP
        {'batch_size': 250}
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid TOML: {error}") from error
    table = data.get("tool", {}).get("gpdl", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.gpdl] must be a table")
    return {key: value for key, value in table.items() if not isinstance(value, dict)}
