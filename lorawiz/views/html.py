"""Small pieces of HTML for the report pages: every text that comes from a run goes through `esc`."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

# C0 controls other than tab and newline are not allowed in HTML (a tiny model's answers hold some): shown as U+FFFD.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(value: Any) -> str:
    """Text from a run (a file, a generation, a folder name) as HTML text or an attribute value."""
    return html.escape(CONTROL.sub("\ufffd", str(value)), quote=True)


def number_text(value: Any) -> str:
    """A metric as it reads in a table: 7.6414, 0.000200, 13,426, 2,097; text and None as they are."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "") -> str:
    """A table of escaped cells; a cell given as Markup is put in as it is."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell_html(c)}</td>" for c in row) + "</tr>" for row in rows)
    classes = f' class="{esc(css)}"' if css else ""
    return f"<table{classes}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Markup(str):
    """HTML made here (already escaped), to put into a table cell as it is."""


def cell_html(value: Any) -> str:
    if isinstance(value, Markup):
        return str(value)
    return esc(number_text(value) if isinstance(value, int | float) else "-" if value is None else value)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'
