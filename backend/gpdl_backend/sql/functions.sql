-- gpdl's SQL functions: thin wrappers over gpdl_backend, installed by `gpdl install`.
-- The prelude marker in each body is replaced at install time by code that puts the recorded
-- site-packages and backend paths on the server Python's sys.path (once per
-- backend process) and records the install settings in GD.

CREATE FUNCTION gpdl.version() RETURNS text AS $$
#PRELUDE
import gpdl_backend
return gpdl_backend.__version__
$$ LANGUAGE plpython3u;

CREATE FUNCTION gpdl.server_info(with_tensorflow boolean DEFAULT true) RETURNS json AS $$
#PRELUDE
import json
from gpdl_backend.server import info
return json.dumps(info.collect(with_tensorflow))
$$ LANGUAGE plpython3u;

CREATE FUNCTION gpdl.count_files(location text, server text DEFAULT NULL) RETURNS bigint AS $$
#PRELUDE
from gpdl_backend.server import bridge
return bridge.count_files(plpy, GD, location, server)
$$ LANGUAGE plpython3u;

CREATE FUNCTION gpdl.read_images(
    location text,
    batch_size integer DEFAULT 500,
    server text DEFAULT NULL,
    resize integer[] DEFAULT NULL,
    color_mode text DEFAULT 'RGB',
    int_pixels boolean DEFAULT false,
    segment integer DEFAULT NULL,
    num_segments integer DEFAULT NULL,
    progress boolean DEFAULT false,
    threads integer DEFAULT 8
) RETURNS TABLE (
    fullpaths text[], names text[], y text[], dims integer[], x bytea, pixels integer[],
    error_paths text[], error_reasons text[]
) AS $$
#PRELUDE
from gpdl_backend.server import bridge
return bridge.read_images(
    plpy, GD, location, batch_size=batch_size, server=server, resize=resize,
    color_mode=color_mode, int_pixels=int_pixels, segment=segment,
    num_segments=num_segments, progress=progress, threads=threads,
)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.split_images(x bytea, dims integer[], y text[], fullpaths text[])
RETURNS TABLE (fullpath text, label text, pixels bytea) AS $$
#PRELUDE
from gpdl_backend.server import split
return split.split_images(x, dims, y, fullpaths)
$$ LANGUAGE plpython3u IMMUTABLE;

-- ---------------------------------------------------------------- models
CREATE FUNCTION gpdl.model_info(model_arch json) RETURNS json AS $$
#PRELUDE
import json
from gpdl_backend import keras_model
return json.dumps(keras_model.describe(keras_model.build_model(model_arch)))
$$ LANGUAGE plpython3u;

CREATE FUNCTION gpdl.check_config(
    model_arch json, compile_params text, fit_params text, image_shape integer[],
    num_classes integer
) RETURNS text AS $$
#PRELUDE
from gpdl_backend.server import worker
return worker.check_config(model_arch, compile_params, fit_params, image_shape, num_classes)
$$ LANGUAGE plpython3u;

CREATE FUNCTION gpdl.init_weights(model_arch json, compile_params text, seed integer)
RETURNS bytea AS $$
#PRELUDE
from gpdl_backend.server import worker
return worker.init_weights(GD, model_arch, compile_params, seed)
$$ LANGUAGE plpython3u;

-- ---------------------------------------------------------------- training
-- A unit's metric is the first compiled metric (MADlib's one); metrics holds every
-- compiled metric, in the order of the compile parameters.
CREATE FUNCTION gpdl.train_unit(
    token text, cache_key text, buffer_id integer, num_buffers integer,
    x bytea, y bytea, x_shape integer[], model_arch json, compile_params text,
    fit_params text, weights bytea, optimizer_state bytea, num_classes integer,
    normalizing_const real, seed bigint, threads integer, use_gpus boolean,
    segment integer, use_caching boolean
) RETURNS TABLE (
    weights bytea, optimizer_state bytea, loss double precision,
    metric double precision, images integer, seconds double precision,
    metrics double precision[]
) AS $$
#PRELUDE
from gpdl_backend.server import worker
return worker.train_unit(
    GD, token, cache_key, buffer_id, num_buffers, x, y, x_shape, model_arch,
    compile_params, fit_params, weights, optimizer_state, num_classes,
    normalizing_const, seed, threads, use_gpus, segment, use_caching)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.evaluate_unit(
    token text, cache_key text, buffer_id integer, num_buffers integer,
    x bytea, y bytea, x_shape integer[], model_arch json, compile_params text,
    weights bytea, num_classes integer, normalizing_const real, threads integer,
    use_gpus boolean, segment integer, use_caching boolean
) RETURNS TABLE (
    loss double precision, metric double precision, images integer,
    seconds double precision, metrics double precision[]
) AS $$
#PRELUDE
from gpdl_backend.server import worker
return worker.evaluate_unit(
    GD, token, cache_key, buffer_id, num_buffers, x, y, x_shape, model_arch,
    compile_params, weights, num_classes, normalizing_const, threads, use_gpus,
    segment, use_caching)
$$ LANGUAGE plpython3u VOLATILE;

-- ---------------------------------------------------------------- prediction
CREATE FUNCTION gpdl.predict_rows(
    ids text[], x bytea, dims integer[], model_arch json, weights bytea,
    compile_params text, normalizing_const real, class_values text[], pred_type text,
    k integer, threshold double precision
) RETURNS TABLE (
    id text, class_name text, class_value integer, prob double precision, rank integer
) AS $$
#PRELUDE
from gpdl_backend.server import inference
return inference.predict_rows(
    GD, ids, x, dims, model_arch, weights, compile_params, normalizing_const,
    class_values, pred_type, k, threshold)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.predict_image(
    model_table text, mst_key integer, image bytea, k integer DEFAULT 3
) RETURNS TABLE (class_name text, class_value integer, prob double precision, rank integer)
AS $$
#PRELUDE
from gpdl_backend.server import inference
return inference.predict_image(plpy, GD, model_table, mst_key, image, k)
$$ LANGUAGE plpython3u VOLATILE;

-- ---------------------------------------------------------------- GPUs
CREATE FUNCTION gpdl.gpu_configuration() RETURNS TABLE (
    host text, device integer, name text, memory_total_mb double precision, driver text
) AS $$
#PRELUDE
from gpdl_backend.server import gpu
return gpu.gpu_configuration(GD)
$$ LANGUAGE plpython3u VOLATILE;

-- The caller names the gpdl sessions' server processes (backend_pids, backend_names),
-- listed on the coordinator: a function running on a Greenplum segment cannot
-- query pg_stat_activity. Each server instance keeps its own backends (children of
-- its postmaster): a pid of another host may name an unrelated process here.
CREATE FUNCTION gpdl.gpu_usage(
    backend_pids integer[] DEFAULT '{}', backend_names text[] DEFAULT '{}'
) RETURNS TABLE (
    host text, kind text, device text, utilization double precision,
    memory_used_mb double precision, memory_total_mb double precision, pids integer[],
    sessions text[]
) AS $$
#PRELUDE
import os
from gpdl_backend.server import gpu
return gpu.gpu_usage(GD, zip(backend_pids or [], backend_names or []), parent=os.getppid())
$$ LANGUAGE plpython3u VOLATILE;

-- ================================================================ the SQL API
-- MADlib's deep-learning functions, with MADlib's names, argument order and defaults;
-- gpdl's own options come last. Each runs gpdl's driver beside the server, its
-- sessions acting as the calling role (gpdl_backend.sql_api).

CREATE FUNCTION gpdl.load_images(
    location text, output_table text, batch_size integer DEFAULT 500,
    server text DEFAULT NULL, resize integer[] DEFAULT NULL, color_mode text DEFAULT 'RGB',
    int_pixels boolean DEFAULT false, if_exists text DEFAULT 'fail', threads integer DEFAULT 8,
    num_segments integer DEFAULT NULL
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.load_images(
    plpy, location, output_table, batch_size=batch_size, server=server, resize=resize,
    color_mode=color_mode, int_pixels=int_pixels, if_exists=if_exists, threads=threads,
    num_segments=num_segments)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.training_preprocessor_dl(
    source_table text, output_table text, dependent_varname text DEFAULT 'y',
    independent_varname text DEFAULT 'x', buffer_size integer DEFAULT NULL,
    normalizing_const real DEFAULT 1.0, num_classes integer DEFAULT NULL,
    distribution_rules text DEFAULT NULL, seed integer DEFAULT 0,
    if_exists text DEFAULT 'fail', num_segments integer DEFAULT NULL
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.training_preprocessor_dl(
    plpy, source_table, output_table, dependent_varname, independent_varname, buffer_size,
    normalizing_const, num_classes, distribution_rules, seed, if_exists, num_segments)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.validation_preprocessor_dl(
    source_table text, output_table text, dependent_varname text DEFAULT 'y',
    independent_varname text DEFAULT 'x', training_preprocessor_table text DEFAULT NULL,
    buffer_size integer DEFAULT NULL, distribution_rules text DEFAULT NULL,
    seed integer DEFAULT 0, if_exists text DEFAULT 'fail', num_segments integer DEFAULT NULL
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.validation_preprocessor_dl(
    plpy, source_table, output_table, dependent_varname, independent_varname,
    training_preprocessor_table, buffer_size, distribution_rules, seed, if_exists,
    num_segments)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.load_keras_model(
    keras_model_arch_table text, model_arch json, model_weights bytea DEFAULT NULL,
    name text DEFAULT NULL, description text DEFAULT NULL, model_id integer DEFAULT NULL
) RETURNS integer AS $$
#PRELUDE
from gpdl_backend import model_tables, sql_api
return sql_api.call(plpy, model_tables.load_keras_model, keras_model_arch_table, model_arch,
                    model_weights, name, description, model_id)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.delete_keras_model(keras_model_arch_table text, model_id integer)
RETURNS void AS $$
#PRELUDE
from gpdl_backend import model_tables, sql_api
sql_api.call(plpy, model_tables.delete_keras_model, keras_model_arch_table, model_id)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.load_model_selection_table(
    model_arch_table text, model_selection_table text, model_id_list integer[],
    compile_params_list text[], fit_params_list text[], object_table text DEFAULT NULL,
    if_exists text DEFAULT 'fail'
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import model_tables, sql_api
return sql_api.as_json(sql_api.call(
    plpy, model_tables.load_model_selection_table, model_arch_table, model_selection_table,
    model_id_list, compile_params_list, fit_params_list, object_table, if_exists))
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.generate_model_configs(
    model_arch_table text, model_selection_table text, model_id_list integer[],
    compile_params_grid text, fit_params_grid text, search_type text DEFAULT 'grid',
    num_configs integer DEFAULT NULL, random_state integer DEFAULT NULL,
    object_table text DEFAULT NULL, if_exists text DEFAULT 'append'
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import model_tables, sql_api
return sql_api.as_json(sql_api.call(
    plpy, model_tables.generate_model_configs, model_arch_table, model_selection_table,
    model_id_list, compile_params_grid, fit_params_grid, search_type, num_configs,
    random_state, object_table, if_exists))
$$ LANGUAGE plpython3u VOLATILE;

-- gpdl's own: one more architecture with every (compile, fit) pair the table holds.
CREATE FUNCTION gpdl.add_model_to_selection(model_selection_table text, model_id integer)
RETURNS json AS $$
#PRELUDE
from gpdl_backend import model_tables, sql_api
return sql_api.as_json(sql_api.call(
    plpy, model_tables.add_model_to_selection, model_selection_table, model_id))
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.madlib_keras_fit_multiple_model(
    source_table text, model_output_table text, model_selection_table text,
    num_iterations integer, use_gpus boolean DEFAULT false, validation_table text DEFAULT NULL,
    metrics_compute_frequency integer DEFAULT NULL, warm_start boolean DEFAULT false,
    name text DEFAULT NULL, description text DEFAULT NULL, use_caching boolean DEFAULT false,
    seed integer DEFAULT 0, background boolean DEFAULT false
) RETURNS text AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.fit_multiple_model(
    plpy, GD, background, source_table=source_table, model_output_table=model_output_table,
    model_selection_table=model_selection_table, num_iterations=num_iterations,
    use_gpus=use_gpus, validation_table=validation_table,
    metrics_compute_frequency=metrics_compute_frequency, warm_start=warm_start, name=name,
    description=description, use_caching=use_caching, seed=seed)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.fit_multiple_model(
    source_table text, model_output_table text, model_selection_table text,
    num_iterations integer, use_gpus boolean DEFAULT false, validation_table text DEFAULT NULL,
    metrics_compute_frequency integer DEFAULT NULL, warm_start boolean DEFAULT false,
    name text DEFAULT NULL, description text DEFAULT NULL, use_caching boolean DEFAULT false,
    seed integer DEFAULT 0, background boolean DEFAULT false
) RETURNS text AS $$
    SELECT gpdl.madlib_keras_fit_multiple_model($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                                                $11, $12, $13)
$$ LANGUAGE sql VOLATILE;

CREATE FUNCTION gpdl.resume_job(job text, background boolean DEFAULT false) RETURNS text AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.resume_job(plpy, GD, job, background)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.stop_job(job text, mst_key integer DEFAULT NULL) RETURNS text AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.stop_job(plpy, job, mst_key)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.job_status(job text) RETURNS json AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.job_status(plpy, job)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.driver_alive(host text, pid integer, job text) RETURNS boolean AS $$
#PRELUDE
from gpdl_backend.mop import registry
return registry.driver_alive(host, pid, job)
$$ LANGUAGE plpython3u VOLATILE;

-- A job whose driver process is gone without recording its end is lost:
-- gpdl.resume_job continues it from its last committed unit. On the driver's own
-- host the process itself decides, from its launch on (a live driver is never lost,
-- so a resume never starts a second one, and a slow start is not a death); a driver
-- on another host is lost when silent for 30 s, or 2 minutes after its launch when
-- it never reported.
CREATE VIEW gpdl.jobs AS
SELECT job, owner,
       CASE WHEN state IN ('running', 'starting') THEN
                 CASE gpdl.driver_alive(driver_host, driver_pid, job)
                      WHEN true THEN state
                      WHEN false THEN 'lost'
                      ELSE CASE WHEN heartbeat < now() - CASE state
                                    WHEN 'running' THEN interval '30 seconds'
                                    ELSE interval '2 minutes' END
                                THEN 'lost' ELSE state END END
            ELSE state END AS state,
       units_done, units_total, started, ended, driver_host, driver_pid,
       heartbeat AS last_heartbeat, error, unit_retries
FROM gpdl.job;
GRANT SELECT ON gpdl.jobs TO gpdl_user;

CREATE FUNCTION gpdl.madlib_keras_predict(
    model_table text, test_table text, id_col text DEFAULT 'fullpaths',
    independent_varname text DEFAULT 'x', output_table text DEFAULT NULL,
    pred_type text DEFAULT 'prob', use_gpus boolean DEFAULT false,
    mst_key integer DEFAULT NULL, if_exists text DEFAULT 'fail'
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.predict(plpy, model_table, test_table, id_col, independent_varname,
                       output_table, pred_type, use_gpus, mst_key, if_exists)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.predict(
    model_table text, test_table text, id_col text DEFAULT 'fullpaths',
    independent_varname text DEFAULT 'x', output_table text DEFAULT NULL,
    pred_type text DEFAULT 'prob', use_gpus boolean DEFAULT false,
    mst_key integer DEFAULT NULL, if_exists text DEFAULT 'fail'
) RETURNS json AS $$
    SELECT gpdl.madlib_keras_predict($1, $2, $3, $4, $5, $6, $7, $8, $9)
$$ LANGUAGE sql VOLATILE;

-- MADlib's "bring your own model": an architecture and its weights from a model
-- architecture table (gpdl.load_keras_model's), the class values given here.
CREATE FUNCTION gpdl.madlib_keras_predict_byom(
    model_arch_table text, model_id integer, test_table text, id_col text,
    independent_varname text, output_table text, pred_type text DEFAULT 'prob',
    use_gpus boolean DEFAULT false, class_values text[] DEFAULT NULL,
    normalizing_const double precision DEFAULT 1.0
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.predict_byom(plpy, model_arch_table, model_id, test_table, id_col,
                            independent_varname, output_table, pred_type, use_gpus,
                            class_values, normalizing_const)
$$ LANGUAGE plpython3u VOLATILE;

-- What the GPU monitor shows: every host's GPUs (or CPU) and the gpdl sessions on them.
CREATE FUNCTION gpdl.gpu_status() RETURNS TABLE (
    host text, kind text, device text, utilization double precision,
    memory_used_mb double precision, memory_total_mb double precision, pids integer[],
    sessions text[]
) AS $$
#PRELUDE
from gpdl_backend import gpu_monitor, sql_api
return sql_api.call(plpy, gpu_monitor.gpu_usage)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.gpu_configuration(output_table text, source text DEFAULT 'tensorflow')
RETURNS void AS $$
#PRELUDE
from gpdl_backend import sql_api
sql_api.gpu_configuration(plpy, output_table, source)
$$ LANGUAGE plpython3u VOLATILE;

-- MADlib's evaluate: loss and metrics of a trained configuration on a packed table, one
-- session per segment running the trainer's gpdl.evaluate_unit over its own rows.
-- The output holds MADlib's (loss, metric, metrics_type, loss_type) and metrics_all.
CREATE FUNCTION gpdl.madlib_keras_evaluate(
    model_table text, test_table text, output_table text, use_gpus boolean DEFAULT false,
    mst_key integer DEFAULT NULL
) RETURNS json AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.evaluate(plpy, model_table, test_table, output_table, use_gpus, mst_key)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.evaluate(
    model_table text, test_table text, output_table text, use_gpus boolean DEFAULT false,
    mst_key integer DEFAULT NULL
) RETURNS json AS $$
    SELECT gpdl.madlib_keras_evaluate($1, $2, $3, $4, $5)
$$ LANGUAGE sql VOLATILE;

-- MADlib's AutoML: a search over model_id_list x the compile/fit grids, on MOP units.
-- automl_method: 'hyperband' (MADlib's synchronous Hyperband, 'R=6, eta=3, skip_last=0'),
-- 'hyperopt' ('num_configs=20, num_iterations=5, algorithm=tpe') or gpdl's 'asha'
-- (asynchronous successive halving, 'R=6, eta=3, min_r=1, num_configs=..., algorithm=rand').
-- Creates model_output_table (+ _info, _summary, _progress) and model_selection_table;
-- returns the job's name, followed like a fit's (gpdl.jobs, resume_job, stop_job).
CREATE FUNCTION gpdl.madlib_keras_automl(
    source_table text, model_output_table text, model_arch_table text,
    model_selection_table text, model_id_list integer[], compile_params_grid text,
    fit_params_grid text, automl_method text DEFAULT 'hyperband',
    automl_params text DEFAULT NULL, random_state integer DEFAULT NULL,
    object_table text DEFAULT NULL, use_gpus boolean DEFAULT false,
    validation_table text DEFAULT NULL, metrics_compute_frequency integer DEFAULT NULL,
    name text DEFAULT NULL, description text DEFAULT NULL,
    use_caching boolean DEFAULT false, background boolean DEFAULT false
) RETURNS text AS $$
#PRELUDE
from gpdl_backend import sql_api
return sql_api.automl(
    plpy, GD, background, source_table=source_table, model_output_table=model_output_table,
    model_arch_table=model_arch_table, model_selection_table=model_selection_table,
    model_id_list=model_id_list, compile_params_grid=compile_params_grid,
    fit_params_grid=fit_params_grid, automl_method=automl_method,
    automl_params=automl_params, random_state=random_state, object_table=object_table,
    use_gpus=use_gpus, validation_table=validation_table,
    metrics_compute_frequency=metrics_compute_frequency, name=name,
    description=description, use_caching=use_caching)
$$ LANGUAGE plpython3u VOLATILE;

-- MADlib's hyperband_schedule: the brackets (s), rungs (i), configurations (n_i) and
-- iterations (r_i) of Hyperband with max iterations r, into a new table.
CREATE FUNCTION gpdl.hyperband_schedule(
    schedule_table text, r integer, eta integer DEFAULT 3, skip_last integer DEFAULT 0
) RETURNS void AS $$
#PRELUDE
from gpdl_backend import search_tables, sql_api
sql_api.call(plpy, search_tables.write_hyperband_schedule, schedule_table, r, eta, skip_last)
$$ LANGUAGE plpython3u VOLATILE;

-- gpdl's plan preview of a search: per bracket (s) and rung (i) its configurations,
-- iterations, units and seconds; the last row (i NULL) is the total, seconds its ETA
-- (from unit_seconds, else the mean unit of this role's latest job on source_table,
-- else, given the search space, a probe training its first configuration on one buffer).
CREATE FUNCTION gpdl.automl_plan(
    automl_method text DEFAULT 'hyperband', automl_params text DEFAULT NULL,
    source_table text DEFAULT NULL, unit_seconds double precision DEFAULT NULL,
    model_arch_table text DEFAULT NULL, model_id_list integer[] DEFAULT NULL,
    compile_params_grid text DEFAULT NULL, fit_params_grid text DEFAULT NULL
) RETURNS TABLE (s integer, i integer, n_i integer, r_i integer, iterations integer,
                 units integer, seconds double precision) AS $$
#PRELUDE
from gpdl_backend import search_tables, sql_api
rows = sql_api.call(plpy, search_tables.automl_plan, automl_method, automl_params,
                    source_table, unit_seconds, model_arch_table, model_id_list,
                    compile_params_grid, fit_params_grid)
return [(r["s"], r["i"], r["n_i"], r["r_i"], r["iterations"], r["units"], r["seconds"])
        for r in rows]
$$ LANGUAGE plpython3u VOLATILE;

-- A person steers a running search (gpdl_backend.mop.steering): train a configuration
-- that ended (or one made by hand) more iterations; returns its new budget.
CREATE FUNCTION gpdl.extend_config(
    model_output_table text, mst_key integer, iterations integer
) RETURNS integer AS $$
#PRELUDE
from gpdl_backend import sql_api
from gpdl_backend.mop import steering
return sql_api.call(plpy, steering.extend_config, model_output_table, mst_key, iterations)
$$ LANGUAGE plpython3u VOLATILE;

-- Add a configuration to a running search, warm-started from mst_key's weights, with
-- other compile / fit parameters (NULL: the source's); returns the clone's mst_key.
CREATE FUNCTION gpdl.clone_config(
    model_output_table text, mst_key integer, compile_params text DEFAULT NULL,
    fit_params text DEFAULT NULL, iterations integer DEFAULT NULL
) RETURNS integer AS $$
#PRELUDE
from gpdl_backend import sql_api
from gpdl_backend.mop import steering
return sql_api.call(plpy, steering.clone_config, model_output_table, mst_key,
                    compile_params, fit_params, iterations)
$$ LANGUAGE plpython3u VOLATILE;
