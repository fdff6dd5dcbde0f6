"""The one small error hierarchy of gpdl.

Server-side code raises these inside plpython; the client maps the server's
message back to the same class where it can (see ``client.errors_from_server``).
The Jupyter layer converts them to IPython ``UsageError`` only at the magic
boundary.
"""


class GpdlError(Exception):
    """Base class of every error gpdl raises on purpose."""


class UsageError(GpdlError):
    """The user asked for something invalid: bad name, bad option, bad input.

    Raised before any work starts, so nothing was written.
    """


class ImageDecodeError(GpdlError):
    """One file could not be read or decoded; the loader skips and records it."""


class UnitFailedError(GpdlError):
    """One unit of training work failed; ``retryable`` says whether to try again."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class FatalError(GpdlError):
    """Something is broken beyond what a retry can fix (server, install, data)."""
