"""How `harmony` prints a listing: a table sized to the terminal when standard output is one; full,
unwrapped, tab-separated rows (header first) when it is piped, so `grep`, `cut -f` and `sort` work."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

ELLIPSIS = "…"
WRAP_MIN_WIDTH = 16  # a wrapped column is not squeezed below this (or its longest cell)


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters, the cut marked with "…" (never cut silently)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _plain(value: Any) -> str:
    """One cell of a piped row: no tab or newline may split it."""
    text = "" if value is None else str(value)
    return " ".join(text.replace("\t", " ").splitlines())


def tab_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True) -> list[str]:
    lines = ["\t".join(columns)] if header else []
    lines += ["\t".join(_plain(cell) for cell in row) for row in rows]
    return lines


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
               no_wrap: Sequence[str] = (), ellipsis: Sequence[str] = (), console=None,
               header: bool = True) -> None:
    """A rich table in a terminal, fitted to its width: `no_wrap` columns are never folded, `ellipsis`
    columns keep one line and end in "…" when cut. Piped: tab rows, nothing cut."""
    if console is None and not is_terminal():
        for line in tab_rows(columns, rows, header=header):
            print(line)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    texts = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max([len(column)] + [len(row[i]) for row in texts]) for i, column in enumerate(columns)]
    # Rich crops a one-line column at the table's edge without a mark: cut those cells here, with "…".
    room = console.width - 3 * len(columns) - 1 - sum(w for c, w in zip(columns, widths) if c not in ellipsis)
    share = max(room // max(len(ellipsis), 1), 8)
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left")
    for index, column in enumerate(columns):
        longest = max((len(str(row[index] or "")) for row in rows), default=0)
        if column in ellipsis:  # one line, shortened with "…" to the room the other columns leave
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        elif column in no_wrap:  # ids, times, counts: kept whole
            table.add_column(column, no_wrap=True, min_width=max(longest, len(column)) or None)
        else:
            # Wrapped at words (a cut word ends in "…"); a long text keeps a readable width of its own.
            table.add_column(column, min_width=min(longest, WRAP_MIN_WIDTH) or None)
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text)
                        else Text(shorten("" if cell is None else str(cell), share) if column in ellipsis
                                  else "" if cell is None else str(cell))
                        for column, cell in zip(columns, row)))
    console.print(table)


class Ambiguous(ValueError):
    """A name that fits several rows; the message lists them."""


def find_by_name(text: str, rows: Sequence[dict], key: str, names: Sequence[str]) -> dict | None:
    """The row whose `key` is `text`, else the one whose name (any of the `names` fields, compared without
    case) is `text`; None when nothing fits, Ambiguous (listing the candidates) when several do."""
    wanted = text.strip()
    for row in rows:
        if str(row[key]) == wanted:
            return row
    folded = wanted.casefold()
    matches = [row for row in rows if any(str(row.get(n) or "").casefold() == folded for n in names)]
    if len(matches) > 1:
        described = "; ".join(f"{row.get(names[0]) or '?'} ({row[key]})" for row in matches)
        raise Ambiguous(f"{wanted!r} names {len(matches)} entries: {described}; give the id")
    return matches[0] if matches else None
