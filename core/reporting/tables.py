"""The table model every report renderer shares (terminal, markdown, HTML): cells, tables, number format."""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Cell:
    text: str
    bad: bool = False  # a regression or failure: red in the terminal, marked in HTML/markdown
    strong: bool = False  # the best value in its column
    href: str | None = None  # HTML only: the cell links there


@dataclass
class TextTable:
    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    text_columns: int = 1  # leading columns that hold words (left-aligned); the rest hold numbers


def fmt(value: float | None) -> str:
    """Numbers at a precision people can read; None as an em dash."""
    if value is None:
        return "—"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 0.01 or size == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def rich_table(table: TextTable):
    from rich.table import Table
    from rich.text import Text

    out = Table(title=table.title, title_justify="left", show_lines=False)
    for i, header in enumerate(table.headers):
        if i < table.text_columns:
            out.add_column(header, justify="left", overflow="fold")
        else:
            # Numbers are never cut ("11212.…"): on a narrow terminal the words wrap instead.
            widest = max([len(header), *(len(row[i].text) for row in table.rows if i < len(row))])
            out.add_column(header, justify="right", no_wrap=True, min_width=widest)
    for row in table.rows:
        out.add_row(*(Text(c.text, style=("bold red" if c.bad else "bold green" if c.strong else "")) for c in row))
    return out


TEXT_COLUMN_MIN = 6  # words wrap down to this many characters a line


def _narrowest_width(table: TextTable) -> int:
    """The narrowest a table can print with every number whole: numeric columns at their widest cell,
    text columns folded, plus rich's padding (2 a column) and borders (columns + 1)."""
    widths = []
    for i, header in enumerate(table.headers):
        widest = max([len(row[i].text) for row in table.rows if i < len(row)] + [1])
        # Numeric columns keep their header whole too; text columns fold.
        widths.append(min(widest, TEXT_COLUMN_MIN) if i < table.text_columns else max(widest, len(header)))
    return sum(widths) + 2 * len(widths) + len(widths) + 1


def markdown_table(table: TextTable) -> str:
    def cell(c: Cell) -> str:
        text = c.text.replace("|", "\\|").replace("\n", " ")
        return f"**{text}** ⚠" if c.bad else f"**{text}**" if c.strong else text

    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(h.replace("|", "\\|") for h in table.headers) + " |",
        "|" + "|".join("---" if i < table.text_columns else "---:" for i in range(len(table.headers))) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


@contextmanager
def _at_least(console, width: int):
    """The console at least `width` columns wide while inside. Width and height are set together: rich
    ignores a width alone on a dumb terminal (TERM=dumb: emacs shells, some CI logs) and stays at 80."""
    before = console.size
    console.size = (max(before.width, width), before.height)
    try:
        yield
    finally:
        console.size = (before.width, before.height)


def print_table(console, table: TextTable) -> None:
    """Print on a rich console, wider than it when needed: a number is never cut to "2206…"."""
    with _at_least(console, _narrowest_width(table)):
        console.print(rich_table(table))


def render_text(tables: Sequence[TextTable], notes: Sequence[tuple[str, str]], fmt_name: str, color: bool) -> str:
    """Tables plus (style, line) notes as terminal text (rich) or markdown."""
    if fmt_name == "markdown":
        parts = [markdown_table(t) for t in tables]
        parts += (
            ["\n".join(f"- {'**' + style + '**: ' if style else ''}{line}" for style, line in notes) + "\n"]
            if notes
            else []
        )
        return "\n".join(parts)
    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, width=160 if not color else None, highlight=False)
    # Wider than the terminal rather than cut: a truncated number ("11212.…") is a wrong number.
    with _at_least(console, max((_narrowest_width(t) for t in tables), default=0)):
        for t in tables:
            console.print(rich_table(t))
        for style, line in notes:
            tag = {"warning": "yellow", "regression": "bold red"}.get(style, "")
            console.print(Text(f"{style}: " if style else "", style=tag) + Text(line))
    return buffer.getvalue()
