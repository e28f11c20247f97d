"""`lorawiz doctor`: is this machine ready to train? One line a check, and the fix for what is not."""

from __future__ import annotations

from typing import Annotated

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel

BROKEN_EXIT = 3
MARKS = {"ok": ("ok", "green"), "warning": ("warning", "yellow"), "broken": ("BROKEN", "bold red")}


@funnel
def doctor_command(
    as_json: opt.JsonOpt = False,
    output_dir: Annotated[str, typer.Option("--output-dir", "-o", help="Where runs will write (checked for free "
                                            "disk).")] = ".",
) -> None:
    """Check Python, packages, torch and CUDA, GPUs, bf16, 4-bit, speed-ups, disk, Hub token and logging.

    Each line has a mark (ok / warning / BROKEN) and, when not ok, the command that fixes it. Exit 3 when
    something required is broken. `--json` also carries this machine's hardware profile, which
    `lorawiz plan --hardware FILE` reads to plan for it from elsewhere.

    \b
    Examples:
      lorawiz doctor
      lorawiz doctor --json > gpu-box.json    # then, on a laptop: lorawiz plan --hardware gpu-box.json ...
    """
    from lorawiz.doctor import broken_required, report_json, run_checks

    checks, hardware = run_checks(output_dir)
    if as_json:
        import json

        typer.echo(json.dumps(report_json(checks, hardware), indent=2))
    else:
        from rich.text import Text

        from lorawiz.console import get_console, is_plain

        console = get_console()
        plain = is_plain()
        width = max(len(c.name) for c in checks)
        for check in checks:
            mark, style = MARKS[check.status]
            line = Text(f"{mark:<7} ", style=style)
            line.append(f"{check.name:<{width}}  {check.detail}")
            if check.fix:
                line.append(f"  -> {check.fix}", style="cyan")
            console.print(line, soft_wrap=plain)
        broken = broken_required(checks)
        console.print(Text(f"{len(broken)} required check(s) broken" if broken else "ready to train",
                           style="bold red" if broken else "bold green"))
    if broken_required(checks):
        raise typer.Exit(BROKEN_EXIT)
