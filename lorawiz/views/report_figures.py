"""The figures of a training report: one metric over steps with several runs on the same axes, as inline SVG for
`lorawiz report`, and a run's loss curves as the PNG written beside it at the end of training. matplotlib's object
API, no pyplot (no global state, no display needed)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

LOSS_PNG_SOFTWARE = "lorawiz train"  # the PNG's Software text: the loss plot is the run's own file
# Runs keep one colour across every figure of a report (matplotlib's default cycle, colour-blind friendly enough
# and the one users know from TensorBoard exports).
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
           "tab:olive", "tab:cyan")
MAX_POINTS = 2000  # per line, as the dashboard keeps (lorawiz.train.monitor.MAX_TRAIN_POINTS): ~60 KiB of SVG
SVG_START = re.compile(r"<svg\b")
SVG_ID = re.compile(r'\bid="([^"]+)"')
SVG_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def metric_figure(runs: Sequence[tuple[str, Sequence[tuple[int, float]]]], ylabel: str, title: str,
                  log_scale: bool = False) -> Any:
    """One line per (run name, [(step, value)]); runs without points keep their colour slot but draw nothing."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 3.6), dpi=100, layout="constrained")
    axes = figure.subplots()
    for index, (name, points) in enumerate(runs):
        if points:
            _line(axes, points, colour(index), name, marker="." if len(points) < 60 else None)
    _finish(axes, ylabel, title, log_scale)
    return figure


def loss_figure(runs: Sequence[tuple[str, Mapping[str, Sequence[tuple[int, float]]]]], title: str,
                eval_label: str = "eval loss") -> Any:
    """Training loss (solid) and evaluation loss (dashed, circles) of each run, one colour per run."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.2), dpi=100, layout="constrained")
    axes = figure.subplots()
    several = len(runs) > 1
    for index, (name, series) in enumerate(runs):
        prefix = f"{name}: " if several else ""
        if series.get("loss"):
            _line(axes, series["loss"], colour(index), f"{prefix}train loss",
                  marker="." if len(series["loss"]) < 60 else None)
        if series.get("eval_loss"):
            _line(axes, series["eval_loss"], colour(index), f"{prefix}{eval_label}", marker="o", linestyle="--")
    _finish(axes, "loss", title, log_scale=False)
    return figure


def thinned(points: Sequence[tuple[int, float]], most: int = MAX_POINTS) -> Sequence[tuple[int, float]]:
    """Every k-th point (the last one kept) when there are more than `most`: a long run's page stays small."""
    if len(points) <= most:
        return points
    every = -(-len(points) // most)
    kept = list(points[::every])
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


def _line(axes: Any, points: Sequence[tuple[int, float]], colour_name: str, label: str, marker: str | None,
          linestyle: str = "-") -> None:
    points = thinned(points)
    axes.plot([step for step, _ in points], [value for _, value in points], linestyle=linestyle, marker=marker,
              markersize=4, linewidth=1.6, color=colour_name, label=label)


def _finish(axes: Any, ylabel: str, title: str, log_scale: bool) -> None:
    if log_scale:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.25)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)


def svg_text(figure: Any, prefix: str) -> str:
    """The figure as an <svg> element to inline in HTML: text kept as text (searchable, and the run names in the
    legend stay readable at any zoom), no XML prolog, no metadata, and every id prefixed so that several figures in
    one page never share one."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):  # the salt: same input, same ids
        figure.savefig(buffer, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    found = SVG_START.search(text)
    text = text[found.start():] if found else text
    text = SVG_ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    return SVG_REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)


def png_bytes(figure: Any, software: str = LOSS_PNG_SOFTWARE) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": software})
    return buffer.getvalue()
