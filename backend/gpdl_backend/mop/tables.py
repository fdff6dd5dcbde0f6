"""The training output tables (MADlib's ``fit_multiple_model`` layout, plus progress).

- ``<out>``: ``mst_key, model_weights, model_arch`` (+ ``optimizer_state``)
- ``<out>_info``: per configuration, loss/metric arrays per evaluated iteration
  (MADlib's columns for the first metric; ``*_metrics_all`` for every metric)
- ``<out>_summary``: inputs, class values, times, ``metrics_iters``, job status
- ``<out>_progress``: one row per completed unit (hop), committed with the weights
  it produced (``metric``: the first metric, ``metrics_all``: every one); ``fold_sql``
  moves an iteration's last weights into ``<out>``
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from gpdl_backend.client import TableName
from gpdl_backend.engine import Engine

INFO = "_info"
SUMMARY = "_summary"
PROGRESS = "_progress"

# Job and configuration statuses kept in the tables.
RUNNING = "running"
FINISHED = "finished"
STOPPED = "stopped"
FAILED = "failed"
PENDING = "pending"
TRAINING = "training"
# A search's configurations also wait at a rung, or end there (AutoML).
PAUSED = "paused"
EARLY_STOPPED = "early_stopped"

SUMMARY_COLUMNS = (
    ("source_table", "text"), ("validation_table", "text"), ("model", "text"),
    ("model_info", "text"), ("dependent_varname", "text"), ("independent_varname", "text"),
    ("model_arch_table", "text"), ("model_selection_table", "text"), ("object_table", "text"),
    ("num_iterations", "integer"), ("metrics_compute_frequency", "integer"),
    ("warm_start", "boolean"), ("name", "text"), ("description", "text"),
    ("start_training_time", "timestamptz"), ("end_training_time", "timestamptz"),
    ("madlib_version", "text"), ("num_classes", "integer"), ("class_values", "text[]"),
    ("dependent_vartype", "text"), ("normalizing_const", "real"),
    ("metrics_iters", "integer[]"),
    # gpdl's own columns: what resume and the widgets need.
    ("status", "text"), ("iterations_done", "integer"), ("seed", "bigint"),
    ("use_gpus", "boolean"), ("use_caching", "boolean"), ("num_segments", "integer"),
    ("image_shape", "integer[]"), ("stop_requested", "boolean"), ("error", "text"),
)


INFO_METRICS_ALL_COLUMNS = (
    ("training_metrics_all", "double precision[]", None),
    ("training_metrics_all_history", "double precision[]", "{}"),
    ("validation_metrics_all", "double precision[]", None),
    ("validation_metrics_all_history", "double precision[]", "{}"),
)
"""gpdl's ``<out>_info`` columns for every compiled metric (MADlib's hold only the first).

``*_metrics_all``: the latest evaluated value of each metric, in ``metrics_type``
order (NULL before the first evaluation; ``{}`` for a configuration compiled
without metrics). ``*_metrics_all_history``: a two-dimensional array, one row per
evaluated iteration (the summary's ``metrics_iters``), one column per metric.
The validation columns stay NULL / empty without a validation table.
"""
PROGRESS_METRICS_ALL_COLUMN = ("metrics_all", "double precision[]", None)
"""``<out>_progress``: every metric of the hop, in compile order."""

SEARCH_INFO_COLUMNS = (
    ("metrics_iters", "integer[]", "{}"),
    ("iterations_done", "integer", "0"),
    ("budget", "integer", "0"),
    ("s", "integer", None),
    ("i", "integer", "0"),
    ("params", "json", None),
    ("hand_made", "boolean", "false"),
)
"""An AutoML search's ``<out>_info`` columns: each configuration has its own clock.

MADlib's AutoML tables have ``metrics_iters`` per model and Hyperband's bracket
``s`` and rung ``i``; gpdl adds the iterations done, the budget the search gave
(``i``'s resource), the sampled ``params`` (to replay the sampler on resume) and
``hand_made``: a person cloned or extended it, so the oracle no longer decides.
"""
SEARCH_SUMMARY_COLUMNS = (
    ("automl_method", "text", None),
    ("automl_params", "text", None),
    ("random_state", "integer", None),
    ("model_id_list", "integer[]", None),
    ("compile_params_grid", "text", None),
    ("fit_params_grid", "text", None),
    ("automl_state", "json", None),
    ("units_planned", "integer", None),
    ("requests", "jsonb", "[]"),
    ("request_results", "jsonb", "{}"),
)
"""An AutoML search's ``<out>_summary`` columns: its inputs, the oracle's state, and
the queue of a person's requests (``mop.steering``) with the driver's answers by id."""


@dataclass(frozen=True)
class OutputTables:
    """The four tables of one training job, from its output name."""

    model: TableName

    @property
    def info(self) -> TableName:
        return self.model.with_suffix(INFO)

    @property
    def summary(self) -> TableName:
        return self.model.with_suffix(SUMMARY)

    @property
    def progress(self) -> TableName:
        return self.model.with_suffix(PROGRESS)

    def all(self) -> list[TableName]:
        return [self.model, self.info, self.summary, self.progress]

    def create_sql(self, engine: Engine, search: bool = False) -> list[sql.Composable]:
        """CREATE TABLE statements for the four tables (``search``: with AutoML's columns)."""
        by_mst = engine.distributed_by("mst_key")
        summary_columns = sql.SQL(", ").join(
            [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
             for name, kind in SUMMARY_COLUMNS]
            + ([_column(*column) for column in SEARCH_SUMMARY_COLUMNS] if search else []))
        metrics_all_columns = sql.SQL("").join(
            sql.SQL(", ") + _column(*column)
            for column in INFO_METRICS_ALL_COLUMNS + (SEARCH_INFO_COLUMNS if search else ()))
        return [
            sql.SQL("CREATE TABLE {} (mst_key integer PRIMARY KEY, model_weights bytea, "
                    "model_arch json, optimizer_state bytea){}").format(
                self.model.identifier, by_mst),
            sql.SQL(
                "CREATE TABLE {} (mst_key integer PRIMARY KEY, model_id integer, "
                "compile_params text, fit_params text, model_type text, model_size "
                "double precision, metrics_elapsed_time double precision[], metrics_type "
                "text[], loss_type text, training_metrics_final double precision, "
                "training_loss_final double precision, training_metrics double precision[], "
                "training_loss double precision[], validation_metrics_final double precision, "
                "validation_loss_final double precision, validation_metrics double "
                "precision[], validation_loss double precision[], status text, "
                "stop_requested boolean NOT NULL DEFAULT false, num_params bigint{}){}"
            ).format(self.info.identifier, metrics_all_columns, by_mst),
            sql.SQL("CREATE TABLE {} ({}){}").format(
                self.summary.identifier, summary_columns, engine.distributed_replicated()),
            # A hop's row holds the weights it produced until its iteration is folded
            # into <out>: units only INSERT (no row or table lock shared with another
            # unit), on the segment that trained (distributed like the packed data).
            sql.SQL(
                "CREATE TABLE {} (iteration integer NOT NULL, mst_key integer NOT NULL, "
                "segment integer NOT NULL, __dist_key__ integer NOT NULL, "
                "hop integer NOT NULL, loss double precision, metric double precision, "
                "images integer, seconds double precision, "
                "finished_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
                "model_weights bytea, optimizer_state bytea, {}, "
                "PRIMARY KEY (iteration, mst_key, __dist_key__)){}"
            ).format(self.progress.identifier, _column(*PROGRESS_METRICS_ALL_COLUMN),
                     engine.distributed_by_key()),
        ]

    def upgrade_sql(self) -> list[sql.Composable]:
        """Add the columns a job made by an older gpdl lacks (resume runs these first)."""
        info = [sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS ").format(self.info.identifier)
                + _column(*column) for column in INFO_METRICS_ALL_COLUMNS]
        return [*info, sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS ").format(
            self.progress.identifier) + _column(*PROGRESS_METRICS_ALL_COLUMN)]

    def fold_sql(self) -> list[sql.Composable]:
        """Statements that make ``<out>`` hold the weights at the end of an iteration.

        Parameters: ``iteration`` (0-based), ``last_hop`` (segments - 1) and
        ``msts``, the configurations still training. Only those are folded: a
        configuration stopped in this iteration keeps the weights it had, the
        ones last evaluated, even when its unit in flight at the stop finished
        the iteration's last hop. Then the iteration's hop weights are cleared.
        Running it twice changes nothing.
        """
        return [
            sql.SQL(
                "UPDATE {out} o SET model_weights = h.model_weights, "
                "optimizer_state = h.optimizer_state FROM {progress} h "
                "WHERE h.mst_key = o.mst_key AND o.mst_key = ANY(%(msts)s::int[]) "
                "AND h.iteration = %(iteration)s "
                "AND h.hop = %(last_hop)s AND h.model_weights IS NOT NULL").format(
                out=self.model.identifier, progress=self.progress.identifier),
            sql.SQL(
                "UPDATE {} SET model_weights = NULL, optimizer_state = NULL "
                "WHERE iteration = %(iteration)s AND model_weights IS NOT NULL").format(
                self.progress.identifier),
        ]

    def fold_config_sql(self) -> sql.Composable:
        """Make ``<out>`` hold one configuration's weights at the end of its iteration.

        Parameters: ``mst``, ``iteration`` (0-based), ``last_hop``. Idempotent. The
        hop weights stay (a search clears them at its end with
        ``clear_hops_sql``): on Greenplum an UPDATE of ``_progress`` would lock
        out the units that insert into it meanwhile.
        """
        return sql.SQL(
            "UPDATE {out} o SET model_weights = h.model_weights, "
            "optimizer_state = h.optimizer_state FROM {progress} h "
            "WHERE o.mst_key = %(mst)s AND h.mst_key = o.mst_key "
            "AND h.iteration = %(iteration)s AND h.hop = %(last_hop)s "
            "AND h.model_weights IS NOT NULL").format(
            out=self.model.identifier, progress=self.progress.identifier)

    def clear_hops_sql(self) -> sql.Composable:
        """Drop every hop's weights (all are folded): a finished search keeps only ``<out>``."""
        return sql.SQL("UPDATE {} SET model_weights = NULL, optimizer_state = NULL "
                       "WHERE model_weights IS NOT NULL").format(self.progress.identifier)

    def drop_sql(self) -> sql.Composable:
        return sql.SQL("DROP TABLE IF EXISTS {}").format(
            sql.SQL(", ").join(t.identifier for t in self.all()))


def is_search(cur, output: OutputTables) -> bool:
    """Whether a job's tables are a search's (its summary has ``automl_method``)."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = 'automl_method' AND NOT attisdropped)",
                (output.summary.identifier.as_string(cur),))
    return bool(cur.fetchone()[0])


def _column(name: str, kind: str, default: str | None) -> sql.Composable:
    """A column definition: ``name kind [NOT NULL DEFAULT default]``."""
    not_null = sql.SQL(" NOT NULL DEFAULT {}").format(sql.Literal(default)) \
        if default is not None else sql.SQL("")
    return sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) + not_null
