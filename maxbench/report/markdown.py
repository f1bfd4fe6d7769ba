"""Text from a results folder, made safe to put into the report's Markdown (issue 16).

Names, errors, hyperparameters, paths, reference sources and machine names come from files that
someone else may have written. Put verbatim into ``report.md`` they could become Markdown: a
``![x](https://...)`` image or a ``<https://...>`` autolink that a viewer fetches, a line break
that ends a table, a ``#`` that makes a heading. :func:`escape_text` writes any such text so that
it renders as itself; :func:`code_span` puts it into a code span that it cannot leave. The
HTML renderer (:mod:`maxbench.report.document`) drops any link and any image that is not one of
the report's own figures on top of this, so that ``report.html`` stays self-contained.
"""

from __future__ import annotations

import re

__all__ = ["Code", "code_span", "escape_text", "one_line"]

# Whitespace that would end a table row or a list item, and control characters.
_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f]")
# Characters that start inline Markdown: code, emphasis, links and images, autolinks and raw
# HTML, entities, GFM strike-through and table cells. A backslash escapes any of them.
_INLINE = re.compile(r"([\\`*\[\]<|~&])")
# "_" opens or closes emphasis only next to something that is not a letter or digit.
_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# What makes a block when it starts a line: heading, quote, list item, thematic break, setext.
_BLOCK_START = re.compile(r"^(#|>|[-+=]|\d+[.)])")


def one_line(text: object) -> str:
    """``text`` as one line: line breaks become a space, control characters go."""
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", str(text)))


def escape_text(text: object, line_start: bool = False) -> str:
    """``text`` as Markdown that renders as exactly that text, on one line.

    Args:
        text: Any text (its ``str()``), e.g. a run's error or an algorithm's name.
        line_start: The text begins a block (a paragraph or a list item), where ``#``, ``>``,
            ``-``, ``+``, ``=`` and ``1.`` would start a heading, a quote or a list.
    """
    escaped = _UNDERSCORE.sub(r"\\_", _INLINE.sub(r"\\\1", one_line(text)))
    if line_start:
        escaped = _BLOCK_START.sub(r"\\\1", escaped)
    return escaped


def code_span(text: object, in_table: bool = False) -> str:
    """``text`` as one code span that its content cannot end (CommonMark's backtick rule).

    The fence is one backtick longer than the longest run of backticks inside, with a space on
    each side when there are backticks inside; ``in_table`` escapes ``|`` (a GFM table cell ends
    at an unescaped ``|``, even inside a code span).
    """
    content = one_line(text)
    if not content.strip():
        return ""
    if in_table:
        content = content.replace("|", "\\|")
    runs = [len(run) for run in re.findall(r"`+", content)]
    fence = "`" * (max(runs, default=0) + 1)
    return f"{fence} {content} {fence}" if runs else f"{fence}{content}{fence}"


class Code(str):
    """A table cell shown as code (a hyperparameter dictionary): a code span in Markdown."""
