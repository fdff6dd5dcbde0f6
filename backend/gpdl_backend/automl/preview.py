"""The plan of an AutoML search, shown before it starts.

One row per bracket and rung (Hyperband), per rung (ASHA) or one row (hyperopt).
An *iteration* of a configuration is one pass over every segment's partition,
so it costs ``num_segments`` *units* (one configuration on one segment); with
all segments busy, ``units * unit_seconds / num_segments`` seconds.

Row keys: ``s`` (bracket; None but for Hyperband), ``i`` (rung), ``n_i``
(configurations at the rung), ``r_i`` (their cumulative iterations there),
``iterations`` (iterations trained in the rung, ``n_i * (r_i - r_{i-1})``),
``units`` (``iterations * num_segments``), ``seconds`` (their share of the ETA,
None without ``unit_seconds``). ASHA's ``n_i`` are the fewest configurations
that reach each rung, ``max(1, n_{i-1} // eta)``: it may promote more, as which
ones it promotes depends on the order in which losses arrive.

Example:
    >>> from gpdl_backend.automl.params import parse_automl_params
    >>> rows = plan_rows(parse_automl_params("hyperband", "R=6"), 2, None)
    >>> [(r["s"], r["i"], r["n_i"], r["r_i"], r["iterations"]) for r in rows]
    [(1, 0, 3, 2, 6), (1, 1, 1, 6, 4), (0, 0, 2, 6, 12)]
    >>> plan_total(rows, 2, 0.5)
    {'configs': 5, 'iterations': 22, 'units': 44, 'eta_seconds': 11.0}
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from gpdl_backend.automl.asha import asha_rungs
from gpdl_backend.automl.hyperband import hyperband_schedule
from gpdl_backend.automl.params import AutomlParams
from gpdl_backend.errors import UsageError

__all__ = ["plan_rows", "plan_total"]


def plan_rows(
    params: AutomlParams, num_segments: int, unit_seconds: float | None
) -> list[dict[str, Any]]:
    """Rows of a search's plan (keys: see the module docstring).

    Args:
        params: The search's parsed ``automl_params``.
        num_segments: Segments the data is spread over, >= 1.
        unit_seconds: Seconds one configuration takes for one iteration on one
            segment (e.g. measured), or None when unknown.

    Returns:
        Rows in schedule order.

    Raises:
        UsageError: Bad ``num_segments`` or ``unit_seconds``, or unknown method.

    Example:
        >>> from gpdl_backend.automl.params import parse_automl_params
        >>> [(r["i"], r["n_i"], r["r_i"]) for r in plan_rows(
        ...     parse_automl_params("asha", "R=9, num_configs=20"), 4, 1.0)]
        [(0, 20, 1), (1, 6, 3), (2, 2, 9)]
    """
    _check_segments(num_segments, unit_seconds)
    if params.method == "hyperband":
        schedule = hyperband_schedule(params.R, params.eta, params.skip_last)
        rungs = [(row.s, row.i, row.n_i, row.r_i) for row in schedule]
    elif params.method == "asha":
        budgets = asha_rungs(params.R, params.eta, params.min_r)
        sizes = [params.num_configs]
        while len(sizes) < len(budgets):
            sizes.append(max(1, sizes[-1] // params.eta))
        rungs = [(None, i, sizes[i], budget) for i, budget in enumerate(budgets)]
    elif params.method == "hyperopt":
        rungs = [(None, 0, params.num_configs, params.num_iterations)]
    else:
        raise UsageError(f"no plan for automl_method {params.method!r}")
    rows = []
    previous = 0
    for s, i, n_i, r_i in rungs:
        previous = 0 if i == 0 else previous
        iterations = n_i * (r_i - previous)
        units = iterations * num_segments
        rows.append({
            "s": s, "i": i, "n_i": n_i, "r_i": r_i, "iterations": iterations, "units": units,
            "seconds": _seconds(units, num_segments, unit_seconds),
        })
        previous = r_i
    return rows


def plan_total(
    rows: Sequence[dict[str, Any]], num_segments: int, unit_seconds: float | None
) -> dict[str, Any]:
    """Totals of a plan.

    Args:
        rows: What :func:`plan_rows` returned.
        num_segments: Segments the data is spread over, >= 1.
        unit_seconds: Seconds of one unit, or None when unknown.

    Returns:
        ``configs`` (configurations sampled: the ``n_i`` of every rung 0),
        ``iterations``, ``units`` and ``eta_seconds`` (``units * unit_seconds /
        num_segments``, None without ``unit_seconds``).

    Raises:
        UsageError: Bad ``num_segments`` or ``unit_seconds``.

    Example:
        >>> plan_total([{"i": 0, "n_i": 2, "iterations": 10, "units": 40}], 4, None)
        {'configs': 2, 'iterations': 10, 'units': 40, 'eta_seconds': None}
    """
    _check_segments(num_segments, unit_seconds)
    units = sum(row["units"] for row in rows)
    return {
        "configs": sum(row["n_i"] for row in rows if row["i"] == 0),
        "iterations": sum(row["iterations"] for row in rows),
        "units": units,
        "eta_seconds": _seconds(units, num_segments, unit_seconds),
    }


def _seconds(units: float, num_segments: int, unit_seconds: float | None) -> float | None:
    return None if unit_seconds is None else units * unit_seconds / num_segments


def _check_segments(num_segments: int, unit_seconds: float | None) -> None:
    if isinstance(num_segments, bool) or not isinstance(num_segments, int) or num_segments < 1:
        raise UsageError(f"num_segments must be an integer >= 1, got {num_segments!r}")
    if unit_seconds is not None and (
        isinstance(unit_seconds, bool)
        or not isinstance(unit_seconds, numbers.Real)
        or not unit_seconds >= 0
    ):
        raise UsageError(f"unit_seconds must be a number >= 0 or None, got {unit_seconds!r}")
