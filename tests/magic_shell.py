"""An IPython shell for magic tests that re-raises what a cell raises (as jupysql's tests do)."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

NOWHERE = "postgresql://someone:secret@127.0.0.1:9/nothing"  # port 9: refused at once


class RaisingShell(InteractiveShell):
    """An ``InteractiveShell`` whose ``run_cell`` raises the cell's error instead of printing it."""

    def run_cell(self, *args: Any, **kwargs: Any):
        result = super().run_cell(*args, **kwargs)
        result.raise_error()
        return result

    @classmethod
    def new(cls, config: Config | None = None) -> RaisingShell:
        """A fresh shell without history (a SQLite file per shell), gpdl not loaded.

        ``InteractiveShell`` is a singleton-ish class: tests clear its instance
        so every test gets its own namespace and configuration.
        """
        cls.clear_instance()
        settings = config or Config()
        settings.HistoryAccessor.enabled = False
        shell = cls(config=settings)
        shell.displayhook.flush = lambda: None  # its gc at exit can hang pytest (see jupysql)
        return shell

    def gpdl(self, line: str, cell: str | None = None) -> Any:
        """Run ``%gpdl line`` (or ``%%gpdl line`` with ``cell``) and return its value."""
        if cell is None:
            return self.run_line_magic("gpdl", line)
        return self.run_cell_magic("gpdl", line, cell)
