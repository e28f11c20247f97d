"""`lorawiz report`: one HTML page with the curves, plans and evaluations of one or more training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel


@funnel
def report_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="Training run folders (lorawiz train's "
                                               "--output-dir); several are overlaid on the same axes.",
                                               show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="HTML", help="Where to write the page "
                                         "(replaced only when lorawiz report wrote it).")] = Path("report.html"),
) -> None:
    """Write a self-contained HTML report of training runs: open it in any browser, offline.

    Curves over steps (training and evaluation loss, learning rate, gradient norm, tokens/s and memory, as
    each run logged them; a series a run did not log is left out with a note), each run's plan and resolved
    configuration (lorawiz.yaml), the settings that differ between runs, and the results and sample answers
    of every `lorawiz eval` in the run folder (eval-*.json). Several runs share the axes, one colour each,
    named by their folders. The page needs no network: styles and plots (SVG) are inside it.

    \b
    Examples:
      lorawiz report outputs/my-run                          # writes report.html here
      lorawiz report outputs/r8 outputs/r16 -o compare.html  # two runs overlaid
      lorawiz report outputs/lorawiz-demo-* -o demos.html
    """
    from lorawiz.console import say
    from lorawiz.run_report import write_report

    result = write_report(runs, output)
    series = sorted({name for run in result.runs for name in run.series})
    evals = sum(len(run.evals) for run in result.runs)
    say(f"wrote {result.output} ({result.bytes_written / 1024:.0f} KiB): {len(result.runs)} run(s), "
        f"curves {', '.join(series) or 'none'}, {evals} eval file(s)")
