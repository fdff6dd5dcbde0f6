"""Build the tutorial notebooks from the readable cell lists below.

The ``.ipynb`` files are generated: edit this file, then run
``.venv/bin/python notebooks/build.py`` (``--check`` only reports stale files;
a unit test runs it). Outputs are left empty except for the cells marked
``# NBVAL_CHECK_OUTPUT``, whose expected output is written here next to the
code; ``pytest --nbval-lax`` compares those and only runs the others.

Every cell carries reveal.js slide metadata (``jupyter nbconvert --to slides``):
a step's heading opens a slide, its code follows on that slide, set-up and CI
checks are skipped.

Environment the notebooks read (all optional):
    DATABASE_URL     the database; default the embedded server (started on demand)
    GPDL_DEMO_LIMIT  training images of the quickstart (stratified); default 6000 (10%)
    GPDL_DEMO_DATA   where the image files go; default under the gpdl home
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

HERE = Path(__file__).resolve().parent
CHECK = "# NBVAL_CHECK_OUTPUT"


def md(text: str, slide: str = "slide") -> dict:
    """A markdown cell; ``slide`` is its reveal.js slide type."""
    return {"kind": "markdown", "source": textwrap.dedent(text).strip(), "slide": slide}


def code(text: str, slide: str = "-") -> dict:
    """A code cell whose output is not compared (it runs, and must not fail)."""
    return {"kind": "code", "source": textwrap.dedent(text).strip(), "slide": slide}


def check(text: str, expected: str, slide: str = "skip") -> dict:
    """A code cell whose printed output must be ``expected`` (``# NBVAL_CHECK_OUTPUT``)."""
    return {"kind": "code", "source": CHECK + "\n" + textwrap.dedent(text).strip(),
            "slide": slide, "expected": textwrap.dedent(expected).lstrip("\n")}


# --- 01 quickstart ---------------------------------------------------------------------------
QUICKSTART = [
    md("""
        # gpdl quickstart: deep learning *inside* PostgreSQL

        The four steps of the reference demo, on Fashion-MNIST:

        1. **Load** images into a table, read in parallel by every segment
        2. **Define** model configurations: architectures × hyperparameters
        3. **Train** them all at once (model hopper parallelism), with live learning curves
        4. **Infer**: the top-3 classes of an image, computed in the database

        Everything runs in the database; the notebook only sends commands and draws.
        """),
    md("""
        A small-data choice so that the four steps run in a couple of minutes:
        a stratified subset of Fashion-MNIST (10% by default, every class equally).
        """, slide="subslide"),
    code("""
        import os
        from pathlib import Path

        from gpdl_backend.embedded import default_home

        DEMO_LIMIT = int(os.environ.get("GPDL_DEMO_LIMIT", 6000))  # of the 60,000 training images
        ITERATIONS = 3                                               # passes over the data
        DATA = Path(os.environ.get("GPDL_DEMO_DATA")
                    or default_home() / "datasets" / f"fashion-mnist-{DEMO_LIMIT}")
        """),
    code("""
        %load_ext gpdl_jupyter
        %config GpdlMagic.theme = 'presentation'

        import plotly.io as pio

        pio.renderers.default = "plotly_mimetype+notebook"  # charts in exported HTML too
        """, slide="skip"),
    md("""
        Connect: `$DATABASE_URL` when it is set, else the embedded PostgreSQL server
        (started on demand, gpdl installed). Then a clean slate: drop what an earlier run of
        this notebook made.
        """, slide="subslide"),
    code("""
        %gpdl connect
        """),
    code("""
        %gpdl drop fashion_models fashion_mst fashion_arch
        """, slide="skip"),
    md("""
        ## 1 · Load

        Fashion-MNIST as PNG files in one folder per class (Debian's `dataset-fashion-mnist`),
        then into image tables: many images per row, every segment reads its share of the files.
        """),
    code("""
        from gpdl_backend.datasets import write_fashion_mnist

        write_fashion_mnist(DATA, limit=DEMO_LIMIT)
        """),
    code("""
        %gpdl load {{DATA}}/train fashion_train --color-mode L --if-exists replace
        """),
    code("""
        %gpdl load {{DATA}}/test fashion_test --color-mode L --if-exists replace
        """),
    md("""
        Pack the images into training and validation buffers spread over the segments
        (the validation data gets the training data's classes).
        """, slide="subslide"),
    code("""
        packed = %gpdl preprocess fashion_train fashion_train_packed --if-exists replace
        %gpdl preprocess fashion_test fashion_test_packed --validation-of fashion_train_packed --if-exists replace
        """),
    check("""
        print(len(packed.class_values), "classes:", ", ".join(packed.class_values))
        print("images of", "x".join(map(str, packed.image_shape)), "pixels")
        """, """
        10 classes: ankle_boot, bag, coat, dress, pullover, sandal, shirt, sneaker, t-shirt_top, trouser
        images of 28x28x1 pixels
        """),
    md("""
        ## 2 · Define configurations

        Two small CNNs into a model architecture table (MADlib's `load_keras_model`)...
        """),
    code("""
        import keras


        def small_cnn(filters: int) -> keras.Model:
            return keras.Sequential([
                keras.Input(shape=(28, 28, 1)),
                keras.layers.Conv2D(filters, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(10, activation="softmax"),
            ])


        cnn_8, cnn_16 = small_cnn(8), small_cnn(16)
        """),
    code("""
        narrow = %gpdl arch fashion_arch --from cnn_8 --name cnn-8
        wide = %gpdl arch fashion_arch --from cnn_16 --name cnn-16
        """),
    check("""
        print("model ids:", narrow, wide)
        """, """
        model ids: 1 2
        """),
    md("""
        ... and a grid of hyperparameters (MADlib's `generate_model_configs`):
        2 architectures × 2 learning rates = 4 configurations.
        """, slide="subslide"),
    code("""
        %%gpdl select fashion_mst --arch fashion_arch --if-exists replace
        model_ids: [{{narrow}}, {{wide}}]
        compile:
          loss: [categorical_crossentropy]
          optimizer_params_list:
            - optimizer: [Adam]
              lr: [0.001, 0.003]
          metrics: [accuracy]
        fit:
          batch_size: [64]
          epochs: [1]
        """),
    md("""
        ## 3 · Train all configurations at once

        Model hopper parallelism: every configuration visits every segment's data once per
        iteration, and the segments never wait for each other. The curves update live while
        the job trains in the background; `wait()` blocks until it ends.
        """),
    code("""
        curves = %gpdl fit fashion_train_packed fashion_models fashion_mst --iterations {{ITERATIONS}} --validation fashion_test_packed --metrics-frequency 1
        curves
        """),
    code("""
        curves.wait()
        %gpdl status fashion_models
        """),
    md("""
        The same chart as a static figure: it stays visible in the exported HTML and in the
        slides, where live widgets do not run.
        """, slide="subslide"),
    code("""
        curves.snapshot()
        """),
    check("""
        print(curves.status, "·", curves.configs_count, "configurations ·",
              curves.traces_count, "curves")
        """, """
        finished · 4 configurations · 12 curves
        """),
    md("""
        ## 4 · Infer

        The top-3 classes of a stored test image, by the best configuration; inference runs
        in the database. In the widget, choose another stored image or upload one.
        """),
    code("""
        topk = %gpdl predict fashion_models -k 3 --images fashion_test
        topk
        """),
    code("""
        sneaker = sorted((DATA / "test" / "sneaker").glob("*.png"))[0]
        top3 = topk.choose(str(sneaker))
        topk.snapshot()
        """),
    check("""
        probabilities = [row["prob"] for row in top3]
        print(topk.bars_count, "bars;", len(top3), "classes, most probable first:",
              probabilities == sorted(probabilities, reverse=True))
        """, """
        3 bars; 3 classes, most probable first: True
        """),
    md("""
        ## What happened where

        * The images, the packed buffers, the models and every learning curve are tables
          (`fashion_models_info`, `fashion_models_summary`): `%gpdl status fashion_models`
          from any session, or plain SQL.
        * `%gpdl fit --show-sql` and every other command with `--show-sql` print what they run.
        * Next: `02_object_storage` (load from S3), `03_architecture_editor` (change a model,
          retrain, compare), `04_greenplum` (the same commands on a cluster).
        """),
]

# --- 02 object storage -----------------------------------------------------------------------
OBJECT_STORAGE = [
    md("""
        # Loading images from object storage

        gpdl reads `s3://` (and `gs://`, `http(s)://`) locations with fsspec, *inside* the
        database: every segment fetches its share of the files. Credentials live in a named
        server config on the database host (like PXF's `SERVER=`), never in SQL.

        Here an S3-compatible server runs on this machine's loopback: moto's server mode.
        """),
    code("""
        import os
        import subprocess
        import sys
        import time
        import urllib.request
        from pathlib import Path

        from gpdl_backend.embedded import default_home, free_port

        DATA = Path(os.environ.get("GPDL_DEMO_DATA")
                    or default_home() / "datasets" / "fashion-mnist-s3")
        BUCKET = "fashion"
        """, slide="skip"),
    code("""
        %load_ext gpdl_jupyter
        import gpdl_jupyter.api as gpdl

        %gpdl connect
        """, slide="skip"),
    md("""
        ## An S3 server on loopback

        `moto_server` from the virtual environment, on a free port.
        """),
    code("""
        port = free_port()
        moto_server = Path(sys.executable).with_name("moto_server")  # in the virtual environment
        moto = subprocess.Popen([str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        print("S3 server ready")
        """),
    md("""
        A bucket with 200 training and 200 test images of Fashion-MNIST, uploaded with boto3.
        """, slide="subslide"),
    code("""
        import boto3

        from gpdl_backend.datasets import write_fashion_mnist

        counts = write_fashion_mnist(DATA, limit=200)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="demo", aws_secret_access_key="demo-secret")
        s3.create_bucket(Bucket=BUCKET)
        files = sorted(p for p in DATA.rglob("*.png"))
        for path in files:
            s3.upload_file(str(path), BUCKET, path.relative_to(DATA).as_posix())
        """),
    check("""
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="train/")["KeyCount"]
        print(counts, "·", len(files), "files uploaded ·", listed, "under train/")
        """, """
        {'train': 200, 'test': 200} · 400 files uploaded · 200 under train/
        """),
    md("""
        ## Credentials: a named server config

        `gpdl.add_server` is `gpdl servers add` from Python: it writes
        `<servers_dir>/<name>.json` (mode 0600) where the database reads it.
        SQL and the magics only name it: `--server fashion_s3`. A superuser
        may use any config; other roles only one that names them (here every
        `gpdl_user`), for locations under its base path (README "Security").
        """),
    code("""
        gpdl.add_server("fashion_s3", endpoint_url=endpoint, region="us-east-1",
                        key="demo", secret="demo-secret",
                        base_path=f"s3://{BUCKET}", roles=("gpdl_user",))
        """),
    md("""
        ## Load, as from a folder

        The label of an image is its folder's name, as on disk.
        """),
    code("""
        train = %gpdl load s3://{{BUCKET}}/train fashion_s3_train --server fashion_s3 --color-mode L --if-exists replace
        test = %gpdl load s3://{{BUCKET}}/test fashion_s3_test --server fashion_s3 --color-mode L --if-exists replace
        """),
    check("""
        print(train.images, "training and", test.images, "test images,",
              train.errors + test.errors, "skipped")
        """, """
        200 training and 200 test images, 0 skipped
        """),
    md("""
        `--show-sql` shows what runs: the segments call `gpdl.read_images(...)` with the
        location and the server's *name*; the secret never appears.
        """, slide="subslide"),
    code("""
        %gpdl load s3://{{BUCKET}}/train fashion_s3_train --server fashion_s3 --show-sql
        """),
    md("""
        From here on the tables are like any other: `%gpdl preprocess`, `%gpdl fit`...
        """, slide="subslide"),
    code("""
        packed = %gpdl preprocess fashion_s3_train fashion_s3_packed --if-exists replace
        """),
    check("""
        print(packed.images, "images,", len(packed.class_values), "classes")
        """, """
        200 images, 10 classes
        """),
    code("""
        moto.terminate()
        moto.wait(timeout=30)
        %gpdl drop fashion_s3_train fashion_s3_test fashion_s3_packed
        """, slide="skip"),
]

# --- 03 architecture editor ------------------------------------------------------------------
ARCHITECTURE_EDITOR = [
    md("""
        # The architecture editor: change a model, retrain, compare

        The editor shows a model's layers as an editable list, with every layer's output shape
        and parameter count as you edit, and Keras's own error next to a layer it refuses.
        Here it is driven from code (`add_layer`, `set_layer`, ...), so the notebook runs
        headless; in JupyterLab the same happens with its buttons.
        """),
    code("""
        import os
        from pathlib import Path

        from gpdl_backend.embedded import default_home

        DATA = Path(os.environ.get("GPDL_DEMO_DATA")
                    or default_home() / "datasets" / "fashion-mnist-1000")
        """, slide="skip"),
    code("""
        %load_ext gpdl_jupyter
        import plotly.io as pio

        pio.renderers.default = "plotly_mimetype+notebook"  # charts in exported HTML too
        %gpdl connect
        %gpdl drop editor_models editor_retrained editor_mst editor_arch
        """, slide="skip"),
    md("""
        ## A baseline

        1,000 training images of Fashion-MNIST, one small CNN, one configuration, two iterations.
        """),
    code("""
        from gpdl_backend.datasets import write_fashion_mnist

        write_fashion_mnist(DATA, limit=1000)
        %gpdl load {{DATA}}/train editor_train --color-mode L --if-exists replace
        %gpdl load {{DATA}}/test editor_test --color-mode L --if-exists replace
        %gpdl preprocess editor_train editor_train_packed --if-exists replace
        %gpdl preprocess editor_test editor_test_packed --validation-of editor_train_packed --if-exists replace
        """),
    code("""
        import keras

        baseline = keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ])
        base_id = %gpdl arch editor_arch --from baseline --name baseline
        """),
    code("""
        %%gpdl select editor_mst --arch editor_arch --if-exists replace
        model_ids: [{{base_id}}]
        compile:
          loss: [categorical_crossentropy]
          optimizer_params_list:
            - optimizer: [Adam]
              lr: [0.003]
          metrics: [accuracy]
        fit:
          batch_size: [32]
          epochs: [1]
        """),
    code("""
        %gpdl fit editor_train_packed editor_models editor_mst --iterations 2 --validation editor_test_packed --metrics-frequency 1 --wait
        """),
    md("""
        ## Edit the model

        Open the baseline in the editor, with the model selection table to add the result to.
        """),
    code("""
        editor = %gpdl arch editor_arch --model-id {{base_id}} --select editor_mst
        editor
        """),
    check("""
        print(" → ".join(layer.describe() for layer in editor.layers))
        print(f"{editor.num_params:,} parameters")
        """, """
        Conv2D 8 3×3 relu → MaxPooling2D 2×2 → Flatten → Dense 10 softmax
        13,610 parameters
        """),
    md("""
        Twice the filters, a hidden layer with dropout before the output: the shapes and
        the parameter count follow every edit.
        """, slide="subslide"),
    code("""
        editor.set_layer(0, units=16)
        editor.add_layer("Dense", units=32, activation="relu")
        editor.add_layer("Dropout", rate=0.25)
        """),
    check("""
        print(" → ".join(layer.describe() for layer in editor.layers))
        print(f"{editor.num_params:,} parameters; Keras refused:", editor.error or "nothing")
        """, """
        Conv2D 16 3×3 relu → MaxPooling2D 2×2 → Flatten → Dense 32 relu → Dropout 0.25 → Dense 10 softmax
        87,050 parameters; Keras refused: nothing
        """),
    md("""
        ## Save, add to the selection, retrain

        Saving writes a new `model_id`; "add to selection" pairs it with every
        (compile, fit) setting already in `editor_mst`. Then one job trains both models.
        """),
    code("""
        new_id = editor.save(name="wider + dropout")
        added = editor.add_to_selection()
        added
        """),
    check("""
        print(f"model_id {new_id}:", len(added), "configuration added")
        """, """
        model_id 2: 1 configuration added
        """),
    code("""
        retrained = %gpdl fit editor_train_packed editor_retrained editor_mst --iterations 2 --validation editor_test_packed --metrics-frequency 1
        retrained.wait()
        retrained
        """),
    md("""
        ## Compare

        One colour per configuration in every chart; solid: validation, dashed: training.
        """),
    code("""
        retrained.metric = "metric"   # accuracy instead of loss
        retrained.snapshot()
        """),
    check("""
        print(retrained.status, "·", retrained.configs_count, "configurations")
        """, """
        finished · 2 configurations
        """),
]

# --- 04 greenplum ----------------------------------------------------------------------------
GREENPLUM = [
    md("""
        # gpdl on a Greenplum / Apache Cloudberry cluster

        The same commands as on the embedded PostgreSQL: only the connection changes.
        A *segment* is now a primary segment of the cluster; the packed tables are
        `DISTRIBUTED BY (__dist_key__)` and each segment trains on the rows it holds.

        CI runs this notebook against a Greenplum 7 cluster of 2 primary segments
        (`$DATABASE_URL`), on a small slice of Fashion-MNIST: a minute or two.
        """),
    code("""
        import os
        import sys
        from pathlib import Path

        from gpdl_backend.embedded import default_home

        DEMO_LIMIT = int(os.environ.get("GPDL_DEMO_LIMIT", 1000))  # training images, stratified
        ITERATIONS = 2                                               # passes over the data
        DATA = Path(os.environ.get("GPDL_DEMO_DATA")
                    or default_home() / "datasets" / f"fashion-mnist-{DEMO_LIMIT}")
        # `!gpdl` below is the gpdl command of this kernel's virtual environment
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        """, slide="skip"),
    md("""
        ## 1 · Install gpdl on the cluster (once)

        As a superuser (plpython3u is untrusted), on the coordinator's URL. The segments'
        `PYTHONPATH` comes from `greenplum_path.sh`, not from this environment: `--site-path`
        tells them where TensorFlow, Keras and `gpdl_backend` are. Every segment host needs
        the same Python environment at the same path, readable by the database's OS user
        (`gpadmin`). Object-store credentials go in `--servers-dir` on every host (default
        `$GPDL_SERVERS_DIR`, else `/etc/gpdl/servers`).
        """),
    code("""
        import sysconfig

        import gpdl_backend

        # the coordinator, over TCP (CI sets $DATABASE_URL)
        GREENPLUM_URL = os.environ.get("DATABASE_URL") or "postgresql://gpadmin@mdw:5432/gpdl"
        BACKEND = Path(gpdl_backend.__file__).resolve().parent.parent  # gpdl_backend's folder
        SITE_PACKAGES = sysconfig.get_paths()["purelib"]                # TensorFlow, Keras, ...
        """),
    code("""
        !gpdl install {GREENPLUM_URL} --site-path {BACKEND} --site-path {SITE_PACKAGES}
        """),
    code("""
        # _exit_code: IPython's exit status of the last ! command
        assert _exit_code == 0, "gpdl install failed: its output is above"  # noqa: F821
        """, slide="skip"),
    md("""
        `gpdl doctor` asks the coordinator *and every segment* what their Python imports,
        and says which `chmod` to run where a segment cannot read the environment.
        """, slide="subslide"),
    code("""
        !gpdl doctor {GREENPLUM_URL}
        """),
    code("""
        # _exit_code: IPython's exit status of the last ! command
        assert _exit_code == 0, "gpdl doctor found a problem: its output is above"  # noqa: F821
        """, slide="skip"),
    md("""
        ## 2 · Connect

        `%gpdl connect` with the URL (or a jupysql alias; without one, `$DATABASE_URL`).
        `%gpdl status` without a job shows the engine and its segments.
        """),
    code("""
        %load_ext gpdl_jupyter
        %config GpdlMagic.theme = 'presentation'

        import plotly.io as pio

        pio.renderers.default = "plotly_mimetype+notebook"  # charts in exported HTML too
        """, slide="skip"),
    code("""
        %gpdl connect {{GREENPLUM_URL}}
        cluster = %gpdl status
        cluster
        """),
    check("""
        print("engine:", cluster.engine)
        """, """
        engine: greenplum
        """),
    code("""
        %gpdl drop cluster_models cluster_mst cluster_arch
        """, slide="skip"),
    md("""
        ## 3 · Load: every segment reads its share

        Fashion-MNIST as PNG files, one folder per class, into an image table. One
        statement runs on every segment; each reads its share of the files. The segments
        run on this machine here, so they read a local folder (readable by `gpadmin`).
        On several hosts, put the images where every segment host reaches them: a shared
        file system, or object storage with a named server config on every host
        (`gpdl servers add minio --endpoint-url ... --key ... --secret -` with the secret on stdin, then
        `%gpdl load s3://images/train train_images --server minio`; see `02_object_storage`).
        """),
    code("""
        from gpdl_backend.datasets import write_fashion_mnist

        write_fashion_mnist(DATA, limit=DEMO_LIMIT)
        %gpdl load {{DATA}}/train cluster_train --color-mode L --batch-size 100 --if-exists replace
        %gpdl load {{DATA}}/test cluster_test --color-mode L --batch-size 100 --if-exists replace
        """),
    code("""
        packed = %gpdl preprocess cluster_train cluster_train_packed --if-exists replace
        %gpdl preprocess cluster_test cluster_test_packed --validation-of cluster_train_packed --if-exists replace
        """),
    check("""
        print(len(packed.class_values), "classes, images of",
              "x".join(map(str, packed.image_shape)), "pixels")
        """, """
        10 classes, images of 28x28x1 pixels
        """),
    md("""
        Where the rows are: `gp_segment_id` is the segment that holds a row. Plain SQL from
        the notebook (psycopg2 here; jupysql's `%%sql` works as well): the image rows and
        the packed training buffers sit on both segments.
        """, slide="subslide"),
    code("""
        import psycopg2

        with psycopg2.connect(GREENPLUM_URL) as conn, conn.cursor() as cur:
            cur.execute(\"\"\"
                SELECT 'cluster_train', gp_segment_id, count(*), sum(cardinality(fullpaths))
                FROM cluster_train GROUP BY gp_segment_id
                UNION ALL
                SELECT 'cluster_train_packed', gp_segment_id, count(*), NULL
                FROM cluster_train_packed GROUP BY gp_segment_id
                ORDER BY 1, 2\"\"\")
            rows = cur.fetchall()
        conn.close()
        for table, segment, count, images in rows:
            print(f"{table:22} segment {segment}: {count:3} rows", f"{images} images" if images else "")
        """),
    check("""
        for name in ("cluster_train", "cluster_train_packed"):
            print(name, "on segments", sorted(segment for table, segment, *_ in rows if table == name))
        """, """
        cluster_train on segments [0, 1]
        cluster_train_packed on segments [0, 1]
        """),
    md("""
        ## 4 · Define two configurations

        One small CNN (MADlib's `load_keras_model`) and two learning rates
        (`generate_model_configs`): 2 configurations.
        """),
    code("""
        import keras

        cnn = keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ])
        cnn_id = %gpdl arch cluster_arch --from cnn --name cnn-8
        """),
    code("""
        %%gpdl select cluster_mst --arch cluster_arch --if-exists replace
        model_ids: [{{cnn_id}}]
        compile:
          loss: [categorical_crossentropy]
          optimizer_params_list:
            - optimizer: [Adam]
              lr: [0.001, 0.003]
          metrics: [accuracy]
        fit:
          batch_size: [64]
          epochs: [1]
        """),
    md("""
        ## 5 · Train on the segments

        Model hopper parallelism: each configuration visits both segments' buffers every
        iteration. Where the segment hosts have GPUs, add `--use-gpus` to `fit`: one GPU per
        segment (this cluster has none, so it trains on the CPUs).
        """),
    code("""
        curves = %gpdl fit cluster_train_packed cluster_models cluster_mst --iterations {{ITERATIONS}} --validation cluster_test_packed --metrics-frequency 1
        curves
        """),
    md("""
        The GPU monitor reads the use of every host from the database side; without GPUs,
        the CPU and memory of the gpdl sessions' server processes.
        """, slide="subslide"),
    code("""
        %gpdl gpu
        """),
    code("""
        curves.wait()
        %gpdl status cluster_models
        """),
    code("""
        curves.snapshot()
        """, slide="subslide"),
    check("""
        print(curves.status, "·", curves.configs_count, "configurations ·",
              curves.traces_count, "curves")
        """, """
        finished · 2 configurations · 6 curves
        """),
    md("""
        ## 6 · Infer

        The top-3 classes of a stored test image, by the best configuration, computed in
        the database; `--table cluster_test --output predictions` predicts a whole table,
        every segment its own rows.
        """),
    code("""
        topk = %gpdl predict cluster_models -k 3 --images cluster_test
        topk
        """),
    code("""
        sneaker = sorted((DATA / "test" / "sneaker").glob("*.png"))[0]
        top3 = topk.choose(str(sneaker))
        topk.snapshot()
        """),
    check("""
        probabilities = [row["prob"] for row in top3]
        print(len(top3), "classes, most probable first:",
              probabilities == sorted(probabilities, reverse=True))
        """, """
        3 classes, most probable first: True
        """),
    md("""
        ## What runs where

        `--show-sql` on any command shows the Greenplum statements instead of running them:
        one statement over `gp_dist_random('gp_id')` that runs on every segment for loading,
        and `WHERE __dist_key__ = k` for one segment's unit of training.
        """),
    code("""
        %gpdl fit cluster_train_packed cluster_models cluster_mst --iterations {{ITERATIONS}} --validation cluster_test_packed --show-sql
        """),
]

# --- 05 SQL ----------------------------------------------------------------------------------
SQL = [
    md("""
        # The reference demo in SQL, with jupysql's `%%sql`

        Every step is a function in schema `gpdl` with MADlib's name, argument order and
        defaults (`madlib.` → `gpdl.`): what you would type in psql, here in `%%sql` cells.
        Python only builds the Keras model and draws the learning curves.

        1. **Load** images: `gpdl.load_images`, then `training_preprocessor_dl` /
           `validation_preprocessor_dl`
        2. **Define** configurations: `load_keras_model`, `load_model_selection_table`
        3. **Train** in the background: `madlib_keras_fit_multiple_model(..., background => true)`,
           followed in `gpdl.jobs` and in the learning curves
        4. **Predict**: `madlib_keras_predict`, then a top-k query
        """),
    code("""
        import os
        from pathlib import Path

        from gpdl_backend.embedded import default_home

        DEMO_LIMIT = int(os.environ.get("GPDL_DEMO_LIMIT", 1000))  # training images, stratified
        ITERATIONS = 2                                               # passes over the data
        DATA = Path(os.environ.get("GPDL_DEMO_DATA")
                    or default_home() / "datasets" / f"fashion-mnist-{DEMO_LIMIT}")
        TRAIN_DIR, TEST_DIR = str(DATA / "train"), str(DATA / "test")
        """, slide="skip"),
    code("""
        import plotly.io as pio

        pio.renderers.default = "plotly_mimetype+notebook"  # charts in exported HTML too
        """, slide="skip"),
    md("""
        ## Connect jupysql to gpdl's database

        `resolve_dsn()` finds the database as `%gpdl connect` does: `$DATABASE_URL`, else the
        embedded PostgreSQL server (started on demand, gpdl installed). jupysql takes a
        SQLAlchemy engine; psycopg2 is the driver gpdl uses too. With named parameters on,
        `:name` in a query is the Python variable `name`, sent as a bound value.
        """, slide="subslide"),
    code("""
        import sqlalchemy

        from gpdl_jupyter.connection import resolve_dsn

        DSN = resolve_dsn()
        engine = sqlalchemy.create_engine(DSN.replace("postgresql://", "postgresql+psycopg2://", 1))

        %load_ext sql
        %sql engine --alias gpdl
        %config SqlMagic.named_parameters = "enabled"
        %config SqlMagic.displaylimit = 12
        """),
    code("""
        %%sql
        -- a clean slate: what an earlier run of this notebook made
        DROP TABLE IF EXISTS sql_arch, sql_models, sql_models_info, sql_models_summary,
                             sql_models_progress
        """, slide="skip"),
    md("""
        ## 1 · Load

        Fashion-MNIST as PNG files in one folder per class (Debian's `dataset-fashion-mnist`),
        the quickstart's sample folders. `gpdl.load_images` reads a folder into an image table,
        every segment its share of the files; the label of an image is its folder's name.
        """),
    code("""
        from gpdl_backend.datasets import write_fashion_mnist

        write_fashion_mnist(DATA, limit=DEMO_LIMIT)
        """),
    code("""
        %%sql
        SELECT gpdl.load_images(:TRAIN_DIR, 'sql_train', color_mode => 'L', if_exists => 'replace');
        SELECT gpdl.load_images(:TEST_DIR, 'sql_test', color_mode => 'L', if_exists => 'replace');
        """),
    md("""
        Pack the images into buffers spread over the segments, pixels divided by 255; the
        validation data gets the training data's classes.
        """, slide="subslide"),
    code("""
        %%sql
        SELECT gpdl.training_preprocessor_dl('sql_train', 'sql_train_packed', 'y', 'x',
                                             NULL, 255.0, if_exists => 'replace');
        SELECT gpdl.validation_preprocessor_dl('sql_test', 'sql_test_packed', 'y', 'x',
                                               'sql_train_packed', if_exists => 'replace');
        """),
    code("""
        packed = %sql SELECT class_values, buffer_size, normalizing_const FROM sql_train_packed_summary
        packed
        """),
    check("""
        class_values = packed[0][0]
        print(len(class_values), "classes:", ", ".join(class_values))
        """, """
        10 classes: ankle_boot, bag, coat, dress, pullover, sandal, shirt, sneaker, t-shirt_top, trouser
        """),
    md("""
        ## 2 · Define configurations

        A small CNN built with Keras here; its JSON goes into a model architecture table
        as the bound parameter `:model_json`.
        """),
    code("""
        import keras

        cnn = keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model_json = cnn.to_json()
        """),
    code("""
        arch = %sql SELECT gpdl.load_keras_model('sql_arch', :model_json, name => 'cnn-8') AS model_id
        """),
    check("""
        print("model_id:", arch[0][0])
        """, """
        model_id: 1
        """),
    md("""
        Two learning rates for that architecture: MADlib's `load_model_selection_table`
        writes every (architecture, compile, fit) combination, here 2 configurations.
        """, slide="subslide"),
    code("""
        %%sql
        SELECT gpdl.load_model_selection_table('sql_arch', 'sql_mst', ARRAY[1],
          ARRAY[$$loss='categorical_crossentropy',optimizer='Adam(learning_rate=0.001)',metrics=['accuracy']$$,
                $$loss='categorical_crossentropy',optimizer='Adam(learning_rate=0.003)',metrics=['accuracy']$$],
          ARRAY[$$batch_size=64,epochs=1$$], if_exists => 'replace');
        SELECT * FROM sql_mst ORDER BY mst_key;
        """),
    md("""
        ## 3 · Train in the background

        With `background => true` the call returns the job's name at once; a driver process
        on the database host trains, as your role, and the job outlives this session.
        `{{ITERATIONS}}` is filled in from Python before the query is sent.
        """),
    code("""
        %%sql fit <<
        SELECT gpdl.madlib_keras_fit_multiple_model('sql_train_packed', 'sql_models', 'sql_mst',
          {{ITERATIONS}}, FALSE, 'sql_test_packed', 1, background => true) AS job
        """),
    code("""
        job_name = fit[0][0]  # noqa: F821 (fit: the result the %%sql cell saved)
        job_name
        """),
    code("""
        %%sql
        SELECT * FROM gpdl.jobs WHERE job = :job_name
        """),
    md("""
        The learning curves attach to the job by its name, from this or any other notebook;
        `wait()` blocks until the job ends.
        """, slide="subslide"),
    code("""
        from gpdl_jupyter.widgets import LearningCurves

        curves = LearningCurves(DSN, job_name)
        curves
        """),
    code("""
        curves.wait()
        """),
    code("""
        jobs = %sql SELECT job, state, units_done, units_total FROM gpdl.jobs WHERE job = :job_name
        jobs
        """),
    code("""
        curves.snapshot()
        """),
    check("""
        job, state, done, total = jobs[0]
        print(state, "·", done == total, "·", curves.configs_count, "configurations ·",
              curves.traces_count, "curves")
        """, """
        finished · True · 2 configurations · 6 curves
        """),
    md("""
        ## 4 · Predict

        The best configuration by final validation accuracy predicts every test image,
        keeping its top 3 classes (`pred_type` 3), in MADlib's long format:
        `id, class_name, class_value, prob, rank`.
        """),
    code("""
        %%sql
        SELECT gpdl.madlib_keras_predict('sql_models', 'sql_test', 'fullpaths', 'x',
          'sql_predictions', '3', FALSE,
          (SELECT mst_key FROM sql_models_info
           ORDER BY validation_metrics_final DESC NULLS LAST, mst_key LIMIT 1),
          if_exists => 'replace')
        """),
    code("""
        %%sql
        SELECT id, rank, class_name, round(prob::numeric, 3) AS prob
        FROM sql_predictions
        WHERE id IN (SELECT DISTINCT id FROM sql_predictions ORDER BY id LIMIT 3)
        ORDER BY id, rank
        """),
    md("""
        Top-k accuracy is a join with the labels: how often the true class is the first
        guess, or among the first three.
        """, slide="subslide"),
    code("""
        %%sql accuracy <<
        WITH truth AS (SELECT unnest(fullpaths) AS id, unnest(y) AS label FROM sql_test),
             hits AS (SELECT t.id, min(p.rank) FILTER (WHERE p.class_name = t.label) AS rank
                      FROM truth t JOIN sql_predictions p USING (id) GROUP BY t.id)
        SELECT count(*) AS images, (SELECT sum(cardinality(y)) FROM sql_test) AS test_images,
               round(avg(CASE WHEN rank = 1 THEN 1.0 ELSE 0.0 END), 3) AS top_1_accuracy,
               round(avg(CASE WHEN rank <= 3 THEN 1.0 ELSE 0.0 END), 3) AS top_3_accuracy
        FROM hits
        """),
    code("""
        accuracy  # noqa: F821 (the result the %%sql cell saved)
        """),
    check("""
        images, test_images, top_1, top_3 = accuracy[0]  # noqa: F821
        print("every test image predicted:", images == test_images, "· top-3 at least top-1:",
              top_3 >= top_1, "· top-3 better than chance (0.3):", top_3 > 0.3)
        """, """
        every test image predicted: True · top-3 at least top-1: True · top-3 better than chance (0.3): True
        """),
    md("""
        ## What happened where

        * Every statement above ran in the database; the tables are there for psql, DBeaver
          or another notebook (`sql_models_info` holds every learning curve).
        * `SELECT gpdl.stop_job(:job_name)` stops a running job (or one `mst_key => ...`),
          `gpdl.resume_job(:job_name)` continues it.
        * A model trained elsewhere: load its weights with `gpdl.load_keras_model(...,
          model_weights => ...)` and predict with `gpdl.madlib_keras_predict_byom`.
        * The same steps with `%gpdl` commands: `01_quickstart`.
        """),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_object_storage.ipynb": OBJECT_STORAGE,
    "03_architecture_editor.ipynb": ARCHITECTURE_EDITOR,
    "04_greenplum.ipynb": GREENPLUM,
    "05_sql.ipynb": SQL,
}
"""File name -> cells."""


def build(cells: list[dict], prefix: str) -> nbformat.NotebookNode:
    """A notebook of ``cells`` with stable cell ids (``<prefix>-<n>``)."""
    notebook = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python"},
    })
    runs = 0
    for index, spec in enumerate(cells):
        metadata = {"slideshow": {"slide_type": spec["slide"]}}
        if spec["kind"] == "markdown":
            cell = new_markdown_cell(spec["source"], metadata=metadata)
        else:
            runs += 1
            cell = new_code_cell(spec["source"], metadata=metadata)
            if "expected" in spec:  # nbval compares only cells that ran in the reference
                cell.execution_count = runs
                cell.outputs = [new_output("stream", name="stdout", text=spec["expected"])]
        cell.id = f"{prefix}-{index:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def rendered(name: str) -> str:
    """The text of notebook ``name`` as built."""
    return nbformat.writes(build(NOTEBOOKS[name], name.split("_")[0])) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the notebooks, or with ``--check`` list the ones that differ from this file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook is missing or stale")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path, text = HERE / name, rendered(name)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    verb = "stale" if args.check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "notebooks up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
