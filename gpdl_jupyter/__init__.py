"""gpdl for Jupyter: the ``%gpdl`` magics, the Python API and the widgets.

Example::

    %load_ext gpdl_jupyter
    %gpdl connect postgresql://gpdl@127.0.0.1:54329/gpdl

or, in plain Python::

    from gpdl_jupyter import api
    api.load_images("/data/train", "train_images")
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%gpdl`` / ``%%gpdl`` and make ``GpdlMagic`` settable by ``%config``.

    Also quiets TensorFlow's start-up log lines in the notebook (the client
    only builds Keras models to describe them; training runs in the
    database), unless ``TF_CPP_MIN_LOG_LEVEL`` / ``TF_ENABLE_ONEDNN_OPTS`` are set.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    from gpdl_jupyter.magics import GpdlMagic

    ipython.register_magics(GpdlMagic(shell=ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Forget the ``GpdlMagic`` instance (``%unload_ext gpdl_jupyter``)."""
    from gpdl_jupyter.magics import GpdlMagic

    ipython.configurables[:] = [c for c in ipython.configurables
                                if not isinstance(c, GpdlMagic)]
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("gpdl", None)
