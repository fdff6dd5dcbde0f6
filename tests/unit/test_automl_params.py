"""Unit tests of automl_method / automl_params parsing."""

from __future__ import annotations

import pytest

from gpdl_backend.automl.params import (
    METHODS,
    AutomlParams,
    format_automl_params,
    parse_automl_params,
)
from gpdl_backend.errors import UsageError


def test_no_method_and_no_text_is_madlibs_default_hyperband() -> None:
    assert parse_automl_params(None, None) == AutomlParams("hyperband", R=6, eta=3, skip_last=0)
    default = parse_automl_params("hyperband", "R=6, eta=3, skip_last=0")
    assert parse_automl_params(None, "  ") == default


def test_hyperband_keys() -> None:
    params = parse_automl_params("HyperBand", " R = 81 ,eta=3,  skip_last=1 ")
    assert (params.method, params.R, params.eta, params.skip_last) == ("hyperband", 81, 3, 1)
    assert params.num_configs is None and params.algorithm is None


def test_missing_keys_take_their_defaults_and_keys_ignore_case() -> None:
    assert parse_automl_params("hyperband", "r=9").R == 9
    assert parse_automl_params("hyperband", "ETA=4,").eta == 4
    assert parse_automl_params("hyperband", "eta=4").R == 6


def test_hyperopt_keys_and_defaults() -> None:
    assert parse_automl_params("hyperopt", None) == AutomlParams(
        "hyperopt", num_configs=20, num_iterations=5, algorithm="tpe")
    params = parse_automl_params("hyperopt", "num_configs=8, num_iterations=2, algorithm='rand'")
    assert (params.num_configs, params.num_iterations, params.algorithm) == (8, 2, "rand")


@pytest.mark.parametrize("spelling", ["rand", "random", "'random'", '"RAND"', "Random"])
def test_random_is_rand(spelling: str) -> None:
    assert parse_automl_params("hyperopt", f"algorithm={spelling}").algorithm == "rand"


def test_asha_defaults_sample_as_many_configurations_as_hyperband() -> None:
    # Hyperband(R=6, eta=3) samples 3 + 2; (R=9) 9 + 5 + 3; (R=81) 81 + 34 + 15 + 8 + 5.
    assert parse_automl_params("asha", None) == AutomlParams(
        "asha", R=6, eta=3, num_configs=5, min_r=1, algorithm="rand")
    assert parse_automl_params("asha", "R=9").num_configs == 17
    assert parse_automl_params("asha", "R=81").num_configs == 143
    params = parse_automl_params("asha", "R=27, eta=3, min_r=3, num_configs=40, algorithm=tpe")
    assert (params.R, params.min_r, params.num_configs, params.algorithm) == (27, 3, 40, "tpe")


@pytest.mark.parametrize(("method", "text"), [
    ("hyperband", None), ("hyperband", "R=81, eta=3, skip_last=2"),
    ("hyperopt", "num_configs=3, algorithm=random"), ("asha", None), ("asha", "R=9, min_r=3"),
])
def test_the_canonical_text_reads_back(method: str, text: str | None) -> None:
    params = parse_automl_params(method, text)
    assert parse_automl_params(method, format_automl_params(params)) == params


def test_canonical_texts() -> None:
    assert format_automl_params(parse_automl_params(None, None)) == "R=6, eta=3, skip_last=0"
    assert format_automl_params(parse_automl_params("hyperopt", None)) == (
        "num_configs=20, num_iterations=5, algorithm=tpe")
    assert format_automl_params(parse_automl_params("asha", None)) == (
        "R=6, eta=3, min_r=1, num_configs=5, algorithm=rand")


def test_an_unknown_method_lists_the_methods() -> None:
    with pytest.raises(UsageError, match="hyperband, hyperopt, asha; got 'bohb'"):
        parse_automl_params("bohb", None)
    assert METHODS == ("hyperband", "hyperopt", "asha")


@pytest.mark.parametrize(("method", "text", "message"), [
    ("hyperband", "num_configs=3",
     r"unknown key 'num_configs' \(keys for hyperband: R, eta, skip_last\)"),
    ("hyperopt", "R=6",
     r"unknown key 'R' \(keys for hyperopt: num_configs, num_iterations, algorithm\)"),
    ("asha", "skip_last=1", r"unknown key 'skip_last' \(keys for asha: R, eta, min_r, num_configs"),
    ("hyperband", "R=6, r=9", "R is given twice"),
    ("hyperband", "R=6.5", "R must be an integer, got '6.5'"),
    ("hyperband", "R=", "R must be an integer, got ''"),
    ("hyperband", "R=__import__('os')", "R must be an integer"),
    ("hyperband", "R 6", "expected key=value, got 'R 6'"),
    ("hyperband", "=6", "expected key=value"),
    ("hyperband", "R=0", "R must be >= 1, got 0"),
    ("hyperband", "eta=1", "eta must be >= 2, got 1"),
    ("hyperband", "skip_last=-1", "skip_last must be >= 0"),
    ("hyperband", "R=6, skip_last=2", r"skip_last must be between 0 and s_max .* = 1"),
    ("hyperopt", "num_configs=0", "num_configs must be >= 1"),
    ("hyperopt", "num_iterations=0", "num_iterations must be >= 1"),
    ("hyperopt", "algorithm=atpe", "algorithm must be one of tpe, rand, got 'atpe'"),
    ("asha", "min_r=0", "min_r must be >= 1"),
    ("asha", "R=3, min_r=4", "min_r must be <= R, got min_r=4, R=3"),
    ("asha", "num_configs=0", "num_configs must be >= 1"),
])
def test_bad_params_are_one_line_usage_errors(method: str, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_automl_params(method, text)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("automl_params: ")
