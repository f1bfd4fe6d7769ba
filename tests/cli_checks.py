"""The CLI's bad-input contract, checked the same way by every CLI test (README, Commands).

Bad input is answered with exit status 2, one line of text starting ``error:``, no traceback,
and (``on_stderr``) nothing on stdout.
"""

from __future__ import annotations

from click.testing import Result


def bad_input_message(result: Result, on_stderr: bool = True) -> str:
    """Check the bad-input contract on ``result``; return its single line of error text."""
    output = result.output  # stdout and stderr together
    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line of error text, got:\n{output}"
    if on_stderr:
        assert result.stdout.strip() == "", "the error belongs on stderr"
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]
