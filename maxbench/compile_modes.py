"""The ``compile`` option in words, for tables (issue 14); imports nothing heavy, so the results
loader can name a run's compile mode without importing torch."""

from __future__ import annotations

__all__ = ["compile_label"]


def compile_label(value: object) -> str:
    """A ``compile`` option in words: "eager" (off or unset), "inductor" (``True``, torch's
    default backend) or the backend named."""
    if value is True:
        return "inductor"
    return value if isinstance(value, str) and value else "eager"
