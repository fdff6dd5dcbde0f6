"""The Python API of gpdl: what a notebook user calls, and what the magics call.

Every function takes plain keyword arguments with defaults, finds its
database with :func:`gpdl_jupyter.connection.resolve_dsn` (``dsn=`` → the
connection chosen with :func:`connect` → jupysql's active connection →
``$DATABASE_URL`` → the embedded server) and calls one backend function.
With ``show_sql=True`` it does nothing and returns the SQL and driver calls
it would run, as text (:class:`~gpdl_jupyter.sqltext.ShownSql`).

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

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gpdl_backend.errors import UsageError
from gpdl_jupyter import connection, plans
from gpdl_jupyter.results import JobReport, Table
from gpdl_jupyter.sqltext import ShownSql

__all__ = [
    "connect",
    "delete_model",
    "dsn",
    "fit",
    "gpu_usage",
    "info",
    "load_images",
    "load_model",
    "predict",
    "predict_image",
    "preprocess",
    "resume",
    "select_models",
    "status",
    "stop",
]


def _dsn(dsn: str | None, show_sql: bool) -> str:
    """Resolve the database; ``show_sql`` never starts the embedded server."""
    return connection.resolve_dsn(dsn, start_embedded=not show_sql)


# --- connection ------------------------------------------------------------------------
def connect(dsn: str | None = None, *, show_sql: bool = False
            ) -> connection.ConnectionInfo | ShownSql:
    """Choose the database for the following calls, and check it.

    Args:
        dsn: a URL (``postgresql://user:pw@host:5432/db``; SQLAlchemy's
            ``postgresql+psycopg2://`` too), a libpq ``key=value`` string or a
            jupysql connection alias. Defaults to None: the first of jupysql's
            active connection, ``$DATABASE_URL``, the embedded server (started).
        show_sql: describe instead of connecting. Defaults to False.

    Returns:
        A ``ConnectionInfo`` (engine, segments, gpdl version; password hidden).

    Raises:
        FatalError: the server cannot be reached.

    Example:
        >>> connect("postgresql://gpdl@127.0.0.1:54329/gpdl")
        postgresql://gpdl@127.0.0.1:54329/gpdl: postgresql (PostgreSQL 15.8), 2 segments, gpdl 0.1.0
    """
    if dsn is None:
        connection.CURRENT.reset()  # look past an earlier choice
    url = _dsn(dsn, show_sql)
    if show_sql:
        return plans.connect_plan(url)
    found = connection.check_connection(url)
    connection.CURRENT.set(url)
    return found


def dsn(url: str | None = None) -> str:
    """The database URL a call given ``dsn=url`` uses (may start the embedded server).

    Args:
        url: an explicit URL or jupysql alias. Defaults to None: the
            connection chosen with ``connect``, jupysql's, ``$DATABASE_URL``,
            else the embedded server.

    Example:
        >>> dsn()
        'postgresql://gpdl:...@127.0.0.1:54329/gpdl'
    """
    return connection.resolve_dsn(url)


def info(*, dsn: str | None = None, show_sql: bool = False
         ) -> connection.ConnectionInfo | ShownSql:
    """Describe the database (engine, segments, gpdl version) without choosing it.

    Example:
        >>> info().num_segments
        2
    """
    url = _dsn(dsn, show_sql)
    if show_sql:
        return plans.connect_plan(url)
    return connection.check_connection(url)


# --- data ------------------------------------------------------------------------------
def load_images(
    location: str,
    table: str,
    *,
    batch_size: int = 500,
    server: str | None = None,
    resize: tuple[int, int] | None = None,
    color_mode: str = "RGB",
    int_pixels: bool = False,
    if_exists: str = "fail",
    num_segments: int | None = None,
    threads: int = 8,
    progress: Callable[[int, int, int], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Any:
    """Load the images at ``location`` into ``table``, read in parallel by every segment.

    Args:
        location: a directory, glob or URL (``s3://``, ``gs://``, ``http(s)://``,
            ``file://``); each file's label is its parent directory's name.
        table: the image table to create (plus ``<table>_errors``).
        batch_size: images per row. Defaults to 500.
        server: name of the object-store config (credentials) on the database
            host. Defaults to None.
        resize: ``(height, width)`` for every image. Defaults to None (keep).
        color_mode: ``"RGB"`` or ``"L"``. Defaults to ``"RGB"``.
        int_pixels: also fill the PXF-compatible ``pixels INT[]``. Defaults to False.
        if_exists: ``"fail"``, ``"replace"`` or ``"append"``. Defaults to ``"fail"``.
        num_segments: PostgreSQL: parallel readers. Defaults to the installed count.
        threads: concurrent remote reads within a segment. Defaults to 8.
        progress: called as ``progress(files_done, files_total, errors)``.
        dsn: the database. Defaults to None (see the module docstring).
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``LoadResult`` (table, images, rows, errors, seconds).

    Raises:
        UsageError: a bad name or option, an existing table, a missing or
            empty location, images of mixed sizes; nothing is left behind.

    Example:
        >>> load_images("s3://bucket/train", "train_images", server="minio", resize=(32, 32))
        LoadResult(table='train_images', images=50000, rows=100, errors=0, ...)
    """
    url = _dsn(dsn, show_sql)
    options = dict(batch_size=batch_size, server=server, resize=resize, color_mode=color_mode,
                   int_pixels=int_pixels, if_exists=if_exists, num_segments=num_segments,
                   threads=threads)
    if show_sql:
        return plans.load_images_plan(url, location, table, **options)
    from gpdl_backend.images.loader import load_images as run

    return run(url, location, table, progress=progress, **options)


def preprocess(
    source_table: str,
    output_table: str,
    *,
    validation_of: str | None = None,
    buffer_size: int | None = None,
    normalizing_const: float = 255.0,
    num_segments: int | None = None,
    seed: int = 0,
    if_exists: str = "fail",
    progress: Callable[[str], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Any:
    """Pack an image table into training buffers spread over the segments.

    Args:
        source_table: image table from :func:`load_images`.
        output_table: packed table to create (plus ``<output_table>_summary``).
        validation_of: pack as validation data of this packed training table
            (its class values and normalizing constant). Defaults to None:
            training data.
        buffer_size: images per buffer. Defaults to an even share per segment,
            at most 32 MB a buffer.
        normalizing_const: training only: pixels are divided by this. Defaults to 255.
        num_segments: PostgreSQL virtual segments. Defaults to the installed count.
        seed: shuffle seed. Defaults to 0.
        if_exists: ``"fail"`` or ``"replace"``. Defaults to ``"fail"``.
        progress: called with a line per stage.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``PackResult`` (images, buffers, class values, image shape...).

    Raises:
        UsageError: bad names or options, a missing source, mixed sizes,
            labels the training data has not seen.

    Example:
        >>> preprocess("train_images", "train_packed")
        >>> preprocess("test_images", "test_packed", validation_of="train_packed")
    """
    url = _dsn(dsn, show_sql)
    if show_sql:
        return plans.preprocess_plan(
            url, source_table, output_table, validation_of=validation_of,
            buffer_size=buffer_size, normalizing_const=normalizing_const,
            num_segments=num_segments, seed=seed, if_exists=if_exists)
    from gpdl_backend import preprocess as backend

    options = dict(buffer_size=buffer_size, num_segments=num_segments, seed=seed,
                   if_exists=if_exists, progress=progress)
    if validation_of is not None:
        return backend.validation_preprocessor(url, source_table, output_table, validation_of,
                                               **options)
    return backend.training_preprocessor(url, source_table, output_table,
                                         normalizing_const=normalizing_const, **options)


# --- models ----------------------------------------------------------------------------
def _arch_json(model: Any) -> str:
    """JSON text of a Keras model, a dict or JSON text."""
    if isinstance(model, str):
        return model
    if isinstance(model, Mapping):
        return json.dumps(model)
    to_json = getattr(model, "to_json", None)
    if callable(to_json):
        return to_json()
    raise UsageError(f"a model must be a keras.Model, its JSON or a dict, not "
                     f"{type(model).__name__}")


def load_model(
    model_arch_table: str,
    model: Any,
    *,
    with_weights: bool = False,
    name: str | None = None,
    description: str | None = None,
    model_id: int | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> int | ShownSql:
    """Add an architecture to a (MADlib) model architecture table, created when missing.

    Args:
        model_arch_table: the architecture table.
        model: a ``keras.Model``, its JSON (``model.to_json()``) or the parsed dict.
        with_weights: also store the Keras model's current weights (for warm
            starts). Defaults to False.
        name: free text naming it. Defaults to None.
        description: free text describing it. Defaults to None.
        model_id: the id to use. Defaults to None (the next one).
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        The new ``model_id``.

    Raises:
        UsageError: not a model Keras can build (with Keras's message), a
            taken ``model_id``, a bad table.

    Example:
        >>> load_model("arch", keras.Sequential([...]), name="cnn")
        1
    """
    url = _dsn(dsn, show_sql)
    text = _arch_json(model)
    weights = None
    if with_weights:
        if isinstance(model, str | Mapping):
            raise UsageError("with_weights needs a keras.Model, not its JSON")
        from gpdl_backend.keras_model import weights_to_bytes

        weights = weights_to_bytes(model)
    if show_sql:
        return plans.load_model_plan(url, model_arch_table, text, name=name,
                                     description=description, model_id=model_id,
                                     has_weights=weights is not None)
    from gpdl_backend.model_tables import load_keras_model

    return load_keras_model(url, model_arch_table, text, model_weights=weights, name=name,
                            description=description, model_id=model_id)


def delete_model(model_arch_table: str, model_id: int, *, dsn: str | None = None,
                 show_sql: bool = False) -> ShownSql | None:
    """Delete one architecture; the table is dropped once empty (as MADlib does).

    Example:
        >>> delete_model("arch", 2)
    """
    url = _dsn(dsn, show_sql)
    if show_sql:
        return ShownSql(plans.call_text("gpdl_backend.model_tables.delete_keras_model", url,
                                        model_arch_table, model_id))
    from gpdl_backend.model_tables import delete_keras_model

    delete_keras_model(url, model_arch_table, model_id)
    return None


def select_models(
    model_selection_table: str,
    model_arch_table: str,
    model_ids: Sequence[int],
    *,
    compile_params: Mapping[str, Any] | Sequence[str] | str,
    fit_params: Mapping[str, Any] | Sequence[str] | str,
    search_type: str = "grid",
    num_configs: int | None = None,
    random_state: int | None = None,
    if_exists: str | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Table | ShownSql:
    """Write a model selection table: grid or random search, or explicit lists.

    Grids (dicts) go to MADlib's ``generate_model_configs``; lists of
    parameter strings to ``load_model_selection_table`` (every model id ×
    compile string × fit string).

    Args:
        model_selection_table: the table to write (plus ``_summary``).
        model_arch_table: the architecture table the ids refer to.
        model_ids: architecture ids.
        compile_params: a grid such as ``{"loss": ["categorical_crossentropy"],
            "optimizer_params_list": [{"optimizer": ["Adam"], "lr": [1e-3, 1e-4]}],
            "metrics": ["accuracy"]}``, or a list of MADlib strings such as
            ``["loss='categorical_crossentropy', optimizer='Adam(lr=0.001)',
            metrics=['accuracy']"]``.
        fit_params: a grid such as ``{"batch_size": [64, 128], "epochs": [1]}`` or
            a list of strings such as ``["batch_size=64, epochs=1"]``.
        search_type: grids only: ``"grid"`` or ``"random"``. Defaults to ``"grid"``.
        num_configs: random search: how many. Defaults to None.
        random_state: random search seed. Defaults to None.
        if_exists: ``"fail"``, ``"replace"`` or ``"append"``. Defaults to None:
            ``"append"`` for grids (MADlib's behaviour), ``"fail"`` for lists.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        The configurations written (``mst_key, model_id, compile_params,
        fit_params``), shown as a table.

    Raises:
        UsageError: a malformed grid or string, unknown model ids, an existing
            table with ``if_exists="fail"``.

    Example:
        >>> select_models("mst", "arch", [1, 2],
        ...               compile_params={"loss": ["categorical_crossentropy"],
        ...                               "optimizer": ["Adam", "RMSprop"],
        ...                               "metrics": ["accuracy"]},
        ...               fit_params={"batch_size": [64, 128]})
    """
    url = _dsn(dsn, show_sql)
    lists = plans._is_lists(compile_params, fit_params)
    exists = if_exists or ("fail" if lists else "append")
    if show_sql:
        return plans.select_models_plan(
            url, model_selection_table, model_arch_table, model_ids,
            compile_params=compile_params, fit_params=fit_params, search_type=search_type,
            num_configs=num_configs, random_state=random_state, if_exists=exists)
    from gpdl_backend import model_tables

    if lists:
        configs = model_tables.load_model_selection_table(
            url, model_arch_table, model_selection_table, model_ids, compile_params,
            fit_params, if_exists=exists)
    else:
        configs = model_tables.generate_model_configs(
            url, model_arch_table, model_selection_table, model_ids, compile_params,
            fit_params, search_type=search_type, num_configs=num_configs,
            random_state=random_state, if_exists=exists)
    return Table(configs)


# --- training --------------------------------------------------------------------------
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
    num_segments: int | None = None,
    background: bool = True,
    listener: Callable[[Any], None] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Any:
    """Train every configuration at once with model hopper parallelism.

    Returns at once by default: training goes on in a background thread and
    its progress is in the output tables (``<out>_info``, ``_summary``,
    ``_progress``), so any widget or session can follow it.

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
        num_segments: PostgreSQL virtual segments. Defaults to the packed table's.
        background: return at once and train in a thread. Defaults to True.
        listener: called with an ``Event`` after each unit and iteration.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

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
    url = _dsn(dsn, show_sql)
    options = dict(num_iterations=num_iterations, validation_table=validation_table,
                   metrics_compute_frequency=metrics_compute_frequency, use_gpus=use_gpus,
                   warm_start=warm_start, name=name, description=description,
                   use_caching=use_caching, seed=seed, num_segments=num_segments,
                   background=background)
    if show_sql:
        return plans.fit_plan(url, source_table, model_output_table, model_selection_table,
                              **options)
    from gpdl_backend.mop.job import fit_multiple_model

    return fit_multiple_model(url, source_table, model_output_table, model_selection_table,
                              listener=listener, **options)


def resume(model_output_table: str, *, background: bool = True,
           listener: Callable[[Any], None] | None = None, dsn: str | None = None,
           show_sql: bool = False) -> Any:
    """Continue a stopped, failed or interrupted job from its last committed unit.

    Args:
        model_output_table: the job's output table.
        background: return at once and train in a thread. Defaults to True.
        listener: called with an ``Event`` after each unit and iteration.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``TrainingJob``.

    Raises:
        UsageError: no such job, or it already finished.

    Example:
        >>> resume("models").wait()
    """
    url = _dsn(dsn, show_sql)
    if show_sql:
        return plans.resume_plan(url, model_output_table, background=background)
    from gpdl_backend.mop.job import resume as run

    return run(url, model_output_table, background=background, listener=listener)


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
    url = _dsn(dsn, show_sql)
    if show_sql:
        return plans.status_plan(url, model_output_table)
    from gpdl_backend.mop.job import TrainingJob

    return JobReport.of(TrainingJob.attach(url, model_output_table).status(),
                        model_output_table)


def stop(model_output_table: str, *, mst_key: int | None = None, dsn: str | None = None,
         show_sql: bool = False) -> ShownSql | None:
    """Ask a job to stop, or one of its configurations (the others go on).

    Units already running finish; ``resume`` continues a stopped job.

    Raises:
        UsageError: no such job or ``mst_key``.

    Example:
        >>> stop("models", mst_key=3)
    """
    url = _dsn(dsn, show_sql)
    if show_sql:
        return plans.stop_plan(url, model_output_table, mst_key)
    from gpdl_backend.mop.job import TrainingJob

    TrainingJob.attach(url, model_output_table).stop(mst_key)
    return None


# --- inference and monitoring ----------------------------------------------------------
def predict(
    model_table: str,
    test_table: str,
    output_table: str,
    *,
    pred_type: str | int | float = "response",
    mst_key: int | None = None,
    id_col: str = "fullpaths",
    if_exists: str = "fail",
    num_segments: int | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Any:
    """Predict every image of an image table into a table (MADlib's long format).

    Args:
        model_table: trained model table (from :func:`fit`).
        test_table: image table (from :func:`load_images`).
        output_table: table to create: ``id, class_name, class_value, prob, rank``.
        pred_type: ``"response"`` (top class), ``"prob"`` (all), an integer k
            (top k) or a probability threshold. Defaults to ``"response"``.
        mst_key: the configuration. Defaults to None (the table's only one).
        id_col: the image table's array column naming images. Defaults to ``"fullpaths"``.
        if_exists: ``"fail"`` or ``"replace"``. Defaults to ``"fail"``.
        num_segments: PostgreSQL concurrent sessions. Defaults to the installed count.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        A ``PredictResult`` (table, images, rows, seconds).

    Example:
        >>> predict("models", "test_images", "predictions", pred_type=3, mst_key=2)
    """
    url = _dsn(dsn, show_sql)
    options = dict(pred_type=pred_type, mst_key=mst_key, id_col=id_col, if_exists=if_exists,
                   num_segments=num_segments)
    if show_sql:
        return plans.predict_plan(url, model_table, test_table, output_table, **options)
    from gpdl_backend.predict import predict as run

    return run(url, model_table, test_table, output_table, **options)


def _image_bytes(image: Any) -> bytes:
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise UsageError(f"no image file {str(path)!r}")
        return path.read_bytes()
    raise UsageError(f"image must be bytes or a file path, not {type(image).__name__}")


def predict_image(
    model_table: str,
    image: bytes | str | os.PathLike[str] | None,
    *,
    mst_key: int | None = None,
    k: int = 3,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Table | ShownSql:
    """The top-``k`` classes of one PNG or JPEG image, computed in the database.

    Args:
        model_table: trained model table.
        image: the image's bytes or a file path (None only with ``show_sql``).
        mst_key: the configuration. Defaults to None (the table's only one).
        k: classes to return. Defaults to 3.
        dsn: the database. Defaults to None.
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        Rows ``{"class_name", "class_value", "prob", "rank"}``, best first.

    Raises:
        UsageError: a bad name or ``k``, no such configuration.
        ImageDecodeError: not a readable image.

    Example:
        >>> predict_image("models", "cat.png", mst_key=2, k=3)[0]["class_name"]
        'cat'
    """
    url = _dsn(dsn, show_sql)
    data = None if image is None and show_sql else _image_bytes(image)
    if show_sql:
        return plans.predict_image_plan(url, model_table, mst_key,
                                        None if data is None else len(data), k)
    from gpdl_backend.predict import predict_image as run

    return Table(run(url, model_table, mst_key, data, k=k))


def gpu_usage(*, dsn: str | None = None, show_sql: bool = False) -> Table | ShownSql:
    """GPU use of every database host now (CPU use where a host has no GPU).

    Returns:
        Rows ``{"host", "kind", "device", "utilization", "memory_used_mb",
        "memory_total_mb", "pids", "sessions"}``.

    Example:
        >>> gpu_usage()[0]["kind"]
        'gpu'
    """
    url = _dsn(dsn, show_sql)
    if show_sql:
        return plans.gpu_usage_plan(url)
    from gpdl_backend.gpu_monitor import gpu_usage as run

    return Table(run(url))
