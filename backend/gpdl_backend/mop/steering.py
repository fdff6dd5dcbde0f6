"""A person steers a running search: extend a configuration, clone one warm-started.

Any session may ask (``gpdl.extend_config``, ``gpdl.clone_config``, the magics,
the API): the request is checked here first, then queued in the search's
``_summary.requests`` and applied by the search's driver between units
(``SearchDriver``), which writes the outcome to ``_summary.request_results``;
the asking call waits for it. Configurations a person made or extended are
*hand-made*: the oracle no longer decides for them, they train to the budget
given and end ``finished``.

Rules (``extend_problem``): a configuration the search still decides about
(training or paused at a rung) cannot be extended, as that would change what
its rung compares; once it ended (finished or early-stopped), or if it is
hand-made, it can. A clone starts from the source's latest folded weights
(``<out>``) with its optimizer state reset (its hyperparameters may differ).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from psycopg2 import sql

from gpdl_backend.client import session, table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.mop import tables

__all__ = ["EXTENDABLE", "clone_config", "extend_config", "extend_problem"]

EXTENDABLE = (tables.FINISHED, tables.EARLY_STOPPED)
"""Statuses of a search's configuration that a person may extend (besides hand-made ones)."""
ANSWER_SECONDS = 120.0
"""How long a request waits for the driver's answer (it applies them between units)."""


def extend_problem(mst: int, status: str, hand_made: bool) -> str | None:
    """Why configuration ``mst`` cannot be extended now (None: it can)."""
    if status == tables.FAILED:
        return f"mst_key {mst} failed; clone it with other hyperparameters instead"
    if status == tables.STOPPED:
        return f"mst_key {mst} was stopped; clone it to train on from its weights"
    if hand_made or status in EXTENDABLE:
        return None
    return (f"mst_key {mst} is still in the search ({status}); extend it once it ends, "
            "or clone it")


def extend_config(dsn: str, model_output_table: str, mst_key: int, iterations: int) -> int:
    """Train configuration ``mst_key`` of a running search ``iterations`` more.

    Returns:
        Its new budget (iterations it trains in all).

    Raises:
        UsageError: not a running search, no such configuration, one the search
            still decides about, or ``iterations`` below 1.
    """
    _check_count("iterations", iterations)
    output = tables.OutputTables(table_name(model_output_table))
    with session(dsn) as conn, conn.cursor() as cur:
        _check_running_search(cur, output)
        status, hand_made = _config_row(cur, output, mst_key, "status, hand_made")
        problem = extend_problem(mst_key, status, hand_made)
        if problem:
            raise UsageError(problem)
    return _ask(dsn, output, dict(kind="extend", mst_key=mst_key, iterations=iterations))


def clone_config(dsn: str, model_output_table: str, mst_key: int,
                 compile_params: str | None = None, fit_params: str | None = None,
                 iterations: int | None = None) -> int:
    """Add a configuration to a running search: ``mst_key``'s weights, other hyperparameters.

    Args:
        compile_params, fit_params: the clone's; None keeps the source's.
        iterations: the clone's budget. Defaults to the source's.

    Returns:
        The clone's ``mst_key``.

    Raises:
        UsageError: not a running search, no such configuration, parameters Keras
            refuses for its model, or ``iterations`` below 1.
    """
    from gpdl_backend.mop.job import config_problem  # imports TensorFlow's side lazily

    if iterations is not None:
        _check_count("iterations", iterations)
    output = tables.OutputTables(table_name(model_output_table))
    with session(dsn) as conn, conn.cursor() as cur:
        _check_running_search(cur, output)
        source_compile, source_fit, budget = _config_row(
            cur, output, mst_key, "compile_params, fit_params, budget")
        cur.execute(sql.SQL("SELECT model_arch::text, model_weights FROM {} "
                            "WHERE mst_key = %s").format(output.model.identifier), (mst_key,))
        arch, weights = cur.fetchone()
        cur.execute(sql.SQL("SELECT image_shape, num_classes FROM {}")
                    .format(output.summary.identifier))
        shape, classes = cur.fetchone()
        compile_params = compile_params or source_compile
        fit_params = fit_params or source_fit
        _, problem = config_problem(cur, arch, compile_params, fit_params, list(shape),
                                    int(classes), bytes(weights), "cloned weights")
        if problem:
            raise UsageError(f"cannot clone mst_key {mst_key}: {problem}")
    return _ask(dsn, output, dict(kind="clone", mst_key=mst_key, compile_params=compile_params,
                                  fit_params=fit_params, iterations=iterations or budget))


# --- the queue ------------------------------------------------------------------------
def _ask(dsn: str, output: tables.OutputTables, request: dict[str, Any]) -> int:
    """Queue a request and wait for the driver's answer (its ``value``)."""
    request["id"] = secrets.token_hex(8)
    summary = output.summary.identifier
    with session(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET requests = requests || %s::jsonb").format(summary),
                    (json.dumps([request]),))
    deadline = time.monotonic() + ANSWER_SECONDS
    with session(dsn) as conn, conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(sql.SQL("SELECT request_results -> %s, status FROM {}").format(summary),
                        (request["id"],))
            answer, status = cur.fetchone()
            if answer is not None:
                if "error" in answer:
                    raise UsageError(answer["error"])
                return int(answer["value"])
            if status != tables.RUNNING:
                break
            time.sleep(0.25)
    raise UsageError(f"the search {output.model} did not apply the {request['kind']} request "
                     f"(it is {status}); it stays queued and applies when the search resumes")


def _check_running_search(cur, output: tables.OutputTables) -> None:
    from gpdl_backend.client import table_exists

    if not table_exists(cur, output.summary):
        raise UsageError(f"no training job {output.model}")
    if not tables.is_search(cur, output):
        raise UsageError(f"{output.model} is a fit, not a search: extend and clone steer "
                         "searches (gpdl.madlib_keras_automl); warm-start a new fit instead")
    cur.execute(sql.SQL("SELECT status FROM {}").format(output.summary.identifier))
    status = cur.fetchone()[0]
    if status != tables.RUNNING:
        raise UsageError(f"the search {output.model} is {status}, not running; resume it "
                         "first (gpdl.resume_job)")


def _config_row(cur, output: tables.OutputTables, mst_key: int, columns: str) -> tuple:
    if isinstance(mst_key, bool) or not isinstance(mst_key, int):
        raise UsageError(f"mst_key must be an integer, got {mst_key!r}")
    cur.execute(sql.SQL("SELECT {} FROM {} WHERE mst_key = %s").format(
        sql.SQL(columns), output.info.identifier), (mst_key,))
    row = cur.fetchone()
    if row is None:
        raise UsageError(f"job {output.model} has no mst_key {mst_key}")
    return row


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
