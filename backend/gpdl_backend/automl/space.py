"""Search spaces from MADlib's grids, and seeded Optuna samplers over them.

A :class:`SearchSpace` is read from the same ``compile_params_grid`` and
``fit_params_grid`` as ``generate_model_configs`` (and checked by the same code,
:func:`gpdl_backend.selection.check_search_grids`); a :class:`Sampler` draws
trials (:class:`Trial`) from it with Optuna's ask/tell interface, at random
(``rand``) or guided by the losses told so far (``tpe``).

Each grid entry becomes one Optuna parameter:

* a list of choices: ``CategoricalDistribution``; choices that are not all
  ``str``/``int``/``float``/``bool``/``None`` (e.g. ``metrics`` lists) are given
  to Optuna as their index in the list;
* ``[low, high, 'linear']``: ``FloatDistribution(low, high)``;
* ``[low, high, 'log']``: ``FloatDistribution(low, high, log=True)``;
* ``[low, high, 'log_near_one']``: the parameter holds ``v = 1 - x``, drawn
  log-uniformly from ``(1 - high, 1 - low)``, and the value used is ``x = 1 - v``
  (what ``generate_model_configs`` samples, e.g. a momentum close to 1);
* a range of ``batch_size`` or ``epochs``: ``IntDistribution(ceil(low),
  floor(high))``, log-scaled for ``'log'``.

Parameter names are the grid keys, plus ``model_id`` (a choice among the model
ids) and, with ``optimizer_params_list``, that key for the index of the entry
drawn first, then the entry's own keys prefixed by its index (``"0.lr"``), so
each optimizer has its own, conditional parameters.

Configurations may repeat (a small grid cannot fill many trials otherwise), as
with Hyperopt.

Example:
    >>> space = SearchSpace.from_grids(
    ...     [1, 2],
    ...     "{'loss': ['categorical_crossentropy'], 'metrics': [['accuracy']],"
    ...     " 'optimizer_params_list': [{'optimizer': ['Adam'], 'lr': [1e-4, 1e-1, 'log']}]}",
    ...     "{'batch_size': [32, 64]}")
    >>> sampler = Sampler(space, "rand", seed=7)
    >>> trial = sampler.ask()
    >>> sorted(trial.params)
    ['0.lr', '0.optimizer', 'batch_size', 'loss', 'metrics', 'model_id', 'optimizer_params_list']
    >>> sampler.tell(trial.number, 0.25)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from gpdl_backend.automl.params import ALGORITHMS
from gpdl_backend.errors import UsageError
from gpdl_backend.selection import (
    _INTEGER_PARAMS,
    OPTIMIZER_PARAMS_LIST,
    _compile_string,
    _fit_string,
    _range_of,
    check_search_grids,
)

__all__ = ["Sampler", "SearchSpace", "Trial"]

_PRIMITIVE = (str, int, float, bool, type(None))
_ALIASES = {"random": "rand"}


@dataclass(frozen=True)
class Trial:
    """One sampled configuration.

    Attributes:
        number: Trial number in its sampler, from 0 in the order asked (replayed
            history included).
        model_id: Architecture id.
        compile_params: Canonical compile parameter string.
        fit_params: Canonical fit parameter string.
        params: Every sampled choice by parameter name (JSON-serialisable), what
            :meth:`Sampler.add_history` takes to replay the trial.
    """

    number: int
    model_id: int
    compile_params: str
    fit_params: str
    params: dict[str, Any]


@dataclass(frozen=True)
class _Axis:
    """One sampled parameter: its Optuna name, the grid key it fills, its grid values."""

    name: str
    key: str
    values: tuple[Any, ...]

    @property
    def distribution(self) -> BaseDistribution:
        bounds = _range_of(self.key, list(self.values))
        if bounds is None:
            if all(isinstance(value, _PRIMITIVE) for value in self.values):
                return CategoricalDistribution(list(self.values))
            return CategoricalDistribution(list(range(len(self.values))))
        low, high, kind = bounds
        if self.key in _INTEGER_PARAMS:
            if math.ceil(low) > math.floor(high):
                raise UsageError(f"{self.key!r}: range {list(self.values)!r} holds no integer")
            return IntDistribution(math.ceil(low), math.floor(high), log=kind == "log")
        if kind == "log_near_one":
            return FloatDistribution(1 - high, 1 - low, log=True)
        return FloatDistribution(low, high, log=kind == "log")

    def decode(self, value: Any) -> Any:
        """The grid value an Optuna value of this parameter stands for."""
        bounds = _range_of(self.key, list(self.values))
        if bounds is None:
            indexed = not all(isinstance(v, _PRIMITIVE) for v in self.values)
            return self.values[value] if indexed else value
        if bounds[2] == "log_near_one" and self.key not in _INTEGER_PARAMS:
            return 1 - value
        return value

    def probes(self) -> list[Any]:
        """Optuna values worth validating: every choice, or a range's midpoint."""
        distribution = self.distribution
        if isinstance(distribution, CategoricalDistribution):
            return list(distribution.choices)
        low, high = distribution.low, distribution.high
        middle = math.sqrt(low * high) if distribution.log else (low + high) / 2
        return [round(middle) if isinstance(distribution, IntDistribution) else middle]


@dataclass(frozen=True)
class SearchSpace:
    """The parameters a search samples, read from MADlib's grids.

    Attributes:
        model_ids: Architecture ids, sorted.
        compile_axes: Top-level compile keys (``loss``, ``optimizer``, ``metrics``).
        optimizer_entries: Parameters of each ``optimizer_params_list`` entry;
            empty without one.
        fit_axes: Fit keys.
    """

    model_ids: tuple[int, ...]
    compile_axes: tuple[_Axis, ...]
    optimizer_entries: tuple[tuple[_Axis, ...], ...]
    fit_axes: tuple[_Axis, ...]

    @classmethod
    def from_grids(
        cls, model_ids: Sequence[int], compile_params_grid: str, fit_params_grid: str
    ) -> SearchSpace:
        """Read and validate a search space (the grids of ``generate_model_configs``).

        Every choice of every parameter, and the midpoint of every range, is
        written into a configuration once, so a bad optimizer, argument, loss or
        metric is refused here rather than at some later draw.

        Args:
            model_ids: Architecture ids.
            compile_params_grid: Compile grid (Python-literal dict string, or dict).
            fit_params_grid: Fit grid (Python-literal dict string, or dict); may be
                empty.

        Returns:
            The search space.

        Raises:
            UsageError: What ``generate_model_configs`` refuses, or an integer
                range holding no integer.

        Example:
            >>> space = SearchSpace.from_grids([3], "{'loss': ['mse'], 'optimizer': ['SGD']}", "")
            >>> space.model_ids, [axis.name for axis in space.parameters(None)]
            ((3,), ['model_id', 'loss', 'optimizer'])
        """
        ids, compile_grid, fit_grid = check_search_grids(
            model_ids, compile_params_grid, fit_params_grid
        )
        entries = tuple(
            tuple(_Axis(f"{index}.{key}", key, tuple(values)) for key, values in entry.items())
            for index, entry in enumerate(compile_grid.get(OPTIMIZER_PARAMS_LIST, ()))
        )
        space = cls(
            model_ids=tuple(ids),
            compile_axes=tuple(
                _Axis(key, key, tuple(values))
                for key, values in compile_grid.items()
                if key != OPTIMIZER_PARAMS_LIST
            ),
            optimizer_entries=entries,
            fit_axes=tuple(_Axis(key, key, tuple(values)) for key, values in fit_grid.items()),
        )
        space._validate()
        return space

    def parameters(self, entry: int | None) -> list[_Axis]:
        """Every parameter sampled for one optimizer entry (None: the unconditional ones).

        Args:
            entry: Index in ``optimizer_params_list``, or None.

        Returns:
            Parameters in sampling order: model id, compile keys, entry index,
            fit keys, then the entry's own keys.
        """
        axes = [_Axis("model_id", "model_id", self.model_ids), *self.compile_axes]
        if self.optimizer_entries:
            indexes = tuple(range(len(self.optimizer_entries)))
            axes.append(_Axis(OPTIMIZER_PARAMS_LIST, OPTIMIZER_PARAMS_LIST, indexes))
        axes.extend(self.fit_axes)
        if entry is not None:
            axes.extend(self.optimizer_entries[entry])
        return axes

    def configuration(self, params: dict[str, Any]) -> tuple[int, str, str]:
        """``(model_id, compile_params, fit_params)`` of sampled parameter values.

        Args:
            params: Optuna values by parameter name, as in :attr:`Trial.params`.

        Returns:
            The model id and the canonical compile and fit strings.

        Raises:
            UsageError: The values make an invalid configuration.
        """
        compile_choice = {axis.key: axis.decode(params[axis.name]) for axis in self.compile_axes}
        if self.optimizer_entries:
            entry = self.optimizer_entries[params[OPTIMIZER_PARAMS_LIST]]
            compile_choice[OPTIMIZER_PARAMS_LIST] = {
                axis.key: axis.decode(params[axis.name]) for axis in entry
            }
        fit_choice = {axis.key: axis.decode(params[axis.name]) for axis in self.fit_axes}
        return params["model_id"], _compile_string(compile_choice), _fit_string(fit_choice)

    def first_configuration(self) -> tuple[int, str, str]:
        """The configuration of every parameter's first choice (a range's midpoint).

        Example:
            >>> SearchSpace.from_grids([3, 4], "{'loss': ['mse'], 'optimizer': ['SGD']}",
            ...                        "{'batch_size': [16, 32]}").first_configuration()
            (3, "loss='mse',optimizer='SGD()'", 'batch_size=16,epochs=1')
        """
        return self.configuration(self._first_choices(0 if self.optimizer_entries else None))

    def _first_choices(self, entry: int | None) -> dict[str, Any]:
        base = {axis.name: axis.probes()[0] for axis in self.parameters(entry)}
        if entry is not None:
            base[OPTIMIZER_PARAMS_LIST] = entry
        return base

    def _validate(self) -> None:
        """Write each probe value once into an otherwise first-choice configuration."""
        entries = range(len(self.optimizer_entries)) if self.optimizer_entries else [None]
        for entry in entries:
            for params in _one_at_a_time(self._first_choices(entry), self.parameters(entry)):
                self.configuration(params)


def _one_at_a_time(base: dict[str, Any], axes: list[_Axis]) -> Iterator[dict[str, Any]]:
    yield base
    for axis in axes:
        if axis.name == OPTIMIZER_PARAMS_LIST:
            continue
        for value in axis.probes()[1:]:
            yield {**base, axis.name: value}


class Sampler:
    """Seeded Optuna sampler over a search space (ask for trials, tell their losses).

    Args:
        space: The search space.
        algorithm: ``"tpe"`` (Tree-structured Parzen Estimator: its first 10
            trials are random, later ones favour parameters of low losses) or
            ``"rand"`` (``"random"`` too). Defaults to ``"tpe"``.
        seed: Seed of the sampler: the same seed, asks and tells give the same
            trials. Defaults to 0.

    Raises:
        UsageError: Unknown algorithm or a seed that is not an integer.

    Example:
        >>> space = SearchSpace.from_grids([1], "{'loss': ['mse'], 'optimizer': ['SGD']}", "")
        >>> sampler = Sampler(space, "tpe", seed=1)
        >>> trial = sampler.ask()
        >>> trial.number, trial.compile_params
        (0, "loss='mse',optimizer='SGD()'")
    """

    def __init__(self, space: SearchSpace, algorithm: str = "tpe", seed: int = 0) -> None:
        name = _ALIASES.get(algorithm, algorithm) if isinstance(algorithm, str) else None
        if name not in ALGORITHMS:
            raise UsageError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"seed must be an integer, got {seed!r}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler: optuna.samplers.BaseSampler = (
                optuna.samplers.TPESampler(seed=seed, constant_liar=True)
                if name == "tpe"
                else optuna.samplers.RandomSampler(seed=seed)
            )
        self.space = space
        self.algorithm = name
        self.seed = seed
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        self._running: set[int] = set()

    def ask(self) -> Trial:
        """Sample the next trial (it stays running until told).

        Returns:
            The trial, numbered after every earlier one.

        Raises:
            UsageError: The sampled values make an invalid configuration (the
                trial is then told as failed).
        """
        fixed = {axis.name: axis.distribution for axis in self.space.parameters(None)}
        trial = self._study.ask(fixed)
        if self.space.optimizer_entries:
            for axis in self.space.optimizer_entries[trial.params[OPTIMIZER_PARAMS_LIST]]:
                _suggest(trial, axis.name, axis.distribution)
        params = dict(sorted(trial.params.items()))
        try:
            model_id, compile_params, fit_params = self.space.configuration(params)
        except UsageError:
            self._study.tell(trial.number, state=TrialState.FAIL)
            raise
        self._running.add(trial.number)
        return Trial(trial.number, model_id, compile_params, fit_params, params)

    def tell(self, number: int, loss: float) -> None:
        """Report the loss of a running trial (lower is better).

        Args:
            number: The trial's number.
            loss: Its loss; NaN or infinite records the trial as failed.

        Raises:
            ValueError: No trial of that number is running.
        """
        if number not in self._running:
            raise ValueError(f"trial {number} is not running in this sampler")
        self._running.discard(number)
        if _finite(loss):
            self._study.tell(number, float(loss))
        else:
            self._study.tell(number, state=TrialState.FAIL)

    def add_history(self, params: dict[str, Any], loss: float | None) -> int:
        """Replay a trial of an earlier run into this sampler (after a resume).

        Replaying every earlier trial in its order gives each its old number.

        Args:
            params: The trial's :attr:`Trial.params`.
            loss: Its loss; None for a trial still running (tell it later), NaN
                or infinite for a failed one.

        Returns:
            The trial's number in this sampler.

        Raises:
            UsageError: The parameters do not fit this search space.

        Example:
            >>> space = SearchSpace.from_grids([1], "{'loss': ['mse'], 'optimizer': ['SGD']}", "")
            >>> sampler = Sampler(space, "rand", seed=0)
            >>> sampler.add_history({"loss": "mse", "model_id": 1, "optimizer": "SGD"}, 0.5)
            0
        """
        distributions = self._distributions(params)
        if loss is None:
            state, value = TrialState.RUNNING, None
        elif _finite(loss):
            state, value = TrialState.COMPLETE, float(loss)
        else:
            state, value = TrialState.FAIL, None
        try:
            frozen = optuna.trial.create_trial(
                state=state, value=value, params=dict(params), distributions=distributions
            )
        except ValueError as exc:
            raise UsageError(
                f"trial parameters {params!r} do not fit this search space: {exc}"
            ) from exc
        self._study.add_trial(frozen)
        number = self._study.trials[-1].number
        if state == TrialState.RUNNING:
            self._running.add(number)
        return number

    def _distributions(self, params: dict[str, Any]) -> dict[str, BaseDistribution]:
        entry = params.get(OPTIMIZER_PARAMS_LIST) if self.space.optimizer_entries else None
        if entry is not None and (
            isinstance(entry, bool)
            or not isinstance(entry, int)
            or not 0 <= entry < len(self.space.optimizer_entries)
        ):
            raise UsageError(f"trial parameters {params!r} name no optimizer entry")
        axes = self.space.parameters(entry)
        names = {axis.name for axis in axes}
        if set(params) != names:
            raise UsageError(
                f"trial parameters {sorted(params)} do not fit this search space, "
                f"which samples {sorted(names)}"
            )
        return {axis.name: axis.distribution for axis in axes}


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    assert isinstance(distribution, FloatDistribution)
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


def _finite(loss: float) -> bool:
    try:
        return math.isfinite(loss)
    except TypeError:
        return False
