"""What the server's Python sees: versions, CPUs, GPUs (runs inside the server)."""

from __future__ import annotations

import os
import platform
import pwd
import socket
import sys
from importlib import metadata


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def collect(with_tensorflow: bool = True) -> dict:
    """Versions and resources as seen by this server process.

    Args:
        with_tensorflow: also import TensorFlow (a few seconds the first time
            in a backend) to report its version and GPUs. Defaults to True.
    """
    import numpy
    import PIL

    import gpdl_backend

    info = {
        "host": socket.gethostname(),
        "os_user": pwd.getpwuid(os.geteuid()).pw_name,
        "python": platform.python_version(),
        "executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "gpdl_backend": gpdl_backend.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": _version("keras"),
        "fsspec": _version("fsspec"),
        "s3fs": _version("s3fs"),
        "gpus": [],
    }
    if with_tensorflow:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
        info["gpus"] = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    return info
