"""Turning a ``%gpdl`` line and ``%%gpdl`` cell into arguments: pure functions, no database.

- :func:`substitute_words` splits a command line (or a cell body of options)
  into words like a shell, then fills each ``{{expression}}`` in from the
  notebook's namespace inside its word (Jinja expressions, undefined names
  refused), so a value is one argument and never options; :func:`substitute`
  fills in a whole text (a YAML or JSON cell body), as jupysql does.
- :func:`split_words` splits a command line like a shell; :func:`body_words`
  reads a cell body as more options, one or more per line, ``#`` comments allowed.
- :func:`parse_body` reads a YAML or Python-dict cell body (YAML's ``1e-3`` is
  a number here, as in YAML 1.2 and Python).
- :class:`CommandParser` is ``argparse`` that raises gpdl's ``UsageError``
  instead of exiting.

Example::

    words = substitute_words("load {{folder}} images", {"folder": "/my data"})
    # ['load', '/my data', 'images']
"""

from __future__ import annotations

import argparse
import ast
import itertools
import re
import shlex
from collections.abc import Mapping
from typing import Any, NoReturn

import yaml

from gpdl_backend.errors import UsageError

__all__ = [
    "CommandParser",
    "HelpShown",
    "body_words",
    "parse_body",
    "split_words",
    "substitute",
    "substitute_words",
]


class HelpShown(Exception):
    """``--help`` printed the help: the command has nothing else to do."""


class CommandParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose mistakes raise ``UsageError`` (one line), never exit.

    Example:
        >>> parser = CommandParser(prog="%gpdl stop")
        >>> _ = parser.add_argument("output")
        >>> parser.parse_args([])
        Traceback (most recent call last):
        gpdl_backend.errors.UsageError: %gpdl stop: the following arguments are required: output
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(f"{self.prog}: {message.strip()}")
        raise HelpShown()


_UNDEFINED = re.compile(r"'(.+)' is undefined")


def substitute(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{{expression}}`` with its value in ``namespace`` (Jinja, like jupysql).

    Text without ``{{`` is returned as it is.

    Raises:
        UsageError: an undefined name or a malformed template.

    Example:
        >>> substitute("load {{folder}}/train", {"folder": "/data"})
        'load /data/train'
    """
    if "{{" not in text:
        return text
    return _render(text, namespace)


_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.S)
_MARKED = re.compile(r"\x00(\d+)\x00")  # where an expression stood, while splitting


def substitute_words(text: str, namespace: Mapping[str, Any],
                     comments: bool = False) -> list[str]:
    """Split ``text`` into words, then fill each ``{{expression}}`` in as part of its word.

    A value never adds words: ``{{t}}`` with ``t = "x --if-exists replace"`` is
    the one word ``x --if-exists replace``, not an option. A word that a value
    begins cannot be an option either (``-1`` and other numbers are fine).

    Args:
        text: a command line, or a cell body of more options.
        namespace: the notebook's variables.
        comments: ``#`` starts a comment (cell bodies). Defaults to False.

    Raises:
        UsageError: an undefined name, a malformed template, ``{% ... %}``
            (it would write words), a value that reads as an option, or
            unbalanced quotes.

    Example:
        >>> substitute_words("load {{folder}} t", {"folder": "/my data"})
        ['load', '/my data', 't']
    """
    if "{%" in text:
        raise UsageError("only {{expression}} is filled in on a %gpdl line, not {% ... %}")
    expressions = [match.group(0) for match in _EXPRESSION.finditer(text)]
    numbers = itertools.count()
    marked = _EXPRESSION.sub(lambda _match: f"\x00{next(numbers)}\x00", text)
    try:
        words = shlex.split(marked, comments=comments, posix=True)
    except ValueError as error:
        raise UsageError(f"cannot split {text.strip()!r}: {error}") from error

    rendered: dict[int, str] = {}

    def value(mark: re.Match[str]) -> str:  # only the expressions left in words (not comments)
        index = int(mark.group(1))
        if index not in rendered:  # each expression is evaluated once
            rendered[index] = _render(expressions[index], namespace)
        return rendered[index]

    filled = []
    for word in words:
        first = _MARKED.match(word)
        if first and _looks_like_option(value(first)):
            raise UsageError(f"{expressions[int(first.group(1))]} gave {value(first)!r}, which "
                             "reads as an option: a value fills in one argument; write "
                             "options in the line itself")
        filled.append(_MARKED.sub(value, word))
    return filled


def _looks_like_option(value: str) -> bool:
    if not value.startswith("-"):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _render(text: str, namespace: Mapping[str, Any]) -> str:
    """Render a Jinja template with the notebook's variables (undefined names refused)."""
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True, autoescape=False)
    try:
        return environment.from_string(text).render(dict(namespace))
    except jinja2.UndefinedError as error:
        match = _UNDEFINED.search(str(error))
        name = match.group(1) if match else str(error)
        raise UsageError(f"{{{{{name}}}}}: no variable {name!r} in the notebook") from error
    except jinja2.TemplateError as error:
        raise UsageError(f"cannot fill in {{{{...}}}}: {error}") from error


def split_words(line: str) -> list[str]:
    """Split a command line like a POSIX shell (quotes group words).

    Example:
        >>> split_words("load '/my data' images --resize 32 32")
        ['load', '/my data', 'images', '--resize', '32', '32']
    """
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as error:
        raise UsageError(f"cannot split {line.strip()!r}: {error}") from error


def body_words(body: str) -> list[str]:
    """A cell body read as more words of the command; ``#`` starts a comment.

    Example:
        >>> body_words("--resize 32 32   # small\\n--if-exists replace\\n")
        ['--resize', '32', '32', '--if-exists', 'replace']
    """
    try:
        return shlex.split(body, comments=True, posix=True)
    except ValueError as error:
        raise UsageError(f"cannot split the cell body: {error}") from error


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as a float (YAML 1.2, Python), not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                 |[0-9][0-9_]*[eE][-+]?[0-9]+
                 |\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$""", re.X),
    list("-+0123456789."),
)


def parse_body(body: str, what: str = "cell body") -> dict[str, Any]:
    """A YAML mapping or a Python dict literal, as a dict (empty body: ``{}``).

    Python literals are tried first when the body starts with ``{`` (they
    allow ``True``, ``None`` and tuples); anything else is YAML (JSON too).

    Raises:
        UsageError: neither parses, or the result is not a mapping.

    Example:
        >>> parse_body("fit:\\n  batch_size: [64, 128]\\nlr: 1e-3")
        {'fit': {'batch_size': [64, 128]}, 'lr': 0.001}
    """
    text = body.strip()
    if not text:
        return {}
    value: Any = None
    parsed = False
    if text.startswith("{"):
        try:
            value, parsed = ast.literal_eval(text), True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            parsed = False
    if not parsed:
        try:
            value = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise UsageError(f"the {what} is neither YAML nor a Python dict: "
                             f"{problem}{where}") from error
    if not isinstance(value, Mapping):
        raise UsageError(f"the {what} must be a mapping (YAML keys or a Python dict), "
                         f"not {type(value).__name__}")
    return dict(value)
