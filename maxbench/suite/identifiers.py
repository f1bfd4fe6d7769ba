"""Names that become folders: one rule for every one of them, and a check that paths stay put.

A suite's ``name`` (or its file's stem), each algorithm key and each environment's folder name
(its ``label``, or the name derived from its id) become path components of a cell's results
folder ``<out>/<suite>/<algo>/<env>/seed_<n>``. A name such as ``../escaped``, ``/tmp/x``, one
with a trailing newline or with rich markup (``x[/]``) must never get that far: it could write
outside ``--out`` or break the one-line error promise. So every such name passes
:func:`identifier_problem` first, and :func:`check_inside` checks the folder itself as a second
line of defence.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from maxbench.errors import UserInputError

MAX_LENGTH = 128
# The first character is a letter or digit, so '.', '..', '-x' and absolute paths cannot match;
# \Z (not $) so that a trailing newline does not slip through.
_IDENTIFIER = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.+=-]{{0,{MAX_LENGTH - 1}}}\Z")
RULE = (
    "a name becomes a folder: letters, digits and _ . + = - only, starting with a letter or digit"
    f", at most {MAX_LENGTH} characters"
)


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a string that may be a results folder name."""
    return isinstance(value, str) and _IDENTIFIER.match(value) is not None


def describe_name(what: str, value: object) -> str:
    """``what 'value': RULE`` with the value shown safely (control characters escaped, short)."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{what} {shown}: {RULE}"


def check_identifier(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a valid folder name; else raise :class:`UserInputError`."""
    if not is_identifier(value):
        raise UserInputError(describe_name(what, value))
    return value


def _validate_identifier(value: str) -> str:
    """Pydantic hook: the error type 'identifier' carries the whole message."""
    if not is_identifier(value):
        raise PydanticCustomError("identifier", describe_name("name", value))
    return value


# A string field of a suite model that becomes a folder name.
Identifier = Annotated[str, AfterValidator(_validate_identifier)]


def check_inside(folder: Path, out: Path) -> Path:
    """Return ``folder`` if it lies lexically under ``out``; else raise UserInputError.

    Lexical (``os.path.normpath``), not ``resolve()``: a results folder that is a symbolic link
    to another disk is legitimate, a ``..`` component is not.
    """
    base = os.path.normpath(os.fspath(out))
    target = os.path.normpath(os.fspath(folder))
    inside = target != base and (
        base in (os.curdir, "") and not _leaves_cwd(target) or target.startswith(_with_sep(base))
    )
    if not inside:
        raise UserInputError(f"the folder {target!r} would lie outside the results folder {base!r}")
    return folder


def _with_sep(path: str) -> str:
    return path if path.endswith(os.sep) else path + os.sep


def _leaves_cwd(path: str) -> bool:
    """For ``out`` = '.': a normalised path that is absolute or starts with '..' leaves it."""
    return os.path.isabs(path) or path == os.pardir or path.startswith(os.pardir + os.sep)
