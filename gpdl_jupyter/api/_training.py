"""Training jobs: ``fit``, ``resume``, ``status``, ``stop``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gpdl_backend.client import table_name
from gpdl_backend.mop.job import metrics_frequency
from gpdl_jupyter import plans
from gpdl_jupyter.api._common import resolve, run_call
from gpdl_jupyter.results import JobReport
from gpdl_jupyter.sqltext import ShownSql, function_call

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
    background: bool = True,
    on_notice: Callable[[str], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> TrainingJob | ShownSql:
    """Train every configuration at once with model hopper parallelism.

    One call of ``gpdl.madlib_keras_fit_multiple_model``. The job's driver runs
    on the database host, so it outlives this kernel; its progress is in the
    output tables (``<out>_info``, ``_summary``, ``_progress``) and ``gpdl.jobs``.

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
        background: return once the job has started. Defaults to True; False
            blocks until it ends.
        on_notice: called with each progress NOTICE of a blocking call.
        dsn: the database. Defaults to None.
        show_sql: return the statement instead of running it. Defaults to False.

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
    for table in (source_table, model_output_table, model_selection_table, validation_table):
        if table is not None:
            table_name(table)  # refused here, before the server is asked
    metrics_frequency(metrics_compute_frequency, num_iterations)
    statement = function_call(
        "madlib_keras_fit_multiple_model", source_table, model_output_table,
        model_selection_table, num_iterations, use_gpus, validation_table,
        metrics_compute_frequency, warm_start, name, description, use_caching, seed,
        background)
    return _job(statement, dsn, show_sql, on_notice)


def resume(model_output_table: str, *, background: bool = True,
           on_notice: Callable[[str], None] | None = None, dsn: str | None = None,
           show_sql: bool = False) -> TrainingJob | ShownSql:
    """Continue a stopped, failed or lost job from its last committed unit.

    One call of ``gpdl.resume_job``.

    Args:
        model_output_table: the job's output table.
        background: return once the job has started. Defaults to True.
        on_notice: called with each progress NOTICE of a blocking call.
        dsn: the database. Defaults to None.
        show_sql: return the statement instead of running it. Defaults to False.

    Returns:
        A ``TrainingJob``.

    Raises:
        UsageError: no such job, or it already finished.

    Example:
        >>> resume("models").wait()
    """
    table_name(model_output_table)
    statement = function_call("resume_job", model_output_table, background=background)
    return _job(statement, dsn, show_sql, on_notice)


def _job(statement: str, dsn: str | None, show_sql: bool,
         on_notice: Callable[[str], None] | None) -> TrainingJob | ShownSql:
    if show_sql:
        return ShownSql(statement + ";")
    from gpdl_backend.mop.job import TrainingJob

    url = resolve(dsn, show_sql)
    return TrainingJob.attach(url, run_call(url, statement, on_notice))


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

    One call of ``gpdl.stop_job``. Units already running finish; ``resume``
    continues a stopped job.

    Raises:
        UsageError: no such job or ``mst_key``.

    Example:
        >>> stop("models", mst_key=3)
    """
    table_name(model_output_table)
    statement = function_call("stop_job", model_output_table, mst_key=mst_key)
    if show_sql:
        return ShownSql(statement + ";")
    run_call(resolve(dsn, show_sql), statement)
    return None
