"""``show_sql`` texts: what each API call would run, built from the backend's own SQL.

Each ``*_plan`` function takes the arguments of the API function of the same
name and returns a :class:`~gpdl_jupyter.sqltext.ShownSql` without doing the
work: the statements come from the backend's SQL-building helpers where they
exist, so the text is what runs; steps the backend composes inline are
described in comments. Names are checked as the real call checks them, so a
bad table name fails here too. The only database access is a read-only probe
of the server kind and segments (skipped when the server is unreachable).

Example::

    print(load_images_plan(dsn, "/data/train", "train_images"))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql

from gpdl_backend import predict, selection
from gpdl_backend.client import TableName, table_name
from gpdl_backend.images import loader
from gpdl_backend.mop import tables
from gpdl_backend.preprocess import _pack_sql, _packed_ddl, _shuffle_sql
from gpdl_jupyter.connection import mask_password
from gpdl_jupyter.sqltext import Param, ShownSql, engine_for, literal, shown

__all__ = [
    "connect_plan",
    "gpu_usage_plan",
    "load_images_plan",
    "load_model_plan",
    "predict_image_plan",
    "predict_plan",
    "preprocess_plan",
    "select_models_plan",
    "status_plan",
]


def call_text(function: str, dsn: str, *args: Any, **kwargs: Any) -> str:
    """A comment line naming the driver call, its DSN masked."""
    shown_args = [repr(mask_password(dsn))] + [repr(a) for a in args]
    shown_args += [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"-- {function}({', '.join(shown_args)})"


def connect_plan(dsn: str) -> ShownSql:
    """What ``connect`` runs: a read-only probe of the server."""
    return shown([
        f"-- connect to {mask_password(dsn)} and describe the server (read-only)",
        "SELECT version();",
        "SELECT gpdl.version();",
    ])


def load_images_plan(dsn: str, location: str, table: str, *, batch_size: int, server: str | None,
                     resize: tuple[int, int] | None, color_mode: str, int_pixels: bool,
                     if_exists: str, num_segments: int | None, threads: int) -> ShownSql:
    """What ``load_images`` runs (``gpdl_backend.images.loader``)."""
    target = table_name(table)
    engine, note = engine_for(dsn, num_segments)
    staging = TableName(target.schema, f"{loader.STAGING_PREFIX}<random>")
    errors = staging.with_suffix("_errors")
    read_args = loader._read_args(location, dict(
        batch_size=batch_size, server=server, resize=list(resize) if resize else None,
        color_mode=color_mode, int_pixels=int_pixels, threads=threads))
    reads = engine.read_images_statements(staging.identifier, read_args)
    sessions = engine.sessions_note(len(reads), "one per virtual segment")
    publish = (f"INSERT INTO {target} ... SELECT ... FROM the staging tables"
               if if_exists == "append" else
               f"DROP TABLE IF EXISTS {target}, {target}_errors; rename the staging "
               f"tables to {target} and {target}_errors")
    lines: list[str | sql.Composable] = [
        call_text("gpdl_backend.images.loader.load_images", dsn, location, table,
                  batch_size=batch_size, server=server, resize=resize, color_mode=color_mode,
                  int_pixels=int_pixels, if_exists=if_exists, threads=threads),
        note,
        f"-- if_exists={if_exists!r}: "
        + ("fails if the table exists" if if_exists == "fail" else "checked before any work"),
        sql.SQL("SELECT gpdl.count_files({}, {})").format(
            sql.Literal(location), sql.Literal(server)),
        "-- a staging table; the target appears complete at the end, in one transaction",
        *loader.image_table_ddl(staging.identifier, engine, staging=True),
        loader.errors_table_ddl(errors.identifier, engine),
        f"-- the segments read their share of the files in parallel ({sessions}):",
        *reads,
        f"-- then the failed files (error_paths, error_reasons) move to {errors}, rows "
        "without images are deleted and the two error columns dropped; image sizes are "
        "checked",
        f"-- publish, in one transaction: {publish}",
    ]
    return shown(lines)


def preprocess_plan(dsn: str, source_table: str, output_table: str, *,
                    validation_of: str | None, buffer_size: int | None,
                    normalizing_const: float, num_segments: int | None, seed: int,
                    if_exists: str) -> ShownSql:
    """What ``training_preprocessor`` / ``validation_preprocessor`` run."""
    source, output = table_name(source_table), table_name(output_table)
    engine, note = engine_for(dsn, num_segments)
    shuffled = sql.Identifier("gpdl_pack_<random>")
    shape = [Param("height"), Param("width"), Param("channels")]
    size = buffer_size if buffer_size is not None else Param("buffer_size")
    if validation_of is None:
        call = call_text("gpdl_backend.preprocess.training_preprocessor", dsn, source_table,
                         output_table, buffer_size=buffer_size,
                         normalizing_const=normalizing_const, seed=seed, if_exists=if_exists)
        classes = f":class_values = the distinct labels of {source}, sorted"
    else:
        training = table_name(validation_of)
        call = call_text("gpdl_backend.preprocess.validation_preprocessor", dsn, source_table,
                         output_table, validation_of, buffer_size=buffer_size, seed=seed,
                         if_exists=if_exists)
        classes = (f":class_values = those of {training}_summary (labels it has not "
                   "seen are refused)")
    sizing = "" if buffer_size is not None else \
        ", :buffer_size = an even share per segment, at most 32 MB a buffer"
    return shown([
        call,
        note,
        f"-- reads first: :height, :width, :channels of the images in {source}, {classes}"
        + sizing,
        _shuffle_sql(engine, source, shuffled, Param("class_values"), seed),  # type: ignore[arg-type]
        *_packed_ddl(engine, output),
        _pack_sql(engine, output, shuffled, size, shape),  # type: ignore[arg-type]
        sql.SQL("DROP TABLE {}").format(shuffled),
        f"-- then CREATE TABLE {output}_summary and one row of settings; all in one "
        "transaction",
    ])


def load_model_plan(dsn: str, model_arch_table: str, model_arch: str, *, name: str | None,
                    description: str | None, model_id: int | None,
                    has_weights: bool) -> ShownSql:
    """What ``load_keras_model`` runs (``gpdl_backend.model_tables``)."""
    table = table_name(model_arch_table)
    columns = ["model_arch", "model_weights", "name", "description", "__internal_madlib_id__"]
    values = [":model_arch", ":model_weights" if has_weights else "NULL", literal(name),
              literal(description), "'__gpdl_<random>__'"]
    if model_id is not None:
        columns.insert(0, "model_id")
        values.insert(0, literal(model_id))
    return shown([
        call_text("gpdl_backend.model_tables.load_keras_model", dsn, model_arch_table,
                  "<model_arch>", name=name, description=description, model_id=model_id),
        f"-- :model_arch = the model's JSON ({len(model_arch)} characters)",
        "SELECT gpdl.model_info(:model_arch::json);  -- Keras builds it in the server: the check",
        f"-- creates {table} (model_id SERIAL PRIMARY KEY, model_arch JSON, model_weights "
        "BYTEA, name TEXT, description TEXT, __internal_madlib_id__ TEXT) when missing",
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING model_id").format(
            table.identifier, sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ".join(values))),
    ])


def select_models_plan(dsn: str, model_selection_table: str, model_arch_table: str,
                       model_ids: Sequence[int], *, compile_params: Any, fit_params: Any,
                       lists: bool, search_type: str, num_configs: int | None,
                       random_state: int | None, if_exists: str) -> ShownSql:
    """What ``generate_model_configs`` (grids) / ``load_model_selection_table`` (lists) write."""
    target, arch = table_name(model_selection_table), table_name(model_arch_table)
    if lists:
        configs = selection.load_model_selection(model_ids, compile_params, fit_params)
        call = call_text("gpdl_backend.model_tables.load_model_selection_table", dsn,
                         model_arch_table, model_selection_table, list(model_ids),
                         if_exists=if_exists)
        how = "explicit lists (cross product)"
    else:
        configs = selection.generate_model_configs(
            model_ids, compile_params, fit_params, search_type=search_type,
            num_configs=num_configs, random_state=random_state)
        call = call_text("gpdl_backend.model_tables.generate_model_configs", dsn,
                         model_arch_table, model_selection_table, list(model_ids),
                         search_type=search_type, num_configs=num_configs,
                         random_state=random_state, if_exists=if_exists)
        how = f"{search_type} search"
    existing = {
        "fail": "fails if it exists",
        "replace": "drops it first if it exists",
        "append": "if it exists, keys continue after its last mst_key and configurations "
                  "already there are skipped",
    }.get(if_exists, "")
    insert = sql.SQL(
        "INSERT INTO {} (mst_key, model_id, compile_params, fit_params) VALUES ({}, {}, {}, {})")
    return shown([
        call,
        f"-- {len(configs)} configurations by {how}; checks that model ids "
        f"{sorted({c.model_id for c in configs})} are in {arch}",
        f"-- {target}: {existing}; otherwise creates {target} (mst_key SERIAL PRIMARY KEY, "
        f"model_id INTEGER, compile_params TEXT, fit_params TEXT) and {target}_summary "
        f"(model_arch_table = {str(arch)!r})",
        *(insert.format(target.identifier, sql.Literal(c.mst_key), sql.Literal(c.model_id),
                        sql.Literal(c.compile_params), sql.Literal(c.fit_params))
          for c in configs),
    ])


def status_plan(dsn: str, model_output_table: str) -> ShownSql:
    """What ``status`` reads."""
    output = tables.OutputTables(table_name(model_output_table))
    return shown([
        call_text("gpdl_backend.mop.job.TrainingJob.attach", dsn, model_output_table)
        + ".status()",
        sql.SQL("SELECT status, iterations_done, num_iterations, error, num_segments "
                "FROM {}").format(output.summary.identifier),
        sql.SQL("SELECT count(*) FROM {}").format(output.progress.identifier),
        f"-- and per configuration: parameters, status and final metrics from {output.info}, "
        f"units done from {output.progress}",
    ])


def predict_plan(dsn: str, model_table: str, test_table: str, output_table: str, *,
                 pred_type: str | int | float, mst_key: int | None, id_col: str,
                 if_exists: str, num_segments: int | None) -> ShownSql:
    """What ``predict`` runs (``gpdl_backend.predict``)."""
    model, test, target = (table_name(model_table), table_name(test_table),
                           table_name(output_table))
    kind, k, threshold = predict.parse_pred_type(pred_type)
    engine, note = engine_for(dsn, num_segments)
    staging = TableName(target.schema, f"{predict.STAGING_PREFIX}<random>")
    key = mst_key if mst_key is not None else Param("mst_key")
    statements = [
        predict._predict_statement(staging, model, test, id_col, key, kind, k,  # type: ignore[arg-type]
                                   threshold, share)
        for share in engine.row_shares(sql.SQL("t.{}[1]::text").format(sql.Identifier(id_col)))
    ]
    sessions = engine.sessions_note(len(statements), "each a hash share of the rows")
    publish = "fails if it exists" if if_exists == "fail" else "replaced if it exists"
    return shown([
        call_text("gpdl_backend.predict.predict", dsn, model_table, test_table, output_table,
                  pred_type=pred_type, mst_key=mst_key, id_col=id_col, if_exists=if_exists),
        note,
        f"-- checks {model}, {model}_summary and {test}"
        + ("" if mst_key is not None else f"; :mst_key = the only configuration in {model}"),
        f"-- a staging table {staging} (id, class_name, class_value, prob, rank), then "
        f"the segments predict their own rows ({sessions}):",
        *statements,
        f"-- publish, in one transaction: the staging table becomes {target} ({publish})",
    ])


def predict_image_plan(dsn: str, model_table: str, mst_key: int | None,
                       image_bytes: int | None, k: int) -> ShownSql:
    """What ``predict_image`` runs (``image_bytes``: None for the widget's choice)."""
    model = table_name(model_table)
    size = "the" if image_bytes is None else f"the {image_bytes}"
    return shown([
        call_text("gpdl_backend.predict.predict_image", dsn, model_table, mst_key,
                  "<image>", k=k),
        f"-- :image = {size} bytes of the image (PNG or JPEG), decoded and resized in "
        "the server",
        sql.SQL("SELECT class_name, class_value, prob, rank "
                "FROM gpdl.predict_image({}, {}, :image, {}) ORDER BY rank").format(
            sql.Literal(str(model)), sql.Literal(mst_key), sql.Literal(k)),
    ])


def gpu_usage_plan(dsn: str) -> ShownSql:
    """What ``gpu_usage`` reads."""
    from gpdl_backend.gpu_monitor import usage_call

    engine, _ = engine_for(dsn, 1)
    return shown([
        call_text("gpdl_backend.gpu_monitor.gpu_usage", dsn),
        "-- the gpdl sessions' server processes, listed on the coordinator:",
        engine.session_backends(),
        "-- GPU (or CPU) use of every database host, each server instance naming its own "
        "backends; :backend_pids, :backend_names = the rows above; rows of one host merged",
        engine.rows_on_every_host(usage_call(sql.SQL(":backend_pids"),
                                             sql.SQL(":backend_names"))),
    ])
