"""Unit tests of the AutoML plan preview."""

from __future__ import annotations

import pytest

from gpdl_backend.automl.params import parse_automl_params
from gpdl_backend.automl.preview import plan_rows, plan_total
from gpdl_backend.errors import UsageError


def test_hyperband_rows_follow_the_schedule() -> None:
    rows = plan_rows(parse_automl_params("hyperband", "R=9"), 4, 0.5)
    assert [(r["s"], r["i"], r["n_i"], r["r_i"], r["iterations"], r["units"]) for r in rows] == [
        (2, 0, 9, 1, 9, 36), (2, 1, 3, 3, 6, 24), (2, 2, 1, 9, 6, 24),
        (1, 0, 5, 3, 15, 60), (1, 1, 1, 9, 6, 24),
        (0, 0, 3, 9, 27, 108),
    ]
    assert rows[0]["seconds"] == 36 * 0.5 / 4
    assert plan_total(rows, 4, 0.5) == {
        "configs": 17, "iterations": 69, "units": 276, "eta_seconds": 34.5,
    }


def test_asha_rows_are_the_fewest_that_reach_each_rung() -> None:
    # 5 // 3 = 1, then 1 // 3 = 0: a closed rung's best still goes on, so 1 reaches R.
    rows = plan_rows(parse_automl_params("asha", "R=6, eta=3, num_configs=5"), 1, None)
    assert [(r["n_i"], r["r_i"], r["iterations"]) for r in rows] == [(5, 1, 5), (1, 3, 2),
                                                                      (1, 6, 3)]
    assert all(isinstance(r["n_i"], int) for r in rows)


def test_asha_rows_are_the_expected_rung_sizes() -> None:
    rows = plan_rows(parse_automl_params("asha", "R=9, num_configs=27"), 2, None)
    assert [(r["s"], r["i"], r["n_i"], r["r_i"], r["iterations"]) for r in rows] == [
        (None, 0, 27, 1, 27), (None, 1, 9, 3, 18), (None, 2, 3, 9, 18),
    ]
    assert all(r["seconds"] is None for r in rows)
    assert plan_total(rows, 2, None) == {
        "configs": 27, "iterations": 63, "units": 126, "eta_seconds": None,
    }


def test_hyperopt_is_one_row() -> None:
    rows = plan_rows(parse_automl_params("hyperopt", "num_configs=8, num_iterations=3"), 3, 2.0)
    assert rows == [{"s": None, "i": 0, "n_i": 8, "r_i": 3, "iterations": 24, "units": 72,
                     "seconds": 48.0}]
    assert plan_total(rows, 3, 2.0)["eta_seconds"] == 48.0


@pytest.mark.parametrize(("segments", "unit_seconds", "message"), [
    (0, None, "num_segments must be an integer >= 1"),
    (True, None, "num_segments must be an integer >= 1"),
    (2, -1.0, "unit_seconds must be a number >= 0 or None"),
    (2, float("nan"), "unit_seconds must be a number >= 0 or None"),
    (2, "1", "unit_seconds must be a number >= 0 or None"),
])
def test_bad_arguments_are_refused(segments: int, unit_seconds: float | None,
                                   message: str) -> None:
    params = parse_automl_params(None, None)
    with pytest.raises(UsageError, match=message):
        plan_rows(params, segments, unit_seconds)
    with pytest.raises(UsageError, match=message):
        plan_total([], segments, unit_seconds)
