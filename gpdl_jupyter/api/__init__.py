"""The Python API of gpdl: what a notebook user calls, and what the magics call.

Every function takes plain keyword arguments with defaults, finds its
database with :func:`gpdl_jupyter.connection.resolve_dsn` (``dsn=`` → the
connection chosen with :func:`connect` → jupysql's active connection →
``$DATABASE_URL`` → the embedded server) and runs one call of a gpdl SQL
function (``gpdl.load_images``, ``gpdl.madlib_keras_fit_multiple_model``, ...):
the work happens beside the database. With ``show_sql=True`` it does nothing
and returns that statement, as text (:class:`~gpdl_jupyter.sqltext.ShownSql`).

Example::

    import gpdl_jupyter.api as gpdl

    gpdl.load_images("/data/fashion/train", "train_images")
    gpdl.preprocess("train_images", "train_packed")
    model_id = gpdl.load_model("arch", keras_model, name="cnn")
    gpdl.select_models("mst", "arch", [model_id],
                       compile_params={"loss": ["categorical_crossentropy"],
                                       "optimizer": ["Adam"], "metrics": ["accuracy"]},
                       fit_params={"batch_size": [64, 128], "epochs": [1]})
    job = gpdl.fit("train_packed", "models", "mst", num_iterations=5)
    job.wait()
"""

from gpdl_jupyter.api._connect import connect, dsn, info
from gpdl_jupyter.api._data import load_images, preprocess
from gpdl_jupyter.api._inference import evaluate, gpu_usage, predict, predict_image
from gpdl_jupyter.api._models import (
    add_to_selection,
    delete_model,
    load_model,
    read_model,
    select_models,
)
from gpdl_jupyter.api._servers import add_server, servers_dir
from gpdl_jupyter.api._tables import drop_tables
from gpdl_jupyter.api._training import (
    automl,
    automl_plan,
    clone,
    extend,
    fit,
    jobs,
    resume,
    status,
    stop,
)

__all__ = [
    "add_server",
    "add_to_selection",
    "automl",
    "automl_plan",
    "clone",
    "connect",
    "delete_model",
    "drop_tables",
    "dsn",
    "evaluate",
    "extend",
    "fit",
    "gpu_usage",
    "info",
    "jobs",
    "load_images",
    "load_model",
    "predict",
    "predict_image",
    "preprocess",
    "read_model",
    "resume",
    "select_models",
    "servers_dir",
    "status",
    "stop",
]
