"""What an AutoML oracle tells the driver, and the bookkeeping every oracle shares.

See :mod:`gpdl_backend.automl.oracles` for the oracles and how a driver uses them.

Example:
    >>> NewConfig(budget=1, bracket=None, rung=0)
    NewConfig(budget=1, bracket=None, rung=0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from gpdl_backend.errors import UsageError

__all__ = ["BaseOracle", "Job", "NewConfig", "Oracle", "Outcome", "Promote", "finite"]


@dataclass(frozen=True)
class NewConfig:
    """Start a new sampled configuration.

    Attributes:
        budget: Iterations it may train (cumulative).
        bracket: Hyperband bracket ``s``; None for asha and hyperopt.
        rung: Rung index at which it starts (0).
    """

    budget: int
    bracket: int | None
    rung: int


@dataclass(frozen=True)
class Promote:
    """Let an existing configuration train on.

    Attributes:
        key: Its ``mst_key``.
        budget: New cumulative iteration budget.
        rung: Rung index it trains towards.
    """

    key: int
    budget: int
    rung: int


Job = NewConfig | Promote


class Outcome(StrEnum):
    """Where a configuration stands."""

    TRAINING = "training"
    """Training towards its budget (no loss reported for it yet)."""
    PAUSED = "paused"
    """Reported at a rung and waiting there; may still be promoted."""
    STOPPED = "stopped"
    """Stopped early, for good."""
    FINISHED = "finished"
    """Trained its last rung (``R`` iterations, or fewer with ``skip_last``)."""


class Oracle(Protocol):
    """What the driver needs of an oracle (see the module docstring)."""

    def next_job(self) -> Job | None: ...

    def started(self, key: int, job: NewConfig) -> None: ...

    def report(self, key: int, iterations: int, loss: float) -> None: ...

    @property
    def done(self) -> bool: ...

    def outcome(self, key: int) -> str: ...

    def rung_of(self, key: int) -> int: ...

    def state(self) -> dict: ...

    @classmethod
    def from_state(cls, state: dict) -> Oracle: ...


@dataclass
class _Config:
    """One bound configuration: its rung, whether it reported there, its losses by rung."""

    key: int
    rung: int = 0
    reported: bool = False
    losses: list[float | None] = field(default_factory=list)
    bracket: int | None = None
    stopped: bool = False

    def rank(self, rung: int) -> tuple[bool, float, int]:
        loss = self.losses[rung]
        return (loss is None, 0.0 if loss is None else loss, self.key)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rung": self.rung, "reported": self.reported,
                "losses": list(self.losses), "bracket": self.bracket,
                "stopped": self.stopped}


class BaseOracle:
    """Bookkeeping shared by the oracles: bound configurations and reserved slots.

    Not part of the driver's interface (that is :class:`Oracle`).
    """

    method: ClassVar[str]

    def __init__(self) -> None:
        self._configs: dict[int, _Config] = {}
        self._pending = 0

    def next_job(self) -> Job | None:
        raise NotImplementedError

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def _budget(self, config: _Config) -> int:
        raise NotImplementedError

    def started(self, key: int, job: NewConfig) -> None:
        """Bind ``key`` to a ``NewConfig`` that :meth:`next_job` handed out.

        Raises:
            ValueError: No ``NewConfig`` is waiting for a key, or ``key`` is known.
        """
        if not isinstance(job, NewConfig) or self._pending < 1:
            raise ValueError(f"no NewConfig handed out is waiting for a key (got {job!r})")
        if key in self._configs:
            raise ValueError(f"configuration {key} is already started")
        self._pending -= 1
        self._configs[key] = _Config(key, bracket=job.bracket)

    def report(self, key: int, iterations: int, loss: float) -> None:
        """Record the loss of a configuration that trained its budget.

        Raises:
            ValueError: Unknown configuration, not training, or ``iterations`` is
                not its budget.
        """
        config = self._config(key)
        if config.reported:
            raise ValueError(f"configuration {key} is not training (it already reported)")
        if iterations != self._budget(config):
            raise ValueError(
                f"configuration {key} trains to {self._budget(config)} iterations, "
                f"not {iterations}"
            )
        config.losses.append(float(loss) if finite(loss) else None)
        config.reported = True

    def rung_of(self, key: int) -> int:
        """The rung a configuration trains towards or waits at."""
        return self._config(key).rung

    def _config(self, key: int) -> _Config:
        try:
            return self._configs[key]
        except KeyError:
            raise ValueError(f"configuration {key} was never started") from None

    def _state(self, **extra: Any) -> dict[str, Any]:
        configs = [config.as_dict() for config in self._configs.values()]
        return {"method": self.method, **extra, "configs": configs}

    @classmethod
    def _check_state(cls, state: dict) -> dict:
        """``state`` when it is the state of this class of oracle."""
        if not isinstance(state, dict) or state.get("method") != cls.method:
            found = state.get("method") if isinstance(state, dict) else state
            raise UsageError(f"not an oracle state of method {cls.method!r} (got {found!r})")
        return state

    def _restore(self, state: dict) -> None:
        for item in state["configs"]:
            config = _Config(**item)
            self._configs[config.key] = config


def finite(loss: float) -> bool:
    """True for a finite number (a loss that ranks); False for NaN, infinities, None."""
    try:
        return math.isfinite(loss)
    except TypeError:
        return False
