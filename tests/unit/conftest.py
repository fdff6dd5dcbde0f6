"""Unit-test fixtures: magics in a re-raising shell, pointed at a server that is not there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpdl_jupyter import connection
from tests.magic_shell import NOWHERE, RaisingShell


@pytest.fixture(autouse=True)
def _fresh_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No connection chosen, no $DATABASE_URL, no pyproject.toml above the cwd."""
    connection.CURRENT.reset()
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    connection.CURRENT.reset()


@pytest.fixture
def shell() -> RaisingShell:
    """A re-raising shell with gpdl loaded, 2 segments, pointed at nothing."""
    ip = RaisingShell.new()
    ip.run_cell("%load_ext gpdl_jupyter")
    ip.run_cell("%config GpdlMagic.num_segments = 2")
    ip.run_cell(f"%config GpdlMagic.dsn = '{NOWHERE}'")
    return ip
