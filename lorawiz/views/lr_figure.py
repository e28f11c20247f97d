"""`lorawiz lr-find`'s curve as a figure for a PNG: the loss each step and its smoothed line against the learning
rate (log scale), with the suggested and the configured rates marked. matplotlib's object API, no pyplot (no global
state, no display needed)."""

from __future__ import annotations

import math
from typing import Any

SOFTWARE = "lorawiz lr-find"  # the PNG's Software text: how lr-find knows a plot is its own to replace


def lr_figure(result: Any) -> Any:
    from matplotlib.figure import Figure

    from lorawiz.views.lr_find import loss_range

    sweep = result.sweep
    figure = Figure(figsize=(8, 5), dpi=120, layout="constrained")
    axes = figure.subplots()
    finite = [(r, loss) for r, loss in zip(sweep.rates, sweep.losses, strict=True) if math.isfinite(loss)]
    axes.plot([r for r, _ in finite], [loss for _, loss in finite], ".", color="0.6", markersize=4,
              label="loss each step")
    axes.plot(sweep.rates, sweep.smoothed, "-", color="tab:blue", linewidth=2, label="smoothed loss")
    if result.suggestion is not None:
        axes.axvline(result.suggested_rate, color="tab:green", linewidth=1.5,
                     label=f"suggested {result.suggested_rate:.1e} (valley)")
        steep = result.found.get("steepest")
        if steep is not None:
            axes.plot([steep.rate], [steep.loss], "o", color="tab:red", label=f"steepest {steep.rate:.1e}")
    if result.configured:
        axes.axvline(result.configured, color="tab:orange", linestyle="--", linewidth=1.2,
                     label=f"configured {result.configured:.1e}")
    low, high = loss_range(sweep.rates, sweep.losses, sweep.smoothed)
    axes.set_ylim(low - 0.03 * (high - low), high + 0.03 * (high - low))
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    model = result.settings.get("model_name_or_path", "")
    axes.set_title(f"lorawiz lr-find: {model}, {len(sweep.rates)} steps" + (f" (stopped: {sweep.stopped})"
                                                                            if sweep.stopped else ""), fontsize=9)
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=8)
    return figure


def png_bytes(figure: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": SOFTWARE})
    return buffer.getvalue()
