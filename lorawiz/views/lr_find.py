"""`lorawiz lr-find`'s result as the terminal shows it: the settings swept, the loss against the learning rate drawn
in the terminal (braille dots; plain characters when the output is not a terminal), the rules' rates and the next
step. The PNG of the same curve is lorawiz.views.lr_figure's."""

from __future__ import annotations

import math
from typing import Any

WIDTH, HEIGHT = 64, 14  # character cells of the plot
# braille dot bits by (column, row) within a cell of 2 x 4 dots (Unicode's braille patterns, U+2800)
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


def loss_range(rates: list[float], losses: list[float], smoothed: list[float]) -> tuple[float, float]:
    """The loss axis: from the lowest loss to a quarter above where the smoothed loss starts (a diverging end
    would squash the rest of the curve to a line), or to the highest loss when that is lower."""
    finite = [loss for loss in losses + smoothed if math.isfinite(loss)]
    low, high = min(finite), max(finite)
    start = next(s for s in smoothed if math.isfinite(s))
    high = min(high, start + 0.25 * max(start - low, abs(start) * 0.05))
    return low, high if high > low else low + 1.0


def plot_lines(rates: list[float], losses: list[float], smoothed: list[float], marks: dict[str, float],
               plain: bool, width: int = WIDTH, height: int = HEIGHT) -> list[tuple[str, list[tuple[int, str]]]]:
    """The plot as rows of text, each with the (column, style) of its coloured cells. The smoothed loss is drawn
    as a line, the raw loss as dots; `marks` are vertical lines at named rates ("suggested", "configured")."""
    dots_x, dots_y = (1, 1) if plain else (2, 4)
    cols, rows = width * dots_x, height * dots_y
    low_x, high_x = math.log10(rates[0]), math.log10(rates[-1]) if rates[-1] > rates[0] else math.log10(rates[0]) + 1
    low_y, high_y = loss_range(rates, losses, smoothed)

    def at(rate: float, loss: float) -> tuple[int, int]:
        x = round((math.log10(rate) - low_x) / (high_x - low_x) * (cols - 1))
        y = round((min(max(loss, low_y), high_y) - low_y) / (high_y - low_y) * (rows - 1))
        return min(max(x, 0), cols - 1), rows - 1 - y

    raw = [[False] * cols for _ in range(rows)]
    line = [[False] * cols for _ in range(rows)]
    for rate, loss in zip(rates, losses, strict=True):
        if math.isfinite(loss):
            x, y = at(rate, loss)
            raw[y][x] = True
    points = [at(r, s) for r, s in zip(rates, smoothed, strict=True) if math.isfinite(s)]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        for t in range(max(abs(x1 - x0), abs(y1 - y0)) + 1):  # a connected line between neighbouring points
            f = t / max(1, abs(x1 - x0), abs(y1 - y0))
            line[round(y0 + f * (y1 - y0))][round(x0 + f * (x1 - x0))] = True
    if points:
        line[points[0][1]][points[0][0]] = True
    columns = {name: min(max(round((math.log10(rate) - low_x) / (high_x - low_x) * (width - 1)), 0), width - 1)
               for name, rate in marks.items() if rate and rate > 0}
    out = []
    for row in range(height):
        text, styles = [], []
        for col in range(width):
            cell = [(dx, dy) for dx in range(dots_x) for dy in range(dots_y)]
            on_line = [d for d in cell if line[row * dots_y + d[1]][col * dots_x + d[0]]]
            on_raw = [d for d in cell if raw[row * dots_y + d[1]][col * dots_x + d[0]]]
            mark = next((name for name, c in columns.items() if c == col), None)
            if plain:
                char = "*" if on_line else "." if on_raw else ("|" if mark == "suggested" else ":") if mark else " "
            elif on_line or on_raw:
                char = chr(0x2800 + sum(_DOTS[dx][dy] for dx, dy in set(on_line + on_raw)))
            else:
                char = ("│" if mark == "suggested" else "┆") if mark else " "
            text.append(char)
            if on_line:
                styles.append((col, "cyan"))
            elif on_raw:
                styles.append((col, "bright_black"))
            elif mark:
                styles.append((col, "green" if mark == "suggested" else "yellow"))
        out.append(("".join(text), styles))
    return out


def _axis(rates: list[float], width: int) -> str:
    """The rate axis: a label at each power of ten that fits."""
    low, high = math.log10(rates[0]), math.log10(rates[-1])
    axis = [" "] * (width + 8)
    for power in range(math.ceil(low), math.floor(high) + 1):
        col = round((power - low) / (high - low) * (width - 1)) if high > low else 0
        label = f"1e{power:+d}" if power else "1"
        if all(c == " " for c in axis[col:col + len(label) + 1]):
            axis[col:col + len(label)] = label
    return "".join(axis).rstrip()


def render_lr_find(result: Any, plain: bool) -> Any:
    """The whole report, as one Rich renderable (plain lines when `plain`)."""
    from rich.console import Group
    from rich.text import Text

    from lorawiz.lr_range import RULES

    sweep, settings = result.sweep, result.settings
    lines: list[Any] = []
    say = lines.append
    say(Text(f"swept {len(sweep.rates)} optimizer steps, learning rate {sweep.start:.0e} -> {sweep.rates[-1]:.1e} "
             f"exponentially ({result.seconds:.0f} s, {result.backend} backend), with the run's settings: "
             f"micro-batch {settings['per_device_train_batch_size']} x {settings['gradient_accumulation_steps']} "
             f"accumulation, max_seq_length {settings['max_seq_length']}, rank {settings['lora_r']} / alpha "
             f"{settings['lora_alpha']}, {settings['optim']}" + (", 4-bit base" if settings["load_in_4bit"] else "")
             + "; the adapter freshly initialised, nothing saved."))
    for note in result.notes:
        say(Text(f"changed to run here: {note}"))
    if sweep.stopped:
        say(Text(f"stopped early: {sweep.stopped}."))
    marks = {"suggested": result.suggested_rate, "configured": result.configured}
    low_y, high_y = loss_range(sweep.rates, sweep.losses, sweep.smoothed)
    rows = plot_lines(sweep.rates, sweep.losses, sweep.smoothed, marks, plain)
    say(Text("loss"))
    for index, (row, styles) in enumerate(rows):
        label = f"{high_y:7.3g} " if index == 0 else f"{low_y:7.3g} " if index == len(rows) - 1 else " " * 8
        text = Text(label + row)
        for col, style in ([] if plain else styles):
            text.stylize(style, 8 + col, 9 + col)
        say(text)
    say(Text(" " * 8 + _axis(sweep.rates, WIDTH) + "   learning rate (log)"))
    key = ("* smoothed loss  . loss each step  | suggested  : configured" if plain else
           "line: smoothed loss, grey dots: loss each step, green │ suggested, yellow ┆ configured")
    say(Text(" " * 8 + key))
    if not result.found:
        say(Text("no suggestion: the sweep ended before the loss had a curve to read (see above); try a lower "
                 "--end-lr or more --steps."))
        return Group(*lines)
    for name, found in result.found.items():
        chosen = "  <- suggested" if found.rule == "valley" else ""
        say(Text(f"  {name:<9} {found.rate:.1e}   {RULES[name]}{chosen}"))
    say(Text(f"suggested learning rate: {result.suggested_rate:.1e} (valley rule); the run is configured with "
             f"{result.configured:.1e} ({result.configured_source})."))
    return Group(*lines)
