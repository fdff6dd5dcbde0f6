"""Unit tests of MADlib's hyperband_schedule (pure integer arithmetic)."""

from __future__ import annotations

import itertools

import pytest

from gpdl_backend.automl.hyperband import Rung, hyperband_schedule, max_bracket
from gpdl_backend.errors import UsageError


def table(R: int, eta: int = 3, skip_last: int = 0) -> dict[int, list[tuple[int, int]]]:
    """``{s: [(n_i, r_i), ...]}`` of a schedule."""
    brackets: dict[int, list[tuple[int, int]]] = {}
    for rung in hyperband_schedule(R, eta, skip_last):
        brackets.setdefault(rung.s, []).append((rung.n_i, rung.r_i))
    return brackets


def test_the_hyperband_papers_table_for_R_81_eta_3() -> None:
    # Li et al., "Hyperband", table 1.
    assert table(81) == {
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(34, 3), (11, 9), (3, 27), (1, 81)],
        2: [(15, 9), (5, 27), (1, 81)],
        1: [(8, 27), (2, 81)],
        0: [(5, 81)],
    }


def test_madlibs_default_R_6_eta_3() -> None:
    assert hyperband_schedule(6) == [
        Rung(s=1, i=0, n_i=3, r_i=2), Rung(s=1, i=1, n_i=1, r_i=6), Rung(s=0, i=0, n_i=2, r_i=6),
    ]


def test_R_9_eta_3() -> None:
    assert table(9) == {2: [(9, 1), (3, 3), (1, 9)], 1: [(5, 3), (1, 9)], 0: [(3, 9)]}


def test_rows_are_ordered_by_bracket_down_then_rung_up() -> None:
    rows = hyperband_schedule(81)
    assert [(r.s, r.i) for r in rows] == sorted(((r.s, r.i) for r in rows),
                                                key=lambda si: (-si[0], si[1]))


@pytest.mark.parametrize(("R", "eta", "s_max"), [
    (1, 3, 0), (2, 3, 0), (3, 3, 1), (8, 3, 1), (9, 3, 2), (26, 3, 2), (27, 3, 3),
    (243, 3, 5), (1000, 10, 3), (999, 10, 2), (64, 2, 6), (125, 5, 3),
])
def test_s_max_is_exact_where_a_float_log_is_not(R: int, eta: int, s_max: int) -> None:
    assert max_bracket(R, eta) == s_max
    assert max(rung.s for rung in hyperband_schedule(R, eta)) == s_max


@pytest.mark.parametrize("eta", [2, 3, 4, 5])
def test_every_bracket_ends_at_R_with_shrinking_rungs(eta: int) -> None:
    for R in range(1, 300):
        s_max = max_bracket(R, eta)
        brackets = table(R, eta)
        assert sorted(brackets) == list(range(s_max + 1))
        for s, rungs in brackets.items():
            assert len(rungs) == s + 1
            assert rungs[-1][1] == R
            assert rungs[0][0] == -(-(s_max + 1) * eta**s // (s + 1))
            assert all(n >= 1 and r >= 1 for n, r in rungs)
            assert all(a[0] > b[0] and a[1] < b[1] for a, b in itertools.pairwise(rungs))


def test_r_i_rounds_like_python_3s_round() -> None:
    # R=10, eta=4: bracket 1 starts at 10 / 4 = 2.5 iterations.
    assert table(10, 4) == {1: [(4, 2), (1, 10)], 0: [(2, 10)]}
    # R=14, eta=4: 14 / 4 = 3.5 rounds to 4.
    assert table(14, 4)[1][0] == (4, 4)


def test_skip_last_drops_the_last_rungs_of_every_bracket() -> None:
    assert table(81, skip_last=1) == {
        4: [(81, 1), (27, 3), (9, 9), (3, 27)],
        3: [(34, 3), (11, 9), (3, 27)],
        2: [(15, 9), (5, 27)],
        1: [(8, 27)],
    }
    assert table(9, skip_last=2) == {2: [(9, 1)]}


@pytest.mark.parametrize(("args", "message"), [
    ((0,), "R must be an integer >= 1"),
    ((6.0,), "R must be an integer >= 1"),
    ((True,), "R must be an integer >= 1"),
    ((6, 1), "eta must be an integer >= 2"),
    ((6, 3.0), "eta must be an integer >= 2"),
    ((6, 3, -1), "skip_last must be an integer >= 0"),
    ((6, 3, 2), "skip_last must be between 0 and s_max"),
    ((81, 3, 5), r"s_max = floor\(log_eta\(R\)\) = 4"),
])
def test_bad_arguments_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        hyperband_schedule(*args)
