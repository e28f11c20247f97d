"""`config show`: a table of section, key, value and source; auto values marked as the recommender's. Pure."""

from __future__ import annotations

from typing import Any


def render_config(resolved: Any, plain: bool) -> Any:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from lorawiz.config.schema import KNOBS, format_value

    table = Table(box=None if plain else box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", style="dim")
    for section, values in resolved.as_dict().items():
        table.add_row(f"[bold]{section}[/]", "", "")
        for name, value in values.items():
            source = resolved.source(name).label
            if value is None and KNOBS[name].auto:
                shown, source = "[yellow]auto[/]", f"{source} (recommender)"
            else:
                shown = escape(format_value(value))
            table.add_row(f"  {name}", shown, escape(source))
    return table
