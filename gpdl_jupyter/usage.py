"""What someone typing commands (the ``gpdl`` CLI, ``%gpdl``) reads: option spelling.

The backend's errors name the Python API's keywords (``pass if_exists='replace'``),
which is right for ``api.load_images(...)``; on the command line the same hint is
``--if-exists replace``. :func:`cli_spelling` rewrites the hints the backend
gives into the options' spelling where an error reaches a command-line user.
:func:`table_argument` is the ``argparse`` type of a table argument: an empty
name (``--validation ""``) is refused instead of meaning "no table".

Example::

    cli_spelling("table t already exists; pass if_exists='replace'")
    # "table t already exists; pass --if-exists replace"
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

__all__ = ["cli_spelling", "table_argument"]

# API keywords a backend message may start with -> their command-line options.
_OPTIONS = {
    "num_iterations": "--iterations", "metrics_compute_frequency": "--metrics-frequency",
    "buffer_size": "--buffer-size", "normalizing_const": "--normalizing-const",
    "threads": "--threads", "pred_type": "--pred-type",
    "k": "-k", "use_gpus": "--use-gpus", "warm_start": "--warm-start",
}

# (Python spelling, option spelling), applied in order. Bare names are rewritten
# only where a message starts with them ("buffer_size must ..."); batch_size only
# in the loader's words, since "batch_size must be an integer > 0" is a fit parameter.
_REWRITES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = tuple(
    (re.compile(pattern), replacement) for pattern, replacement in (
        (r"\bif_exists='(\w+)'((?: or '\w+')*)",
         lambda m: f"--if-exists {m.group(1)}" + m.group(2).replace("'", "")),
        (r"\bwarm_start=True\b", "--warm-start"),
        (r"\bwith use_gpus=False\b", "without --use-gpus"),
        (r"\buse_gpus=True\b", "--use-gpus"),
        (r"\bpass resize\b", "pass --resize H W"),
        (r"^resize must be \(height, width\) of", "--resize H W must be"),
        (r"\bpass mst_key\b", "pass --mst-key"),
        (r"^batch_size must be a positive integer", "--batch-size must be a positive integer"),
        (rf"^({'|'.join(_OPTIONS)})\b(?=:| must | was )", lambda m: _OPTIONS[m.group(1)]),
    )
)


def cli_spelling(message: str) -> str:
    """``message`` with the API's keyword hints spelled as command-line options.

    Example:
        >>> cli_spelling("model selection table m already exists; pass "
        ...              "if_exists='replace' or 'append'")
        'model selection table m already exists; pass --if-exists replace or append'
    """
    for pattern, replacement in _REWRITES:
        message = pattern.sub(replacement, message)
    return message


def table_argument(text: str) -> str:
    """The ``argparse`` type of a table name: the name as given, never empty.

    Raises:
        argparse.ArgumentTypeError: the name is empty or blank (argparse reports
            it as ``argument --validation: ...``).

    Example:
        >>> table_argument("train_packed")
        'train_packed'
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty table name: give a table, or leave the option out")
    return text
