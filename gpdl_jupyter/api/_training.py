"""Training jobs: ``fit``, ``automl``, ``resume``, ``status``, ``stop``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gpdl_backend.mop.job import metrics_frequency
from gpdl_jupyter.api._common import check_tables, resolve, run_call, run_rows
from gpdl_jupyter.api._models import grid_text
from gpdl_jupyter.results import JobReport, Table
from gpdl_jupyter.sqltext import ShownSql, SqlCall, function_call, literal

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
    check_tables(source_table, model_output_table, model_selection_table, validation_table)
    metrics_frequency(metrics_compute_frequency, num_iterations)
    statement = function_call(
        "madlib_keras_fit_multiple_model", source_table, model_output_table,
        model_selection_table, num_iterations, use_gpus, validation_table,
        metrics_compute_frequency, warm_start, name, description, use_caching, seed,
        background)
    return _job(statement, dsn, show_sql, on_notice)


def automl(
    source_table: str,
    model_output_table: str,
    model_arch_table: str,
    model_selection_table: str,
    model_ids: Sequence[int],
    *,
    compile_params_grid: Mapping[str, Any] | str,
    fit_params_grid: Mapping[str, Any] | str,
    automl_method: str = "hyperband",
    automl_params: str | None = None,
    random_state: int | None = None,
    validation_table: str | None = None,
    metrics_compute_frequency: int | None = None,
    use_gpus: bool = False,
    name: str | None = None,
    description: str | None = None,
    use_caching: bool = True,
    background: bool = True,
    on_notice: Callable[[str], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> TrainingJob | ShownSql:
    """Search the configurations of a grid with Hyperband, ASHA or TPE, on MOP units.

    One call of ``gpdl.madlib_keras_automl``. The search makes its configurations
    as it goes (into ``model_selection_table``) and trains, promotes or stops
    them; it is a job like ``fit``'s: ``status``, ``stop``, ``resume``, curves.

    Args:
        source_table: packed training table.
        model_output_table: output name; creates it, ``_info``, ``_summary``, ``_progress``.
        model_arch_table: the architecture table ``model_ids`` refer to.
        model_selection_table: the model selection table the search writes.
        model_ids: architecture ids to search over.
        compile_params_grid: compile grid (``select_models``'s syntax; ranges
            ``[low, high, 'linear' | 'log' | 'log_near_one']``).
        fit_params_grid: fit grid.
        automl_method: ``"hyperband"`` (MADlib's), ``"hyperopt"`` (MADlib's TPE or
            random) or ``"asha"`` (asynchronous successive halving). Defaults to
            ``"hyperband"``.
        automl_params: MADlib's parameter text, e.g. ``"R=6, eta=3, skip_last=0"``.
            Defaults to the method's defaults.
        random_state: seeds the sampler, the schedule and the weights. Defaults to None (0).
        validation_table: packed validation table; the search ranks by its loss
            (else by the training loss). Defaults to None.
        metrics_compute_frequency: also evaluate every N iterations. Defaults to
            None: at the end of each budget (rung).
        use_gpus, name, description, use_caching: as ``fit``'s.
        background: return once the search has started. Defaults to True.
        on_notice: called with each progress NOTICE of a blocking call.
        dsn: the database. Defaults to None.
        show_sql: return the statement instead of running it. Defaults to False.

    Returns:
        A ``TrainingJob``.

    Raises:
        UsageError: a bad table, method, parameter or grid, before any table exists.

    Example:
        >>> job = automl("train_packed", "search", "arch", "search_mst", [1, 2],
        ...              compile_params_grid={"loss": ["categorical_crossentropy"],
        ...                  "optimizer_params_list": [
        ...                      {"optimizer": ["Adam"], "lr": [1e-4, 1e-2, "log"]}],
        ...                  "metrics": ["accuracy"]},
        ...              fit_params_grid={"batch_size": [32, 64], "epochs": [1]},
        ...              automl_method="asha", automl_params="R=9, eta=3",
        ...              validation_table="test_packed")
    """
    check_tables(source_table, model_output_table, model_arch_table, model_selection_table,
                 validation_table)
    statement = function_call(
        "madlib_keras_automl", source_table, model_output_table, model_arch_table,
        model_selection_table, list(model_ids), grid_text(compile_params_grid),
        grid_text(fit_params_grid), automl_method, automl_params, random_state, None,
        use_gpus, validation_table, metrics_compute_frequency, name, description,
        use_caching, background)
    return _job(statement, dsn, show_sql, on_notice)


def automl_plan(automl_method: str = "hyperband", automl_params: str | None = None, *,
                source_table: str | None = None, unit_seconds: float | None = None,
                model_arch_table: str | None = None, model_ids: Sequence[int] | None = None,
                compile_params_grid: str | Mapping | None = None,
                fit_params_grid: str | Mapping | None = None,
                dsn: str | None = None, show_sql: bool = False) -> Table | ShownSql:
    """What a search will train, before it starts: brackets, rungs, units and an ETA.

    One call of ``gpdl.automl_plan``. With ``source_table`` the units count its
    segments; the ETA takes ``unit_seconds``, else the mean unit time of the
    latest job trained on ``source_table``, else (given the search space:
    ``model_arch_table``, ``model_ids`` and the grids) a short probe that trains
    the space's first configuration on one buffer in the server.

    Returns:
        One row per bracket and rung (``s, i, n_i, r_i, iterations, units``) and a
        total row, shown as a table.

    Example:
        >>> automl_plan("hyperband", "R=9, eta=3", source_table="train_packed")
    """
    check_tables(source_table, model_arch_table)
    statement = function_call(
        "automl_plan", automl_method, automl_params, source_table, unit_seconds,
        model_arch_table, None if model_ids is None else list(model_ids),
        None if compile_params_grid is None else grid_text(compile_params_grid),
        None if fit_params_grid is None else grid_text(fit_params_grid), rows=True)
    if show_sql:
        return statement.shown()
    return Table(run_rows(resolve(dsn, show_sql), statement))


def extend(model_output_table: str, mst_key: int, iterations: int, *,
           dsn: str | None = None, show_sql: bool = False) -> int | ShownSql:
    """Train a configuration of a running search ``iterations`` more.

    One call of ``gpdl.extend_config``. A configuration the search still decides
    about (training, or paused at a rung) is refused: extend it once it ends.

    Returns:
        Its new budget (iterations in all).

    Example:
        >>> extend("search", 4, 3)
    """
    check_tables(model_output_table)
    statement = function_call("extend_config", model_output_table, mst_key, iterations)
    if show_sql:
        return statement.shown()
    return run_call(resolve(dsn, show_sql), statement)


def clone(model_output_table: str, mst_key: int, *, compile_params: str | None = None,
          fit_params: str | None = None, iterations: int | None = None,
          dsn: str | None = None, show_sql: bool = False) -> int | ShownSql:
    """Add a configuration to a running search, warm-started from ``mst_key``'s weights.

    One call of ``gpdl.clone_config``; the clone's optimizer state starts afresh.

    Args:
        compile_params, fit_params: the clone's (MADlib's strings); None keeps the source's.
        iterations: its budget. Defaults to the source's.

    Returns:
        The clone's ``mst_key``.

    Example:
        >>> clone("search", 4, fit_params="batch_size=32,epochs=1", iterations=6)
    """
    check_tables(model_output_table)
    statement = function_call("clone_config", model_output_table, mst_key,
                              compile_params=compile_params, fit_params=fit_params,
                              iterations=iterations)
    if show_sql:
        return statement.shown()
    return run_call(resolve(dsn, show_sql), statement)


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
    check_tables(model_output_table)
    statement = function_call("resume_job", model_output_table, background=background)
    return _job(statement, dsn, show_sql, on_notice)


def _job(statement: SqlCall, dsn: str | None, show_sql: bool,
         on_notice: Callable[[str], None] | None) -> TrainingJob | ShownSql:
    if show_sql:
        return statement.shown()
    from gpdl_backend.mop.job import TrainingJob

    url = resolve(dsn, show_sql)
    return TrainingJob.attach(url, run_call(url, statement, on_notice))


def status(model_output_table: str, *, dsn: str | None = None,
           show_sql: bool = False) -> JobReport | ShownSql:
    """A training job's state, read from its tables (any session, any time).

    One call of ``gpdl.job_status``; a job whose driver died is ``lost``.

    Returns:
        A ``JobReport`` (a ``JobStatus``: status, iterations, units, per
        configuration metrics) shown as a table.

    Raises:
        UsageError: no such job.

    Example:
        >>> status("models").status
        'running'
    """
    check_tables(model_output_table)
    call = function_call("job_status", model_output_table)
    if show_sql:
        return call.shown()
    from gpdl_backend.mop.job import JobStatus

    found = JobStatus(**run_call(resolve(dsn, show_sql), call))
    return JobReport.of(found, model_output_table)


def jobs(*, state: str | None = None, dsn: str | None = None,
         show_sql: bool = False) -> Table | ShownSql:
    """The training jobs in the database (``gpdl.jobs``), newest first.

    Args:
        state: only jobs in this state (``running``, ``lost``, ``finished``...).
            Defaults to None: all.
        dsn: the database. Defaults to None.
        show_sql: return the statement instead of running it. Defaults to False.

    Example:
        >>> jobs(state="lost")
    """
    where = "" if state is None else f" WHERE state = {literal(state)}"
    call = SqlCall(f"SELECT job, owner, state, units_done, units_total, unit_retries, "
                   f"started, ended, last_heartbeat, error FROM gpdl.jobs{where} "
                   f"ORDER BY started DESC")
    if show_sql:
        return call.shown()
    return Table(run_rows(resolve(dsn, show_sql), call),
                 columns=["job", "owner", "state", "units_done", "units_total", "unit_retries",
                          "started", "ended", "last_heartbeat", "error"])


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
    check_tables(model_output_table)
    statement = function_call("stop_job", model_output_table, mst_key=mst_key)
    if show_sql:
        return statement.shown()
    run_call(resolve(dsn, show_sql), statement)
    return None
