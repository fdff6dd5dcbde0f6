"""Read a training job's progress for display (runs in the client; widgets call only this).

One call reads everything a learning-curve view needs from a job's tables:
``<out>_summary`` (job status, iterations, ``metrics_iters``), ``<out>_info``
(per configuration: hyperparameters, status, loss and metric per evaluated
iteration) and ``<out>_progress`` (one row per completed hop, so a curve moves
before the first evaluation). Everything is read from the database, so a view
can re-attach to a running or finished job after a kernel restart.

Iterations on the x axis: an evaluation after iteration ``i`` sits at ``i``
(``metrics_iters`` is 1-based, as MADlib's); the ``h``-th hop of iteration
``i`` (0-based in ``_progress``) sits at ``i + h / num_segments``, so a
configuration's hops fill the interval that ends at its evaluation.

Example::

    progress = read_progress(dsn, "cifar_models")
    best = progress.best("metric")
    print(progress.status, best.mst_key if best else None)
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg2 import sql

from gpdl_backend.client import session, table_exists, table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.mop import tables

__all__ = [
    "Best",
    "ConfigProgress",
    "JobProgress",
    "Series",
    "best_mst_key",
    "higher_is_better",
    "hyperparameters",
    "read_progress",
]

_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "iou")
"""Metric names (substrings) where a larger value is better; others are errors."""
_MEASURES = ("loss", "metric")
_SIDES = ("training", "validation", "hops")


@dataclass(frozen=True)
class Series:
    """Points ``(x, y)`` of one curve; ``y`` may hold None (not measured)."""

    x: tuple[float, ...] = ()
    y: tuple[float | None, ...] = ()

    def last(self) -> float | None:
        """The last measured value. Defaults to None when there is none."""
        return next((v for v in reversed(self.y) if v is not None), None)

    def best(self, higher: bool) -> tuple[float, float] | None:
        """``(x, y)`` of the best measured point (the first one on ties)."""
        points = [(x, y) for x, y in zip(self.x, self.y, strict=True)
                  if y is not None and math.isfinite(y)]
        if not points:
            return None
        pick = max if higher else min
        return pick(points, key=lambda p: p[1])


@dataclass(frozen=True)
class ConfigProgress:
    """One configuration (``mst_key``) of a job, as its tables record it.

    Attributes:
        mst_key, model_id, compile_params, fit_params: the configuration.
        hyperparameters: short readable values (optimizer, learning rate, batch size...).
        status: ``training``, ``finished`` or ``stopped``.
        metric_name: the compiled metric (e.g. ``accuracy``), or None.
        units_done: hops completed so far.
        iteration: iterations done, fractional while one is under way.
        num_params: trainable and other parameters of the model, when known.
        curves: ``{("training"|"validation"|"hops", "loss"|"metric"): Series}``;
            ``hops`` holds the per-hop training values from ``_progress``.
        stop_requested: a stop was asked for while it trains, not yet applied.
        budget, rung: in a search, the iterations it may train so far and the rung
            they end (None in a fit).
        hand_made: in a search, cloned or extended by a person (``mop.steering``).
    """

    mst_key: int
    model_id: int | None
    compile_params: str
    fit_params: str
    hyperparameters: dict[str, Any]
    status: str
    metric_name: str | None
    units_done: int
    iteration: float
    num_params: int | None = None
    curves: dict[tuple[str, str], Series] = field(default_factory=dict)
    stop_requested: bool = False
    budget: int | None = None
    rung: int | None = None
    hand_made: bool = False

    def series(self, side: str, measure: str) -> Series:
        """The curve of ``side`` (training, validation, hops) and ``measure`` (loss, metric)."""
        if side not in _SIDES or measure not in _MEASURES:
            raise UsageError(f"no curve {side!r}/{measure!r}: sides are {', '.join(_SIDES)}, "
                             f"measures {', '.join(_MEASURES)}")
        return self.curves.get((side, measure), Series())

    def last(self, side: str, measure: str) -> float | None:
        """The latest evaluated value of ``side`` and ``measure``."""
        return self.series(side, measure).last()

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric_name)

    def label(self) -> str:
        """A one-line description: ``mst 3 · model 1 · Adam lr=0.001 · batch 64``."""
        return " · ".join([f"mst {self.mst_key}", *describe_hyperparameters(
            self.hyperparameters)])


@dataclass(frozen=True)
class Best:
    """The best configuration so far: where and on which curve."""

    mst_key: int
    value: float
    iteration: float
    side: str
    measure: str


@dataclass(frozen=True)
class JobProgress:
    """A snapshot of a whole job.

    Attributes:
        output: the job's output table.
        status: ``running``, ``finished``, ``stopped`` or ``failed``.
        iterations_done, num_iterations: progress in whole iterations.
        num_segments: segments each configuration visits per iteration.
        metrics_iters: iterations (1-based) after which the job evaluated.
        has_validation: a validation table was given.
        stop_requested: a stop of the whole job was asked for.
        error: the driver's error, for a failed job.
        configs: every configuration, by ``mst_key``.
        units_done: hops completed over all configurations.
    """

    output: str
    status: str
    iterations_done: int
    num_iterations: int
    num_segments: int
    metrics_iters: tuple[int, ...]
    has_validation: bool
    stop_requested: bool
    error: str | None
    configs: tuple[ConfigProgress, ...]
    units_done: int = 0

    @property
    def running(self) -> bool:
        return self.status == tables.RUNNING

    def config(self, mst_key: int) -> ConfigProgress:
        """The configuration ``mst_key``.

        Raises:
            UsageError: the job has no such configuration.
        """
        for config in self.configs:
            if config.mst_key == mst_key:
                return config
        raise UsageError(f"job {self.output} has no mst_key {mst_key}")

    def best(self, measure: str = "metric", side: str | None = None) -> Best | None:
        """The best configuration so far on ``measure`` (loss: lowest; metric: per its kind).

        Args:
            measure: ``"loss"`` or ``"metric"``. Defaults to ``"metric"``.
            side: ``"validation"``, ``"training"`` or ``"hops"``. Defaults to
                validation when the job has it, else training, else the per-hop
                values (before the first evaluation).

        Returns:
            The best point, or None when nothing was measured yet.
        """
        sides = [side] if side else [
            s for s in ("validation", "training", "hops")
            if s != "validation" or self.has_validation]
        for candidate in sides:
            found = _best_on(self.configs, candidate, measure)
            if found is not None:
                return found
        return None

    def fingerprint(self) -> tuple:
        """Changes whenever anything a view shows changes (cheap comparison)."""
        return (self.status, self.iterations_done, self.units_done, self.metrics_iters,
                self.stop_requested, tuple((c.mst_key, c.status, c.units_done, c.stop_requested,
                                            len(c.series("training", "loss").x))
                                           for c in self.configs))


def higher_is_better(metric_name: str | None) -> bool:
    """Whether a larger value of this metric is better (accuracy: yes; mae: no)."""
    name = (metric_name or "").lower()
    return any(part in name for part in _HIGHER_IS_BETTER)


def read_progress(dsn: str, output: str) -> JobProgress:
    """Everything a learning-curve view shows of job ``output``, in one read.

    Args:
        dsn: where the database is.
        output: the job's output table (``fit_multiple_model``'s ``model_output_table``).

    Returns:
        A ``JobProgress`` snapshot.

    Raises:
        UsageError: a bad name or no such job.
        FatalError: the database cannot be reached.

    Example:
        >>> read_progress(dsn, "models").configs[0].last("validation", "metric")
        0.91
    """
    out = tables.OutputTables(table_name(output))
    with (session(dsn, "gpdl:progress", readonly=True, autocommit=True) as conn,
          conn.cursor() as cur):
        if not table_exists(cur, out.summary):
            raise UsageError(f"no training job {out.model}")
        return _read(cur, out)


def best_mst_key(dsn: str, model_table: str) -> int:
    """The configuration of a trained model table with the best final metric.

    Prefers the validation metric, then the training metric, then the lowest
    validation/training loss; ties go to the smaller ``mst_key``.

    Raises:
        UsageError: ``<model_table>_info`` is missing or empty.

    Example:
        >>> best_mst_key(dsn, "models")
        3
    """
    progress = read_progress(dsn, model_table)
    if not progress.configs:
        raise UsageError(f"{model_table}_info holds no configuration")
    final = _best_final(progress.configs)
    return final if final is not None else progress.configs[0].mst_key


def hyperparameters(compile_params: str, fit_params: str,
                    model_id: int | None = None) -> dict[str, Any]:
    """Readable hyperparameters of a configuration, without importing Keras.

    Reads the literal ``name=value`` pairs of MADlib's parameter strings:
    ``model_id``, ``optimizer`` and its arguments (``lr`` shown as
    ``learning_rate``), ``loss``, ``metrics``, ``batch_size``, ``epochs``...
    Anything unreadable is kept as text under ``compile_params``/``fit_params``.

    Example:
        >>> hyperparameters("loss='categorical_crossentropy', optimizer='Adam(lr=0.01)'",
        ...                 "batch_size=64, epochs=1")
        {'optimizer': 'Adam', 'learning_rate': 0.01, 'loss': 'categorical_crossentropy',
         'batch_size': 64, 'epochs': 1}
    """
    values: dict[str, Any] = {} if model_id is None else {"model_id": model_id}
    compiled = _keywords(compile_params)
    if compiled is None:
        values["compile_params"] = compile_params
    else:
        optimizer = compiled.pop("optimizer", None)
        if optimizer is not None:
            name, kwargs = _optimizer(optimizer)
            values["optimizer"] = name
            values.update(("learning_rate" if k == "lr" else k, v) for k, v in kwargs.items())
        values.update(compiled)
        if isinstance(values.get("metrics"), list | tuple):
            values["metrics"] = ", ".join(map(str, values["metrics"]))
    fitted = _keywords(fit_params)
    if fitted is None:
        values["fit_params"] = fit_params
    else:
        values.update((k, v) for k, v in fitted.items() if k != "verbose")
    return values


def describe_hyperparameters(values: dict[str, Any]) -> list[str]:
    """Short phrases for a legend or hover: ``model 1``, ``Adam lr=0.001``, ``batch 64``."""
    values = dict(values)
    phrases = []
    if "model_id" in values:
        phrases.append(f"model {values.pop('model_id')}")
    if "optimizer" in values:
        optimizer = str(values.pop("optimizer"))
        rate = values.pop("learning_rate", None)
        phrases.append(optimizer if rate is None else f"{optimizer} lr={_short(rate)}")
    for key, word in (("batch_size", "batch"), ("epochs", "epochs")):
        if key in values:
            phrases.append(f"{word} {_short(values.pop(key))}")
    for key in ("loss", "metrics"):
        values.pop(key, None)
    phrases.extend(f"{k}={_short(v)}" for k, v in values.items())
    return phrases


# --- reading --------------------------------------------------------------------------
def _read(cur, out: tables.OutputTables) -> JobProgress:
    cur.execute(sql.SQL(
        "SELECT status, coalesce(iterations_done, 0), num_iterations, "
        "coalesce(num_segments, 1), coalesce(metrics_iters, '{{}}'), validation_table, "
        "coalesce(stop_requested, false), error FROM {}").format(out.summary.identifier))
    row = cur.fetchone()
    if row is None:
        raise UsageError(f"{out.summary} is empty")
    status, done, total, segments, metrics_iters, validation, stop, error = row
    segments = max(1, int(segments))
    hops = _hops(cur, out)
    # A search evaluates each configuration on its own clock: its _info row has the
    # iterations it was evaluated after, its budget and rung.
    search = sql.SQL("metrics_iters, budget, i, hand_made" if tables.is_search(cur, out)
                     else "NULL::integer[], NULL::integer, NULL::integer, false")
    cur.execute(sql.SQL(
        "SELECT mst_key, model_id, compile_params, fit_params, status, metrics_type, "
        "coalesce(training_loss, '{{}}'), coalesce(training_metrics, '{{}}'), "
        "coalesce(validation_loss, '{{}}'), coalesce(validation_metrics, '{{}}'), "
        "stop_requested, num_params, {} FROM {} ORDER BY mst_key").format(
        search, out.info.identifier))
    configs = []
    for (mst, model_id, compile_params, fit_params, config_status, metrics_type, t_loss,
         t_metric, v_loss, v_metric, config_stop, num_params, config_iters, budget,
         rung, hand_made) in cur.fetchall():
        mst_hops = hops.get(mst, [])
        evaluated = metrics_iters if config_iters is None else config_iters
        curves = {
            ("training", "loss"): _evaluated(evaluated, t_loss),
            ("training", "metric"): _evaluated(evaluated, t_metric),
            ("validation", "loss"): _evaluated(evaluated, v_loss),
            ("validation", "metric"): _evaluated(evaluated, v_metric),
            ("hops", "loss"): _hop_series(mst_hops, segments, 0),
            ("hops", "metric"): _hop_series(mst_hops, segments, 1),
        }
        hop_x = curves[("hops", "loss")].x
        configs.append(ConfigProgress(
            mst_key=mst, model_id=model_id, compile_params=compile_params or "",
            fit_params=fit_params or "",
            hyperparameters=hyperparameters(compile_params or "", fit_params or "", model_id),
            status=config_status or tables.PENDING,
            metric_name=(metrics_type or [None])[0], units_done=len(mst_hops),
            iteration=hop_x[-1] if hop_x else 0.0, num_params=num_params, curves=curves,
            stop_requested=bool(config_stop) and config_status == tables.TRAINING,
            budget=budget, rung=rung, hand_made=bool(hand_made)))
    return JobProgress(
        output=str(out.model), status=status or tables.RUNNING, iterations_done=int(done),
        num_iterations=int(total or 0), num_segments=segments,
        metrics_iters=tuple(metrics_iters), has_validation=validation is not None,
        stop_requested=bool(stop), error=error, configs=tuple(configs),
        units_done=sum(len(h) for h in hops.values()))


def _hops(cur, out: tables.OutputTables) -> dict[int, list[tuple[int, float | None,
                                                                    float | None]]]:
    """Per configuration, ``(iteration, loss, metric)`` of every hop in commit order."""
    cur.execute(sql.SQL("SELECT mst_key, iteration, loss, metric FROM {} "
                        "ORDER BY mst_key, iteration, finished_at, segment").format(
        out.progress.identifier))
    hops: dict[int, list[tuple[int, float | None, float | None]]] = {}
    for mst, iteration, loss, metric in cur.fetchall():
        hops.setdefault(mst, []).append((iteration, loss, metric))
    return hops


def _hop_series(hops: Sequence[tuple[int, float | None, float | None]], segments: int,
                which: int) -> Series:
    xs, ys, seen = [], [], {}
    for iteration, loss, metric in hops:
        seen[iteration] = seen.get(iteration, 0) + 1
        xs.append(round(iteration + seen[iteration] / segments, 6))
        ys.append((loss, metric)[which])
    return Series(tuple(xs), tuple(_finite(v) for v in ys))


def _evaluated(metrics_iters: Sequence[int], values: Sequence[float | None]) -> Series:
    """Values per evaluated iteration; a stopped configuration has fewer (the first ones)."""
    count = min(len(metrics_iters), len(values))
    return Series(tuple(float(i) for i in metrics_iters[:count]),
                  tuple(_finite(v) for v in values[:count]))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _best_on(configs: Iterable[ConfigProgress], side: str, measure: str) -> Best | None:
    found: Best | None = None
    for config in configs:
        higher = measure == "metric" and config.higher_is_better
        point = config.series(side, measure).best(higher)
        if point is None:
            continue
        better = found is None or (point[1] > found.value if higher else point[1] < found.value)
        if better:
            found = Best(config.mst_key, point[1], point[0], side, measure)
    return found


def _best_final(configs: Sequence[ConfigProgress]) -> int | None:
    for side, measure in (("validation", "metric"), ("training", "metric"),
                          ("validation", "loss"), ("training", "loss")):
        scored = [(c.last(side, measure), c) for c in configs]
        scored = [(v, c) for v, c in scored if v is not None]
        if scored:
            higher = measure == "metric" and scored[0][1].higher_is_better
            return min(scored, key=lambda vc: (-vc[0] if higher else vc[0],
                                               vc[1].mst_key))[1].mst_key
    return None


# --- parameter strings ------------------------------------------------------------------
def _keywords(text: str) -> dict[str, Any] | None:
    """``a=1, b='x'`` as a dict of literals; None when it is not such a string."""
    if not text or not text.strip():
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call) or call.args:
        return None
    values = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            return None
        values[keyword.arg] = _literal(keyword.value)
    return values


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Call):  # optimizer=Adam(lr=0.001), unquoted
        return ast.unparse(node)
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return ast.unparse(node)


def _optimizer(value: Any) -> tuple[str, dict[str, Any]]:
    """``'Adam(lr=0.001)'`` → ``('Adam', {'lr': 0.001})``; a bare name has no arguments."""
    text = str(value).strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return text, {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
        return node.func.id, kwargs
    return text, {}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
