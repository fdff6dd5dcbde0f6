"""Training jobs: ``fit``, ``resume``, ``status``, ``stop``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gpdl_jupyter import plans
from gpdl_jupyter.api._common import resolve
from gpdl_jupyter.results import JobReport
from gpdl_jupyter.sqltext import ShownSql

if TYPE_CHECKING:
    from gpdl_backend.mop.job import TrainingJob


def fit(
    source_table: str,
    model_output_table: str,
    model_selection_table: str,
    *,
    num_iterations: int = 10,
    validation_table: str | None = None,
    metrics_compute_frequency: int | None = None,
    use_gpus: bool = False,
    warm_start: bool = False,
    name: str | None = None,
    description: str | None = None,
    use_caching: bool = True,
    seed: int = 0,
    num_segments: int | None = None,
    background: bool = True,
    listener: Callable[[Any], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> TrainingJob | ShownSql:
    """Train every configuration at once with model hopper parallelism.

    Returns at once by default: training goes on in a background thread and
    its progress is in the output tables (``<out>_info``, ``_summary``,
    ``_progress``), so any widget or session can follow it.

    Args:
        source_table: packed training table.
        model_output_table: output name; creates it, ``_info``, ``_summary``, ``_progress``.
        model_selection_table: the configurations (its ``_summary`` names the
            architecture table).
        num_iterations: passes of every configuration over every segment. Defaults to 10.
        validation_table: packed validation table. Defaults to None.
        metrics_compute_frequency: evaluate every N iterations (and after the
            last). Defaults to None: only after the last.
        use_gpus: one GPU per segment. Defaults to False.
        warm_start: start from the weights in ``model_output_table``. Defaults to False.
        name: free text kept in the summary. Defaults to None.
        description: free text kept in the summary. Defaults to None.
        use_caching: keep each segment's data in its server process. Defaults to True.
        seed: seeds the schedule and initial weights. Defaults to 0.
        num_segments: PostgreSQL virtual segments. Defaults to the packed table's.
        background: return at once and train in a thread. Defaults to True.
        listener: called with an ``Event`` after each unit and iteration.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``TrainingJob`` (``status()``, ``wait()``, ``stop()``).

    Raises:
        UsageError: a bad table, option or configuration, before any training.

    Example:
        >>> job = fit("train_packed", "models", "mst", num_iterations=5,
        ...           validation_table="test_packed")
        >>> job.wait().status
        'finished'
    """
    url = resolve(dsn, show_sql)
    options = dict(num_iterations=num_iterations, validation_table=validation_table,
                   metrics_compute_frequency=metrics_compute_frequency, use_gpus=use_gpus,
                   warm_start=warm_start, name=name, description=description,
                   use_caching=use_caching, seed=seed, num_segments=num_segments,
                   background=background)
    if show_sql:
        return plans.fit_plan(url, source_table, model_output_table, model_selection_table,
                              **options)
    from gpdl_backend.mop.job import fit_multiple_model

    return fit_multiple_model(url, source_table, model_output_table, model_selection_table,
                              listener=listener, **options)


def resume(model_output_table: str, *, background: bool = True,
           listener: Callable[[Any], None] | None = None, dsn: str | None = None,
           show_sql: bool = False) -> TrainingJob | ShownSql:
    """Continue a stopped, failed or interrupted job from its last committed unit.

    Args:
        model_output_table: the job's output table.
        background: return at once and train in a thread. Defaults to True.
        listener: called with an ``Event`` after each unit and iteration.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``TrainingJob``.

    Raises:
        UsageError: no such job, or it already finished.

    Example:
        >>> resume("models").wait()
    """
    url = resolve(dsn, show_sql)
    if show_sql:
        return plans.resume_plan(url, model_output_table, background=background)
    from gpdl_backend.mop.job import resume as run

    return run(url, model_output_table, background=background, listener=listener)


def status(model_output_table: str, *, dsn: str | None = None,
           show_sql: bool = False) -> JobReport | ShownSql:
    """A training job's state, read from its tables (any session, any time).

    Returns:
        A ``JobReport`` (a ``JobStatus``: status, iterations, units, per
        configuration metrics) shown as a table.

    Raises:
        UsageError: no such job.

    Example:
        >>> status("models").status
        'running'
    """
    url = resolve(dsn, show_sql)
    if show_sql:
        return plans.status_plan(url, model_output_table)
    from gpdl_backend.mop.job import TrainingJob

    return JobReport.of(TrainingJob.attach(url, model_output_table).status(),
                        model_output_table)


def stop(model_output_table: str, *, mst_key: int | None = None, dsn: str | None = None,
         show_sql: bool = False) -> ShownSql | None:
    """Ask a job to stop, or one of its configurations (the others go on).

    Units already running finish; ``resume`` continues a stopped job.

    Raises:
        UsageError: no such job or ``mst_key``.

    Example:
        >>> stop("models", mst_key=3)
    """
    url = resolve(dsn, show_sql)
    if show_sql:
        return plans.stop_plan(url, model_output_table, mst_key)
    from gpdl_backend.mop.job import TrainingJob

    TrainingJob.attach(url, model_output_table).stop(mst_key)
    return None
