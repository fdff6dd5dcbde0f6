"""MADlib's ``hyperband_schedule``: brackets and rungs of Hyperband.

Hyperband (Li et al., 2018) runs successive halving in ``s_max + 1`` brackets,
``s_max = floor(log_eta(R))``. Bracket ``s`` samples ``n = ceil((s_max + 1) /
(s + 1) * eta**s)`` configurations and trains them ``r = R * eta**-s``
iterations; at rung ``i`` the best ``n_i = floor(n * eta**-i)`` train on to
``r_i = r * eta**i`` iterations, so the last rung trains one or a few of them to
``R``.

Decisions:

* Everything is exact arithmetic (no float ``log``, which gives
  ``log(243, 3) = 4.999...``): ``r_i`` is the fraction ``R / eta**(s - i)``
  rounded as MADlib's ``int(round(r_i))`` under Python 3 (halves to even), so
  the last rung is exactly ``R``.
* ``n`` is the paper's ``ceil((s_max + 1) / (s + 1) * eta**s)``.
* ``R`` may be smaller than ``eta`` (MADlib refuses it): there is then one bracket
  of ``n = 1`` configuration trained ``R`` iterations.

Example:
    >>> [(rung.s, rung.i, rung.n_i, rung.r_i) for rung in hyperband_schedule(9, 3)]
    [(2, 0, 9, 1), (2, 1, 3, 3), (2, 2, 1, 9), (1, 0, 5, 3), (1, 1, 1, 9), (0, 0, 3, 9)]
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from gpdl_backend.errors import UsageError

__all__ = ["Rung", "hyperband_schedule", "max_bracket"]


@dataclass(frozen=True)
class Rung:
    """One row of the schedule (MADlib's ``hyperband_schedule`` table).

    Attributes:
        s: Bracket, from ``s_max`` down to 0.
        i: Rung (MADlib's "round") within the bracket, from 0.
        n_i: Configurations trained at this rung.
        r_i: Iterations each of them has trained when the rung ends (cumulative).
    """

    s: int
    i: int
    n_i: int
    r_i: int


def max_bracket(R: int, eta: int = 3) -> int:
    """``s_max = floor(log_eta(R))``, by integer arithmetic.

    Args:
        R: Most iterations a configuration trains, >= 1.
        eta: Reduction factor, >= 2. Defaults to 3.

    Returns:
        The largest ``s`` with ``eta**s <= R``.

    Raises:
        UsageError: ``R`` or ``eta`` is not an integer in range.

    Example:
        >>> max_bracket(9, 3), max_bracket(8, 3), max_bracket(81, 3)
        (2, 1, 4)
    """
    _check_int("R", R, 1)
    _check_int("eta", eta, 2)
    s = 0
    while eta ** (s + 1) <= R:
        s += 1
    return s


def hyperband_schedule(R: int, eta: int = 3, skip_last: int = 0) -> list[Rung]:
    """Hyperband's brackets and rungs (MADlib's ``hyperband_schedule``).

    Args:
        R: Most iterations a configuration trains, >= 1.
        eta: Reduction factor between rungs, >= 2. Defaults to 3.
        skip_last: Rungs dropped from the end of every bracket, from 0 to
            ``s_max``; a bracket left without rungs is dropped. Defaults to 0.

    Returns:
        Rows ordered by bracket ``s`` (from ``s_max`` down) then rung ``i``.

    Raises:
        UsageError: An argument is not an integer in range.

    Example:
        >>> [(rung.s, rung.n_i, rung.r_i) for rung in hyperband_schedule(6)]
        [(1, 3, 2), (1, 1, 6), (0, 2, 6)]
    """
    s_max = max_bracket(R, eta)
    _check_int("skip_last", skip_last, 0)
    if skip_last > s_max:
        raise UsageError(
            f"skip_last must be between 0 and s_max = floor(log_eta(R)) = {s_max} "
            f"for R={R}, eta={eta}; got {skip_last}"
        )
    rows = []
    for s in range(s_max, -1, -1):
        n = -(-(s_max + 1) * eta**s // (s + 1))
        for i in range(s + 1 - skip_last):
            rows.append(Rung(s=s, i=i, n_i=n // eta**i, r_i=round(Fraction(R, eta ** (s - i)))))
    return rows


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{name} must be an integer >= {low}, got {value!r}")
