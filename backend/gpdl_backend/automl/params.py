"""MADlib's ``automl_method`` and ``automl_params``: which search, with which settings.

``automl_params`` is a comma-separated ``key=value`` text, e.g.
``'R=6, eta=3, skip_last=0'``. Keys are case-insensitive, whitespace is free,
values are integers except ``algorithm`` (a name, optionally quoted). A missing
key takes its default; a missing or blank text takes every default.

======================  ==================================================================
method                  keys (defaults)
======================  ==================================================================
``hyperband`` (default) ``R`` (6), ``eta`` (3), ``skip_last`` (0): MADlib's
``hyperopt``            ``num_configs`` (20), ``num_iterations`` (5), ``algorithm``
                        (``tpe``; or ``rand``, also spelled ``random``): MADlib's
``asha`` (gpdl's own)   ``R`` (6), ``eta`` (3), ``min_r`` (1), ``num_configs``
                        (as many as Hyperband with that ``R`` and ``eta`` samples),
                        ``algorithm`` (``rand`` or ``tpe``; default ``rand``)
======================  ==================================================================

Example:
    >>> p = parse_automl_params("ASHA", "R=9,eta=3")
    >>> p.method, p.R, p.min_r, p.num_configs, p.algorithm
    ('asha', 9, 1, 17, 'rand')
    >>> format_automl_params(p)
    'R=9, eta=3, min_r=1, num_configs=17, algorithm=rand'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpdl_backend.automl.hyperband import hyperband_schedule
from gpdl_backend.errors import UsageError

__all__ = ["ALGORITHMS", "METHODS", "AutomlParams", "format_automl_params", "parse_automl_params"]

METHODS = ("hyperband", "hyperopt", "asha")
"""AutoML methods, MADlib's two first; ``hyperband`` is the default."""
ALGORITHMS = ("tpe", "rand")
"""Samplers of ``hyperopt`` and ``asha``; ``random`` is read as ``rand``."""

_KEYS = {
    "hyperband": ("R", "eta", "skip_last"),
    "hyperopt": ("num_configs", "num_iterations", "algorithm"),
    "asha": ("R", "eta", "min_r", "num_configs", "algorithm"),
}
_DEFAULTS: dict[str, dict[str, int | str]] = {
    "hyperband": {"R": 6, "eta": 3, "skip_last": 0},
    "hyperopt": {"num_configs": 20, "num_iterations": 5, "algorithm": "tpe"},
    "asha": {"R": 6, "eta": 3, "min_r": 1, "algorithm": "rand"},
}
_MINIMUM = {"R": 1, "eta": 2, "skip_last": 0, "num_configs": 1, "num_iterations": 1, "min_r": 1}
_ALGORITHM_ALIASES = {"random": "rand"}
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class AutomlParams:
    """Validated settings of one AutoML search.

    A field the method does not use is None.

    Attributes:
        method: One of :data:`METHODS`.
        R: Most iterations a configuration trains (hyperband, asha).
        eta: Reduction factor between rungs (hyperband, asha).
        skip_last: Rungs dropped from the end of every bracket (hyperband).
        num_configs: Configurations sampled (hyperopt, asha).
        num_iterations: Iterations each configuration trains (hyperopt).
        min_r: Iterations of rung 0 (asha).
        algorithm: ``"tpe"`` or ``"rand"``, the sampler (hyperopt, asha).
    """

    method: str
    R: int | None = None
    eta: int | None = None
    skip_last: int | None = None
    num_configs: int | None = None
    num_iterations: int | None = None
    min_r: int | None = None
    algorithm: str | None = None


def parse_automl_params(method: str | None, text: str | None) -> AutomlParams:
    """Read ``automl_method`` and ``automl_params`` (see the module's table of keys).

    Args:
        method: ``"hyperband"``, ``"hyperopt"`` or ``"asha"``, any case; None means
            ``"hyperband"`` (MADlib's default).
        text: ``key=value`` pairs separated by commas; None or blank takes every
            default.

    Returns:
        The validated parameters, every field of the method filled in.

    Raises:
        UsageError: Unknown method, malformed pair, unknown or repeated key, value
            not an integer or out of range, unknown algorithm.

    Example:
        >>> p = parse_automl_params(None, None)
        >>> p.method, p.R, p.eta, p.skip_last, p.num_configs
        ('hyperband', 6, 3, 0, None)
    """
    name = _method(method)
    values: dict[str, int | str] = dict(_DEFAULTS[name])
    values.update(_pairs(name, text or ""))
    allowed = f"keys for {name}: {', '.join(_KEYS[name])}"
    if name == "hyperband":
        try:
            hyperband_schedule(int(values["R"]), int(values["eta"]), int(values["skip_last"]))
        except UsageError as exc:
            raise UsageError(f"automl_params: {exc} ({allowed})") from exc
    if name == "asha":
        if int(values["min_r"]) > int(values["R"]):
            raise UsageError(
                f"automl_params: min_r must be <= R, got min_r={values['min_r']}, "
                f"R={values['R']} ({allowed})"
            )
        if "num_configs" not in values:
            schedule = hyperband_schedule(int(values["R"]), int(values["eta"]))
            values["num_configs"] = sum(rung.n_i for rung in schedule if rung.i == 0)
    return AutomlParams(method=name, **values)  # type: ignore[arg-type]


def format_automl_params(params: AutomlParams) -> str:
    """The canonical ``automl_params`` text of a search (the one stored in its summary).

    Args:
        params: Validated parameters.

    Returns:
        ``key=value`` pairs of the method's keys, in the order of the module's table;
        :func:`parse_automl_params` reads it back to the same parameters.

    Example:
        >>> format_automl_params(parse_automl_params("hyperopt", "algorithm='random'"))
        'num_configs=20, num_iterations=5, algorithm=rand'
    """
    return ", ".join(f"{key}={getattr(params, key)}" for key in _KEYS[params.method])


def _method(method: str | None) -> str:
    if method is None:
        return "hyperband"
    name = method.strip().lower() if isinstance(method, str) else None
    if name not in METHODS:
        raise UsageError(f"automl_method must be one of {', '.join(METHODS)}; got {method!r}")
    return name


def _pairs(method: str, text: str) -> dict[str, int | str]:
    """The ``key=value`` pairs of ``text``, keys canonical and values checked."""
    if not isinstance(text, str):
        raise UsageError(f"automl_params must be a text such as 'R=6, eta=3', got {text!r}")
    keys = _KEYS[method]
    allowed = f"keys for {method}: {', '.join(keys)}"
    by_lower = {key.lower(): key for key in keys}
    found: dict[str, int | str] = {}
    for piece in text.split(","):
        if not piece.strip():
            continue
        given, equals, raw = piece.partition("=")
        key = by_lower.get(given.strip().lower())
        if not equals or not given.strip():
            raise UsageError(
                f"automl_params: expected key=value, got {piece.strip()!r} ({allowed})"
            )
        if key is None:
            raise UsageError(f"automl_params: unknown key {given.strip()!r} ({allowed})")
        if key in found:
            raise UsageError(f"automl_params: {key} is given twice ({allowed})")
        found[key] = _value(key, raw.strip(), allowed)
    return found


def _value(key: str, raw: str, allowed: str) -> int | str:
    if key == "algorithm":
        name = raw.strip("'\"").strip().lower()
        name = _ALGORITHM_ALIASES.get(name, name)
        if name not in ALGORITHMS:
            raise UsageError(
                f"automl_params: algorithm must be one of {', '.join(ALGORITHMS)}, "
                f"got {raw!r} ({allowed})"
            )
        return name
    if not _INTEGER.fullmatch(raw):
        raise UsageError(f"automl_params: {key} must be an integer, got {raw!r} ({allowed})")
    value = int(raw)
    if value < _MINIMUM[key]:
        raise UsageError(
            f"automl_params: {key} must be >= {_MINIMUM[key]}, got {value} ({allowed})"
        )
    return value
