"""Errors that users can act on.

A :class:`UserInputError` carries one line that says what is wrong and what is allowed; the CLI
prints it and exits with status 2, without a traceback (DESIGN.md, "Errors users can act on").
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class UserInputError(Exception):
    """Bad input from the user: a suite file, a name, an option. Exit status 2."""


def close_match_hint(word: str, choices: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" for the closest of ``choices``, or "" when none is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(message).split())


def exit_2_on_user_error(command: F) -> F:
    """A CLI command wrapper: a UserInputError becomes ``error: <one line>`` on stderr, exit 2.

    Shared by every module that registers Typer commands (they may not import ``maxbench.cli``);
    typer is imported lazily so that this ground module stays light.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import typer

        try:
            return command(*args, **kwargs)
        except UserInputError as err:
            typer.echo(f"error: {one_line(err)}", err=True)  # plain text, never markup
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
