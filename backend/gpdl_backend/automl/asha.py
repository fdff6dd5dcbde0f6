"""ASHA: asynchronous successive halving (Li et al., 2020), gpdl's ``asha`` method.

Rung ``k`` trains ``min_r * eta**k`` iterations, the last rung exactly ``R``. A
configuration waiting at rung ``k`` is promoted as soon as it is among the best
``floor(n_k / eta)`` of the ``n_k`` configurations that reported at rung ``k``
(ranked by loss, ties by key; NaN last); when none is, a new configuration
starts, up to ``num_configs``. So no worker waits for a rung to fill, unlike
synchronous Hyperband. The search is finite, so once no configuration can reach
a rung any more its best goes on even where ``floor(n_k / eta)`` is 0: at least
one configuration always trains to ``R``. See :mod:`gpdl_backend.automl.oracles` for the protocol.

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

from gpdl_backend.automl.hyperband import _check_int
from gpdl_backend.automl.jobs import BaseOracle, Job, NewConfig, Outcome, Promote, _Config
from gpdl_backend.errors import UsageError

__all__ = ["Asha", "asha_rungs"]


def asha_rungs(R: int, eta: int = 3, min_r: int = 1) -> list[int]:
    """ASHA's rung budgets: ``min_r * eta**k`` while below ``R``, then ``R``.

    Args:
        R: Most iterations a configuration trains, >= 1.
        eta: Reduction factor, >= 2. Defaults to 3.
        min_r: Iterations of rung 0, from 1 to ``R``. Defaults to 1.

    Returns:
        Increasing budgets ending with ``R``.

    Raises:
        UsageError: An argument is not an integer in range.

    Example:
        >>> asha_rungs(9), asha_rungs(6), asha_rungs(10, 3, 2)
        ([1, 3, 9], [1, 3, 6], [2, 6, 10])
    """
    _check_int("R", R, 1)
    _check_int("eta", eta, 2)
    _check_int("min_r", min_r, 1)
    if min_r > R:
        raise UsageError(f"min_r must be <= R, got min_r={min_r}, R={R}")
    rungs = []
    budget = min_r
    while budget < R:
        rungs.append(budget)
        budget *= eta
    return [*rungs, R]


class Asha(BaseOracle):
    """Asynchronous successive halving (see the module docstring).

    Args:
        R: Most iterations a configuration trains. Defaults to 6.
        eta: Reduction factor. Defaults to 3.
        min_r: Iterations of rung 0. Defaults to 1.
        num_configs: Configurations started in all. Defaults to 5.

    Raises:
        UsageError: An argument is not an integer in range.
    """

    method = "asha"

    def __init__(self, R: int = 6, eta: int = 3, min_r: int = 1, num_configs: int = 5) -> None:
        super().__init__()
        self.rungs = asha_rungs(R, eta, min_r)
        _check_int("num_configs", num_configs, 1)
        self.R, self.eta, self.min_r, self.num_configs = R, eta, min_r, num_configs

    def next_job(self) -> Job | None:
        """Promote the best promotable configuration of the highest rung, else start one."""
        promotable = self._promotable()
        if promotable is not None:
            promotable.rung += 1
            promotable.reported = False
            return Promote(promotable.key, self.rungs[promotable.rung], promotable.rung)
        if len(self._configs) + self._pending < self.num_configs:
            self._pending += 1
            return NewConfig(budget=self.rungs[0], bracket=None, rung=0)
        return None

    @property
    def done(self) -> bool:
        """True when every configuration started, reported, and none is promotable."""
        return self._closed() and all(c.reported for c in self._configs.values()) and (
            self._promotable() is None
        )

    def outcome(self, key: int) -> str:
        """``training``, ``paused`` (may be promoted), ``stopped`` or ``finished``."""
        config = self._config(key)
        if not config.reported:
            return Outcome.TRAINING.value
        if config.rung == len(self.rungs) - 1:
            return Outcome.FINISHED.value
        if self._final(config.rung) and key not in {c.key for c in self._top(config.rung)}:
            return Outcome.STOPPED.value
        return Outcome.PAUSED.value

    def state(self) -> dict:
        """JSON-serialisable state (see :meth:`from_state`)."""
        return self._state(R=self.R, eta=self.eta, min_r=self.min_r,
                           num_configs=self.num_configs)

    @classmethod
    def from_state(cls, state: dict) -> Asha:
        """The oracle whose :meth:`state` this is (slots not yet started are free again)."""
        state = cls._check_state(state)
        oracle = cls(state["R"], state["eta"], state["min_r"], state["num_configs"])
        oracle._restore(state)
        return oracle

    def _budget(self, config: _Config) -> int:
        return self.rungs[config.rung]

    def _reported_at(self, rung: int) -> list[_Config]:
        return [c for c in self._configs.values() if len(c.losses) > rung]

    def _top(self, rung: int) -> list[_Config]:
        reported = sorted(self._reported_at(rung), key=lambda c: c.rank(rung))
        count = len(reported) // self.eta
        if count == 0 and reported and self._final(rung):
            count = 1  # a finite search: the best of a closed rung goes on, so one reaches R
        return reported[:count]

    def _waiting_in_top(self, rung: int) -> _Config | None:
        return next((c for c in self._top(rung) if c.rung == rung and c.reported), None)

    def _promotable(self) -> _Config | None:
        for rung in range(len(self.rungs) - 2, -1, -1):
            config = self._waiting_in_top(rung)
            if config is not None:
                return config
        return None

    def _closed(self) -> bool:
        """No configuration is left to start."""
        return self._pending == 0 and len(self._configs) == self.num_configs

    def _final(self, rung: int) -> bool:
        """No configuration can ever report at ``rung`` again (its ranking is final)."""
        if not self._closed():
            return False
        for lower in range(rung + 1):
            if any(c.rung == lower and not c.reported for c in self._configs.values()):
                return False
            if lower < rung and self._waiting_in_top(lower) is not None:
                return False
        return True
