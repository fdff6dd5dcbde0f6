"""AutoML oracles: when a configuration starts, trains on, or stops.

The driver runs configurations on the model-hopper scheduler, each with its own
iteration budget, and only asks, runs and reports; an oracle decides:

* :meth:`Oracle.next_job` says what to run now: a :class:`NewConfig` (sample and
  start a configuration), a :class:`Promote` (train one on to a larger budget) or
  None (nothing now, maybe later). It commits at once: a ``NewConfig`` reserves
  its slot and a ``Promote`` marks the configuration as training, so the driver
  calls it only when it will act on the answer (when a worker is free).
* :meth:`Oracle.started` binds the ``mst_key`` the driver gave a ``NewConfig``.
* :meth:`Oracle.report` gives a configuration's loss once it trained its budget
  (lower is better; NaN or infinite ranks last).

Budgets are cumulative iterations. The outcome of a configuration is one of
:class:`Outcome`. :meth:`Oracle.state` is JSON (failed losses are null) and
records bound configurations only: a ``NewConfig`` not yet ``started`` is handed
out again by the oracle :meth:`~Oracle.from_state` rebuilds.

Three oracles, by ``automl_method``:

* :class:`Asha` (``asha``): asynchronous successive halving (Li et al., 2020).
  Rung ``k`` trains ``min_r * eta**k`` iterations, the last rung exactly ``R``. A
  configuration waiting at rung ``k`` is promoted as soon as it is among the best
  ``floor(n_k / eta)`` of the ``n_k`` that reported at rung ``k``; when none is,
  a new configuration starts, up to ``num_configs``. No worker waits for a rung
  to fill.
* :class:`Hyperband` (``hyperband``): MADlib's synchronous Hyperband, every bracket
  of :func:`~gpdl_backend.automl.hyperband.hyperband_schedule` at once. A
  bracket's rung ``i + 1`` starts only when all ``n_i`` of its rung ``i``
  reported (the barrier ASHA removes); its best ``n_{i+1}`` train on, the others
  stop.
* :class:`RandomOrTpe` (``hyperopt``): ``num_configs`` configurations, each
  trained ``num_iterations``; which ones is the sampler's business.

The job types and :class:`Outcome` live in :mod:`gpdl_backend.automl.jobs`,
:class:`Asha` in :mod:`gpdl_backend.automl.asha`; this module re-exports them, so
a driver imports from here only.

Example:
    >>> oracle = Asha(R=9, eta=3, min_r=1, num_configs=3)
    >>> for key in (1, 2, 3):
    ...     oracle.started(key, oracle.next_job())
    >>> for key, loss in ((1, 0.5), (2, 0.2), (3, 0.9)):
    ...     oracle.report(key, 1, loss)
    >>> oracle.next_job()
    Promote(key=2, budget=3, rung=1)
    >>> oracle.outcome(1), oracle.outcome(2)
    ('stopped', 'training')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpdl_backend.automl.asha import Asha, asha_rungs
from gpdl_backend.automl.hyperband import _check_int, hyperband_schedule
from gpdl_backend.automl.jobs import (
    BaseOracle,
    Job,
    NewConfig,
    Oracle,
    Outcome,
    Promote,
    _Config,
)
from gpdl_backend.automl.params import AutomlParams
from gpdl_backend.errors import UsageError

__all__ = [
    "Asha",
    "Hyperband",
    "Job",
    "NewConfig",
    "Oracle",
    "Outcome",
    "Promote",
    "RandomOrTpe",
    "asha_rungs",
    "make_oracle",
    "oracle_from_state",
]


@dataclass
class _Bracket:
    """A Hyperband bracket: its rungs ``(n_i, r_i)``, how far it got."""

    s: int
    rungs: list[tuple[int, int]]
    handed: int = 0
    rung: int = 0
    queue: list[int] = field(default_factory=list)
    finished: bool = False


class Hyperband(BaseOracle):
    """MADlib's synchronous Hyperband, all brackets at once (see the module docstring).

    :meth:`next_job` hands out promotions first (brackets from ``s_max`` down,
    best configuration first), then new configurations, bracket by bracket.

    Args:
        R: Most iterations a configuration trains. Defaults to 6.
        eta: Reduction factor. Defaults to 3.
        skip_last: Rungs dropped from the end of every bracket. Defaults to 0.

    Raises:
        UsageError: An argument is not an integer in range.
    """

    method = "hyperband"

    def __init__(self, R: int = 6, eta: int = 3, skip_last: int = 0) -> None:
        super().__init__()
        schedule = hyperband_schedule(R, eta, skip_last)
        self.R, self.eta, self.skip_last = R, eta, skip_last
        self.brackets: dict[int, _Bracket] = {}
        for row in schedule:
            bracket = self.brackets.setdefault(row.s, _Bracket(row.s, []))
            bracket.rungs.append((row.n_i, row.r_i))
        self._pending_in: dict[int, int] = dict.fromkeys(self.brackets, 0)

    def next_job(self) -> Job | None:
        """A promotion of a bracket past its barrier, else a new configuration, else None."""
        for bracket in self.brackets.values():
            if bracket.queue:
                config = self._configs[bracket.queue.pop(0)]
                config.rung, config.reported = bracket.rung, False
                return Promote(config.key, bracket.rungs[bracket.rung][1], bracket.rung)
        for bracket in self.brackets.values():
            if bracket.handed < bracket.rungs[0][0]:
                bracket.handed += 1
                self._pending += 1
                self._pending_in[bracket.s] += 1
                return NewConfig(budget=bracket.rungs[0][1], bracket=bracket.s, rung=0)
        return None

    def started(self, key: int, job: NewConfig) -> None:
        """Bind ``key`` to a ``NewConfig`` of bracket ``job.bracket``."""
        bracket = job.bracket if isinstance(job, NewConfig) else None
        if bracket is None or not self._pending_in.get(bracket):
            raise ValueError(f"no NewConfig of that bracket is waiting for a key (got {job!r})")
        super().started(key, job)
        self._pending_in[bracket] -= 1

    def report(self, key: int, iterations: int, loss: float) -> None:
        """Record a loss; the last of a rung opens the bracket's next rung."""
        super().report(key, iterations, loss)
        bracket = self._bracket_of(self._configs[key])
        members = [c for c in self._configs.values()
                   if c.bracket == bracket.s and c.rung == bracket.rung]
        if len(members) < bracket.rungs[bracket.rung][0] or not all(c.reported for c in members):
            return
        if bracket.rung == len(bracket.rungs) - 1:
            bracket.finished = True
            return
        members.sort(key=lambda c: c.rank(bracket.rung))
        keep = bracket.rungs[bracket.rung + 1][0]
        for config in members[keep:]:
            config.stopped = True
        bracket.queue = [c.key for c in members[:keep]]
        bracket.rung += 1

    @property
    def done(self) -> bool:
        """True when every bracket finished its last rung."""
        return all(bracket.finished for bracket in self.brackets.values())

    def outcome(self, key: int) -> str:
        """``training``, ``paused`` (at a barrier or queued), ``stopped`` or ``finished``."""
        config = self._config(key)
        if not config.reported:
            return Outcome.TRAINING.value
        if config.stopped:
            return Outcome.STOPPED.value
        last = len(self._bracket_of(config).rungs) - 1
        return (Outcome.FINISHED if config.rung == last else Outcome.PAUSED).value

    def state(self) -> dict:
        """JSON-serialisable state (see :meth:`from_state`)."""
        brackets = [
            {"s": b.s, "handed": b.handed - self._pending_in[b.s], "rung": b.rung,
             "queue": list(b.queue), "finished": b.finished}
            for b in self.brackets.values()
        ]
        return self._state(R=self.R, eta=self.eta, skip_last=self.skip_last, brackets=brackets)

    @classmethod
    def from_state(cls, state: dict) -> Hyperband:
        """The oracle whose :meth:`state` this is (slots not yet started are free again)."""
        state = cls._check_state(state)
        oracle = cls(state["R"], state["eta"], state["skip_last"])
        oracle._restore(state)
        for item in state["brackets"]:
            bracket = oracle.brackets[item["s"]]
            bracket.handed, bracket.rung = item["handed"], item["rung"]
            bracket.queue, bracket.finished = list(item["queue"]), item["finished"]
        return oracle

    def _budget(self, config: _Config) -> int:
        return self._bracket_of(config).rungs[config.rung][1]

    def _bracket_of(self, config: _Config) -> _Bracket:
        assert config.bracket is not None
        return self.brackets[config.bracket]


class RandomOrTpe(BaseOracle):
    """``num_configs`` configurations trained ``num_iterations`` each (MADlib's hyperopt).

    Args:
        num_configs: Configurations started in all. Defaults to 20.
        num_iterations: Iterations each trains. Defaults to 5.

    Raises:
        UsageError: An argument is not an integer >= 1.
    """

    method = "hyperopt"

    def __init__(self, num_configs: int = 20, num_iterations: int = 5) -> None:
        super().__init__()
        _check_int("num_configs", num_configs, 1)
        _check_int("num_iterations", num_iterations, 1)
        self.num_configs, self.num_iterations = num_configs, num_iterations

    def next_job(self) -> Job | None:
        """A new configuration while fewer than ``num_configs`` are started, else None."""
        if len(self._configs) + self._pending < self.num_configs:
            self._pending += 1
            return NewConfig(budget=self.num_iterations, bracket=None, rung=0)
        return None

    @property
    def done(self) -> bool:
        """True when ``num_configs`` configurations started and reported."""
        return len(self._configs) == self.num_configs and all(
            c.reported for c in self._configs.values()
        )

    def outcome(self, key: int) -> str:
        """``training``, then ``finished``."""
        return (Outcome.FINISHED if self._config(key).reported else Outcome.TRAINING).value

    def state(self) -> dict:
        """JSON-serialisable state (see :meth:`from_state`)."""
        return self._state(num_configs=self.num_configs, num_iterations=self.num_iterations)

    @classmethod
    def from_state(cls, state: dict) -> RandomOrTpe:
        """The oracle whose :meth:`state` this is (slots not yet started are free again)."""
        state = cls._check_state(state)
        oracle = cls(state["num_configs"], state["num_iterations"])
        oracle._restore(state)
        return oracle

    def _budget(self, config: _Config) -> int:
        return self.num_iterations


_ORACLES: dict[str, type[Asha] | type[Hyperband] | type[RandomOrTpe]] = {
    "asha": Asha, "hyperband": Hyperband, "hyperopt": RandomOrTpe,
}


def make_oracle(params: AutomlParams) -> Oracle:
    """The oracle of a search's ``automl_method`` and ``automl_params``.

    Args:
        params: Parsed parameters (:func:`~gpdl_backend.automl.params.parse_automl_params`).

    Returns:
        A fresh :class:`Asha`, :class:`Hyperband` or :class:`RandomOrTpe`.

    Raises:
        UsageError: Unknown method or parameters out of range.

    Example:
        >>> from gpdl_backend.automl.params import parse_automl_params
        >>> type(make_oracle(parse_automl_params("hyperband", "R=9"))).__name__
        'Hyperband'
    """
    if params.method == "asha":
        return Asha(params.R, params.eta, params.min_r, params.num_configs)
    if params.method == "hyperband":
        return Hyperband(params.R, params.eta, params.skip_last)
    if params.method == "hyperopt":
        return RandomOrTpe(params.num_configs, params.num_iterations)
    raise UsageError(f"automl_method must be one of {', '.join(_ORACLES)}; got {params.method!r}")


def oracle_from_state(state: dict) -> Oracle:
    """Rebuild an oracle from its :meth:`~Oracle.state` (after a resume).

    Args:
        state: What ``state()`` returned (through JSON is fine).

    Returns:
        The oracle, of the class named by ``state["method"]``.

    Raises:
        UsageError: The state names no known method.

    Example:
        >>> oracle = RandomOrTpe(num_configs=2, num_iterations=3)
        >>> oracle_from_state(oracle.state()).next_job()
        NewConfig(budget=3, bracket=None, rung=0)
    """
    method = state.get("method") if isinstance(state, dict) else None
    if method not in _ORACLES:
        raise UsageError(f"not the state of an AutoML oracle (method {method!r})")
    return _ORACLES[method].from_state(state)
