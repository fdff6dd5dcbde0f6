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
