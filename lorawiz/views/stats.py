"""`lorawiz inspect`'s figures: a summary table and a length histogram; pure."""

from __future__ import annotations

from typing import Any

BAR_WIDTH = 40


def summary_rows(stats: Any) -> list[tuple[str, str]]:
    """The figures as (label, value) pairs, in reading order."""
    rows = [("file", stats.file), ("shape", f"{stats.shape} ({stats.shape_reason})"), ("rows", f"{stats.rows:,}")]
    bad = sum(entry["count"] for entry in stats.bad_rows.values())
    if bad:
        kinds = "; ".join(f"{kind}: {e['count']} (line {', '.join(map(str, e['lines']))}"
                          f"{', ...' if e['count'] > len(e['lines']) else ''})" for kind, e in stats.bad_rows.items())
        rows.append(("bad rows", f"{bad:,}, not counted below: {kinds}"))
    rows.append(("empty rows", f"{stats.empty_rows:,}"))
    dup = stats.duplicates
    rows.append(("duplicates", f"{dup['identical'] + dup['near']:,} ({dup['identical']:,} identical, "
                               f"{dup['near']:,} differing only in case or whitespace)"))
    if stats.turns:
        t = stats.turns
        rows.append(("turns per row", f"min {t['min']}, median {t['p50']}, mean {t['mean']}, max {t['max']}"))
        roles = ", ".join(f"{role} {count:,}" for role, count in stats.roles.items())
        rows.append(("roles", f"{roles}; {stats.rows_with_system:,} rows have a system prompt"))
    length = stats.length
    if length and stats.rows:
        rows.append((f"length ({length.unit})", f"p50 {length.p50:,}, p90 {length.p90:,}, p95 {length.p95:,}, "
                                                f"p99 {length.p99:,}, max {length.max:,}, mean {length.mean:,}"))
        rows.append(("measured with", length.method))
        at = "given" if stats.max_seq_length_given else "suggested"
        rows.append((f"truncated at {stats.max_seq_length:,}", f"{stats.truncated_rows:,} rows "
                                                              f"({stats.truncated_share:.1%}; {at} length)"))
        limit = f"; model limit {stats.model_limit:,}" if stats.model_limit else ""
        rows.append(("suggested max_seq_length", f"{stats.suggested_max_seq_length:,} ({stats.suggestion_reason}"
                                                 f"{limit})"))
    return rows


def render_stats(stats: Any, plain: bool) -> Any:
    """A pure function of the stats: a Rich renderable (plain text when `plain`)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if plain:
        parts.extend(Text(f"{label}: {value}") for label, value in summary_rows(stats))
    else:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for label, value in summary_rows(stats):
            table.add_row(label, value)
        parts.append(table)
    if stats.histogram and stats.rows:
        parts.append(Text(f"\nrows by length ({stats.length.unit}); bins past {stats.max_seq_length:,} are truncated"))
        parts.extend(_histogram_lines(stats, plain))
    return Group(*parts)


def _histogram_lines(stats: Any, plain: bool) -> list[Any]:
    from rich.text import Text

    bins = stats.histogram
    most = max(b["rows"] for b in bins) or 1
    label_width = max(len(f"{b['from']:,}-{b['to'] - 1:,}") for b in bins)
    lines = []
    for b in bins:
        label = f"{b['from']:,}-{b['to'] - 1:,}".rjust(label_width)
        size = round(BAR_WIDTH * b["rows"] / most)
        bar = ("#" if plain else "█") * size or ("" if b["rows"] == 0 else ("#" if plain else "▏"))
        cut = b["from"] > stats.max_seq_length
        line = Text(f"{label} | ")
        line.append(bar.ljust(BAR_WIDTH), style="red" if cut else "green")
        line.append(f" {b['rows']:,}" + (" (truncated)" if cut else ""))
        lines.append(line)
    return lines
