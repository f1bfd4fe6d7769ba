"""The report document: ``report.md`` and a self-contained ``report.html`` (issue 5, point 6).

A :class:`Document` is a list of Markdown blocks (headings, paragraphs, bullet lists, tables,
figures). ``report.md`` refers to the figures by relative path (``figures/x.png``);
``report.html`` is the same Markdown rendered with markdown-it-py (a dependency of rich) with
every figure embedded as a base64 ``data:`` URI and the style sheet inline, so the one file can be
mailed or attached. Nothing time-dependent is written: the same inputs give the same bytes.

Self-contained means that opening report.html fetches nothing and runs nothing (issue 16): text
from the results is escaped where it enters the Markdown (:mod:`maxbench.report.markdown`), raw
HTML is rendered as text, and the HTML renderer keeps only the images that are the report's own
figures (as ``data:`` URIs) and renders every link as its text, without an address.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maxbench.report.markdown import escape_text
from maxbench.report.tables import ReportTable
from maxbench.results.atomic import write_text_atomic

__all__ = ["Document"]

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #1f2328; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfbfc; }
img { max-width: 100%; }
code { background: #f6f8fa; padding: 0.1em 0.3em; border-radius: 3px; }
h1, h2, h3 { border-bottom: 1px solid #d8dee4; padding-bottom: 0.2em; }
"""


@dataclass
class Document:
    """Markdown blocks in order, and the figures they show."""

    title: str
    blocks: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        """A heading (maxbench's own words)."""
        self.blocks.append("#" * level + " " + text)

    def paragraph(self, text: str) -> None:
        """A paragraph of Markdown: text from results in it must be escaped by the caller."""
        self.blocks.append(text)

    def bullets(self, items: list[str]) -> None:
        """A bullet list of Markdown items (escaped by the caller, see :meth:`paragraph`)."""
        if items:
            self.blocks.append("\n".join(f"- {item}" for item in items))

    def table(self, table: ReportTable, files: str | None = None) -> None:
        """The table's caption, the table, its notes, and where its files are (plain text)."""
        self.blocks.append(f"**{escape_text(table.title)}**")
        self.blocks.append(table.to_markdown().rstrip("\n"))
        notes = list(table.notes)
        if files:
            notes.append(files)
        if notes:
            self.blocks.append("\n".join(f"*{escape_text(note)}*  " for note in notes).rstrip())

    def figure(self, path: Path, relative: str, caption: str) -> None:
        """A figure at ``relative`` (from the report folder) with a caption (plain text)."""
        self.figures.append(path)
        caption = escape_text(caption)
        self.blocks.append(f"![{caption}]({relative})\n\n*{caption}*")

    def markdown(self) -> str:
        """The whole document as Markdown."""
        return f"# {escape_text(self.title)}\n\n" + "\n\n".join(self.blocks) + "\n"

    def html(self, folder: Path) -> str:
        """The document as one HTML page with the figures of ``folder`` embedded."""
        from markdown_it import MarkdownIt

        embedded = {
            path.relative_to(folder).as_posix(): "data:image/png;base64,"
            + base64.b64encode(path.read_bytes()).decode("ascii")
            for path in self.figures
        }
        renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
        renderer.add_render_rule("image", _own_figures_only(embedded))
        renderer.add_render_rule("link_open", _no_address)
        renderer.add_render_rule("link_close", _no_address)
        body = renderer.render(self.markdown())
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n{body}</body>\n</html>\n"
        )

    def write(self, folder: Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.html`` (report.md, report.html) into ``folder``."""
        markdown_path, html_path = folder / f"{stem}.md", folder / f"{stem}.html"
        write_text_atomic(markdown_path, self.markdown())
        write_text_atomic(html_path, self.html(folder))
        return markdown_path, html_path


def _own_figures_only(embedded: dict[str, str]) -> Any:
    """An image rule: a report figure becomes a ``data:`` image, any other image its alt text."""

    def render(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        data = embedded.get(str(token.attrGet("src")))
        if data is None:
            return html.escape(renderer.renderInlineAsText(token.children or [], options, env))
        token.attrSet("src", data)
        return renderer.image(tokens, idx, options, env)

    return render


def _no_address(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    """A link rule: nothing (the link's text stays, its address goes)."""
    return ""
