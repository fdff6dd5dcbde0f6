"""How API results look in a notebook: plain values with a table for eyes.

``Table`` is a ``list`` (of dicts or dataclasses) that notebooks show as an
HTML table and terminals as aligned text; ``JobReport`` is the backend's
``JobStatus`` with the same two views. Both stay what they wrap, so code can
index, iterate and compare them as usual.

Example::

    Table([{"mst_key": 1, "status": "finished"}])   # shown as a table
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Sequence
from typing import Any

from gpdl_backend.mop.job import JobStatus

__all__ = ["JobReport", "Table"]


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    return {"value": row}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def _html_table(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns)
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(columns: Sequence[str], rows: list[dict[str, Any]]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


class Table(list):
    """A list of rows (dicts or dataclasses) shown as a table.

    Args:
        rows: the rows.
        columns: the columns to show. Defaults to the first row's keys.

    Example:
        >>> print(repr(Table([{"a": 1, "b": 2.5}])))
        a  b
        1  2.5
    """

    def __init__(self, rows: Iterable[Any] = (), columns: Sequence[str] | None = None) -> None:
        super().__init__(rows)
        self.columns = list(columns) if columns else (
            list(_as_dict(self[0])) if self else [])

    def _dicts(self) -> list[dict[str, Any]]:
        return [_as_dict(row) for row in self]

    def __repr__(self) -> str:
        return _text_table(self.columns, self._dicts()) if self else "(no rows)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return _html_table(self.columns, self._dicts()) if self else "<em>no rows</em>"


_CONFIG_COLUMNS = ("mst_key", "status", "units_done", "training_loss", "training_metric",
                   "validation_loss", "validation_metric", "compile_params", "fit_params")


@dataclasses.dataclass
class JobReport(JobStatus):
    """A training job's ``JobStatus`` that shows itself as a line and a table.

    Example:
        >>> report = JobReport.of(job.status(), "models")   # doctest: +SKIP
    """

    job: str = ""

    @classmethod
    def of(cls, status: JobStatus, job: str) -> JobReport:
        """Wrap a ``JobStatus`` of the job whose output table is ``job``."""
        return cls(**dataclasses.asdict(status), job=job)

    def headline(self) -> str:
        """``models: running, iteration 1/3, 5/12 units, 1 retried``."""
        line = (f"{self.job}: {self.status}, iteration {self.iterations_done}/"
                f"{self.num_iterations}, {self.units_done}/{self.units_total} units, "
                f"{self.unit_retries} retried")
        return line + (f" — {self.error}" if self.error else "")

    def __repr__(self) -> str:
        return self.headline() + "\n" + _text_table(_CONFIG_COLUMNS, self.configs)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return (f"<p>{html.escape(self.headline())}</p>"
                + _html_table(_CONFIG_COLUMNS, self.configs))
