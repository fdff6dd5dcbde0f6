"""``madlib_keras_automl``: check a search and create its tables; read it back to resume.

A search is a MOP job whose configurations are not known up front: the oracle
(``gpdl_backend.automl.oracles``) asks for new ones, which the sampler draws
from the search space, and raises or ends each one's budget. Its tables are a
job's (``mop.tables``) with the search's columns, and MADlib's output model
selection table, written as configurations are made. Everything the driver
needs to continue after a crash is in the tables: each configuration's clock in
``_info``, the oracle's state in ``_summary``, the units in ``_progress``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from psycopg2 import sql

from gpdl_backend.automl.params import AutomlParams, format_automl_params, parse_automl_params
from gpdl_backend.automl.space import SearchSpace
from gpdl_backend.client import TableName, check_writable, session, table_exists, table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.model_tables import check_arch_table, check_model_ids, create_selection_tables
from gpdl_backend.mop import tables
from gpdl_backend.mop.driver import JobPlan
from gpdl_backend.mop.job import (
    _check_gpus,
    _plan_from_tables,
    check_sources,
    config_problem,
    insert_row,
    summary_row,
)
from gpdl_backend.mop.scheduler import Unit

__all__ = ["SearchPlan", "Track", "plan_search", "read_search"]


@dataclass(frozen=True)
class Track:
    """One configuration of a search as its ``_info`` row records it."""

    mst_key: int
    model_id: int
    iterations_done: int
    budget: int
    status: str
    bracket: int | None
    rung: int
    params: dict
    loss: float | None  # the loss the search ranks by, at its last evaluation
    hand_made: bool = False  # cloned or extended by a person: the oracle does not decide


@dataclass(frozen=True)
class SearchPlan:
    """What a search's driver needs besides a job's plan."""

    params: AutomlParams
    space: SearchSpace
    seed: int
    arch_table: TableName
    selection_table: TableName
    oracle_state: dict | None
    tracks: list[Track]
    every: int | None  # metrics_compute_frequency as given (None: at budgets only)


def plan_search(
    dsn: str,
    source_table: str,
    model_output_table: str,
    model_arch_table: str,
    model_selection_table: str,
    model_id_list: list[int],
    compile_params_grid: str,
    fit_params_grid: str,
    automl_method: str | None = "hyperband",
    automl_params: str | None = None,
    random_state: int | None = None,
    object_table: str | None = None,
    use_gpus: bool = False,
    validation_table: str | None = None,
    metrics_compute_frequency: int | None = None,
    name: str | None = None,
    description: str | None = None,
    use_caching: bool = True,
    num_segments: int | None = None,
) -> JobPlan:
    """Check a new search and create its tables; the plan its driver runs.

    Arguments as MADlib's ``madlib_keras_automl`` (``automl_method``: ``hyperband``,
    ``hyperopt`` or gpdl's ``asha``); ``use_caching`` and ``num_segments`` as
    ``fit_multiple_model``'s. Nothing is created when a check fails.

    Raises:
        UsageError: a bad table, method, parameter, grid or model.
    """
    params = parse_automl_params(automl_method, automl_params)
    space = SearchSpace.from_grids(model_id_list, compile_params_grid, fit_params_grid)
    if metrics_compute_frequency is not None and (
            isinstance(metrics_compute_frequency, bool)
            or not isinstance(metrics_compute_frequency, int) or metrics_compute_frequency < 1):
        raise UsageError(f"metrics_compute_frequency must be a positive integer, not "
                         f"{metrics_compute_frequency!r}")
    output = tables.OutputTables(table_name(model_output_table))
    source, arch = table_name(source_table), table_name(model_arch_table)
    selection = table_name(model_selection_table)
    validation = table_name(validation_table) if validation_table is not None else None
    objects = str(table_name(object_table)) if object_table is not None else None
    seed = 0 if random_state is None else int(random_state)
    with session(dsn) as conn:
        packed, engine = check_sources(conn, source, validation, num_segments)
        with conn.cursor() as cur:
            check_arch_table(cur, arch)
            check_model_ids(cur, arch, sorted(set(model_id_list)))
            check_writable(cur, output.model)
            check_writable(cur, selection)
            for table in [*output.all(), selection, selection.with_suffix("_summary")]:
                if table_exists(cur, table):
                    raise UsageError(f"table {table} already exists: a search makes its "
                                     "output and model selection tables; drop it first")
            if use_gpus:
                _check_gpus(cur, engine)
            _check_models(cur, arch, sorted(set(model_id_list)), space, seed, packed)
            create_selection_tables(cur, engine, selection, selection.with_suffix("_summary"),
                                    arch, objects)
            for statement in output.create_sql(engine, search=True):
                cur.execute(statement)
            insert_row(cur, output.summary, summary_row(
                output, source, validation, packed, engine, model_arch_table=str(arch),
                model_selection_table=str(selection), object_table=objects,
                num_iterations=params.R if params.method != "hyperopt" else params.num_iterations,
                metrics_compute_frequency=metrics_compute_frequency, warm_start=False,
                name=name, description=description, seed=seed, use_gpus=use_gpus,
                use_caching=use_caching, automl_method=params.method,
                automl_params=format_automl_params(params), random_state=random_state,
                model_id_list=list(model_id_list), compile_params_grid=compile_params_grid,
                fit_params_grid=fit_params_grid))
            plan = _plan_from_tables(cur, dsn, output, engine)
            plan = read_search(cur, plan)
        conn.commit()
    return plan


def read_search(cur, plan: JobPlan) -> JobPlan:
    """``plan`` with the search's part and each configuration's own clock (new or resumed)."""
    output = plan.output
    cur.execute(sql.SQL(
        "SELECT automl_method, automl_params, seed, model_arch_table, model_selection_table, "
        "automl_state, model_id_list, compile_params_grid, fit_params_grid, "
        "metrics_compute_frequency, num_iterations FROM {}").format(output.summary.identifier))
    (method, text, seed, arch, selection, state, model_ids, compile_grid, fit_grid,
     every, _) = cur.fetchone()
    params = parse_automl_params(method, text)
    cur.execute(sql.SQL(
        "SELECT mst_key, model_id, iterations_done, budget, status, s, i, params, "
        "CASE WHEN validation_loss_final IS NOT NULL THEN validation_loss_final "
        "ELSE training_loss_final END, hand_made FROM {} ORDER BY mst_key").format(
        output.info.identifier))
    tracks = [Track(mst, model_id, done, budget, status, bracket, rung,
                    _json(trial_params) or {}, loss, hand_made)
              for mst, model_id, done, budget, status, bracket, rung, trial_params, loss,
              hand_made in cur.fetchall()]
    # Each configuration's units of the iteration it is in, in hop order.
    cur.execute(sql.SQL(
        "SELECT p.mst_key, p.segment FROM {} p JOIN {} i ON i.mst_key = p.mst_key "
        "AND p.iteration = i.iterations_done ORDER BY p.mst_key, p.hop").format(
        output.progress.identifier, output.info.identifier))
    by_key = {t.mst_key: t for t in tracks}
    completed = [Unit(by_key[mst].iterations_done, mst, segment)
                 for mst, segment in cur.fetchall()]
    ended = (tables.STOPPED, tables.EARLY_STOPPED, tables.FAILED, tables.FINISHED)
    plan.completed = completed
    plan.stopped = [t.mst_key for t in tracks if t.status in ended]
    plan.search = SearchPlan(
        params=params, space=SearchSpace.from_grids(list(model_ids), compile_grid, fit_grid),
        seed=int(seed), arch_table=table_name(arch), selection_table=table_name(selection),
        oracle_state=_json(state), tracks=tracks, every=every)
    return plan


def _check_models(cur, arch: TableName, model_ids: list[int], space: SearchSpace, seed: int,
                  packed: dict) -> None:
    """Build and compile every architecture with a sampled configuration, in the server.

    Catches what no later configuration can fix (an architecture that does not
    fit the images or classes) before any table exists; a sampled value Keras
    refuses later fails that configuration alone.
    """
    from gpdl_backend.automl.space import Sampler

    cur.execute(sql.SQL("SELECT model_id, model_arch::text FROM {} WHERE model_id = ANY(%s)")
                .format(arch.identifier), (model_ids,))
    archs = dict(cur.fetchall())
    sampler = Sampler(space, "rand", seed)
    for model_id in model_ids:
        trial = sampler.ask()
        _, problem = config_problem(cur, archs[model_id], trial.compile_params,
                                    trial.fit_params, list(packed["image_shape"]),
                                    int(packed["num_classes"]), None, "initial weights")
        if problem:
            raise UsageError(f"model_id {model_id} ({trial.compile_params}; "
                             f"{trial.fit_params}): {problem}")


def _json(value: object) -> dict | None:
    if value is None or isinstance(value, dict):
        return value
    return json.loads(value)
