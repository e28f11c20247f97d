"""`lorawiz report` as a library call, and the loss plot a training run leaves beside its outputs.

write_report reads run folders (lorawiz.run_history), renders one self-contained page (lorawiz.views.report_html)
and writes it atomically, replacing only a page lorawiz report wrote. write_loss_plot is called at the end of
training: cheap, and it never fails a finished run (a warning line instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError

LOSS_PLOT = "loss.png"  # in lorawiz.ownership.RUN_CONTENTS: the run's own file
logger = logging.getLogger(__name__)


@dataclass
class ReportResult:
    output: Path
    runs: list[Any]  # lorawiz.run_history.RunHistory, in the order given
    bytes_written: int


def write_report(folders: Sequence[Path], output: Path, generated: str | None = None) -> ReportResult:
    """Read each run folder and write the page to `output`. Refused before anything is read: a folder given twice,
    an output that is a folder, inside a run, in a missing or unwritable folder, or a file lorawiz report did
    not write."""
    from lorawiz import __version__
    from lorawiz.data.writers import atomic_output
    from lorawiz.ownership import REPORT_HEADER, check_report_output
    from lorawiz.run_history import read_run, run_names
    from lorawiz.views.report_html import render_report_html

    if not folders:
        raise LorawizError("no run folder given.", hint="Name one or more runs: lorawiz report outputs/my-run.")
    _check_distinct(folders)
    check_report_output(output)
    runs = [read_run(folder, name) for folder, name in zip(folders, run_names(folders), strict=True)]
    page = render_report_html(runs, generated or time.strftime("%Y-%m-%d %H:%M %Z"), __version__,
                              first_line=REPORT_HEADER)
    data = page.encode("utf-8")
    with atomic_output(output, overwrite=True, binary=True) as handle:
        handle.write(data)
    return ReportResult(output, runs, len(data))


def _check_distinct(folders: Sequence[Path]) -> None:
    seen: dict[Path, Path] = {}
    for folder in folders:
        key = Path(folder).resolve()
        if key in seen:
            raise LorawizError(f"{folder} is given twice (as {seen[key]} too).",
                               hint="Name each run once; the report overlays different runs.")
        seen[key] = Path(folder)


def write_loss_plot(output_dir: Path, log_history: Iterable[Mapping[str, Any]]) -> Path | None:
    """RUN/loss.png: the run's training and evaluation loss over steps. Returns its path, or None when there was
    nothing to plot or it could not be written: then a warning line says why, and the run still counts as done."""
    try:
        from lorawiz.run_history import series_from_log_history

        series, metric = series_from_log_history(log_history)
        if not series.get("loss") and not series.get("eval_loss"):
            return None
        from lorawiz.data.writers import atomic_output
        from lorawiz.views.report_figures import loss_figure, png_bytes

        title = f"{Path(output_dir).resolve().name}: loss over steps"
        data = png_bytes(loss_figure([(Path(output_dir).name, series)], title, metric.replace("_", " ")))
        path = Path(output_dir) / LOSS_PLOT
        with atomic_output(path, overwrite=True, binary=True) as handle:
            handle.write(data)
        return path
    except Exception as exc:  # a plot is a convenience: a finished run never fails for it
        logger.warning("could not write %s in %s (%s: %s); the run itself is complete.", LOSS_PLOT, output_dir,
                       type(exc).__name__, exc)
        return None
