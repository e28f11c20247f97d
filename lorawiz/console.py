"""The one place that decides how lorawiz prints: rich in a terminal, plain text elsewhere.

Plain when stdout is not a terminal, TERM=dumb, CI is set, NO_COLOR is set, or `--plain` was given.
rich is imported on first use so that `lorawiz --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_forced_plain = False


def set_plain(plain: bool) -> None:
    """`--plain`: no colour, no live displays, one line per event."""
    global _forced_plain
    _forced_plain = plain


def is_plain(stream: Any = None) -> bool:
    stream = stream if stream is not None else sys.stdout
    if _forced_plain or os.environ.get("TERM") == "dumb" or os.environ.get("NO_COLOR"):
        return True
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return True
    isatty = getattr(stream, "isatty", None)
    return not (isatty and isatty())


def get_console(stderr: bool = False):
    """A rich Console for stdout (or stderr), set up for the current output; plain ones print no colour.

    Made per call (it is cheap) so that a redirected stream or a changed environment is always honoured.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    plain = is_plain(stream)
    return Console(
        stderr=stderr,
        no_color=plain,
        highlight=not plain,
        emoji=False,
        soft_wrap=False,
        width=None if not plain else max(100, _terminal_width()),
    )


def say(text: str, stderr: bool = False) -> None:
    """One line of plain text (no markup, no highlighting, never wrapped), on stdout or stderr."""
    stream = sys.stderr if stderr else sys.stdout
    if is_plain(stream):  # print() keeps tabs, which rich would expand to spaces
        print(text, file=stream)
    else:
        get_console(stderr).print(text, markup=False, highlight=False, soft_wrap=True)


def print_table(headers: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """A table: a rich Table in a terminal, tab-separated lines (easy to cut and grep) elsewhere."""
    console = get_console()
    if is_plain(sys.stdout):
        if title:
            say(title)
        for row in [headers, *rows]:
            say("\t".join(str(cell) for cell in row))
        return
    from rich.table import Table

    if title:  # a line of its own: a table's title wraps at the table's width
        console.print(title, style="bold", markup=False, highlight=False, soft_wrap=True)
    table = Table(header_style="bold")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def _terminal_width() -> int:
    try:
        return int(os.environ.get("COLUMNS", "0")) or 100
    except ValueError:
        return 100


def print_error(message: str, hint: str | None = None) -> None:
    """The funnel's output: `error: ...` and an indented hint, on stderr."""
    from rich.markup import escape

    console = get_console(stderr=True)
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        console.print(f"[dim]hint:[/] {escape(hint)}", soft_wrap=True)

