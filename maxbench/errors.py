"""Errors that users can act on.

A :class:`UserInputError` carries one line that says what is wrong and what is allowed; the CLI
prints it and exits with status 2, without a traceback (DESIGN.md, "Errors users can act on").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserInputError(Exception):
    """Bad input from the user: a suite file, a name, an option. Exit status 2."""


def close_match_hint(word: str, choices: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" for the closest of ``choices``, or "" when none is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
