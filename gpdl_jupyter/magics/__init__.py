"""The ``%gpdl`` / ``%%gpdl`` magics (``%load_ext gpdl_jupyter``)."""

from gpdl_jupyter.magics.magic import GpdlMagic

__all__ = ["GpdlMagic"]
