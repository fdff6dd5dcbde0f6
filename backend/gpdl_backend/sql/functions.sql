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
from gpdl_backend import server_info
return json.dumps(server_info.collect(with_tensorflow))
$$ LANGUAGE plpython3u;

CREATE FUNCTION gpdl.count_files(location text, server text DEFAULT NULL) RETURNS bigint AS $$
#PRELUDE
from gpdl_backend.images import bridge
return bridge.count_files(GD, location, server)
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
from gpdl_backend.images import bridge
return bridge.read_images(
    plpy, GD, location, batch_size=batch_size, server=server, resize=resize,
    color_mode=color_mode, int_pixels=int_pixels, segment=segment,
    num_segments=num_segments, progress=progress, threads=threads,
)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.split_images(x bytea, dims integer[], y text[], fullpaths text[])
RETURNS TABLE (fullpath text, label text, pixels bytea) AS $$
#PRELUDE
from gpdl_backend import preprocess_server
return preprocess_server.split_images(x, dims, y, fullpaths)
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
from gpdl_backend.mop import worker
return worker.check_config(model_arch, compile_params, fit_params, image_shape, num_classes)
$$ LANGUAGE plpython3u;

CREATE FUNCTION gpdl.init_weights(model_arch json, compile_params text, seed integer)
RETURNS bytea AS $$
#PRELUDE
from gpdl_backend.mop import worker
return worker.init_weights(GD, model_arch, compile_params, seed)
$$ LANGUAGE plpython3u;

-- ---------------------------------------------------------------- training
CREATE FUNCTION gpdl.train_unit(
    token text, cache_key text, buffer_id integer, num_buffers integer,
    x bytea, y bytea, x_shape integer[], model_arch json, compile_params text,
    fit_params text, weights bytea, optimizer_state bytea, num_classes integer,
    normalizing_const real, seed bigint, threads integer, use_gpus boolean,
    segment integer, use_caching boolean
) RETURNS TABLE (
    weights bytea, optimizer_state bytea, loss double precision,
    metric double precision, images integer, seconds double precision
) AS $$
#PRELUDE
from gpdl_backend.mop import worker
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
    seconds double precision
) AS $$
#PRELUDE
from gpdl_backend.mop import worker
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
from gpdl_backend import predict_server
return predict_server.predict_rows(
    GD, ids, x, dims, model_arch, weights, compile_params, normalizing_const,
    class_values, pred_type, k, threshold)
$$ LANGUAGE plpython3u VOLATILE;

CREATE FUNCTION gpdl.predict_image(
    model_table text, mst_key integer, image bytea, k integer DEFAULT 3
) RETURNS TABLE (class_name text, class_value integer, prob double precision, rank integer)
AS $$
#PRELUDE
from gpdl_backend import predict_server
return predict_server.predict_image(plpy, GD, model_table, mst_key, image, k)
$$ LANGUAGE plpython3u VOLATILE;

-- ---------------------------------------------------------------- GPUs
CREATE FUNCTION gpdl.gpu_configuration() RETURNS TABLE (
    host text, device integer, name text, memory_total_mb double precision, driver text
) AS $$
#PRELUDE
from gpdl_backend import gpu
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
from gpdl_backend import gpu
return gpu.gpu_usage(GD, zip(backend_pids or [], backend_names or []), parent=os.getppid())
$$ LANGUAGE plpython3u VOLATILE;
