"""`lorawiz lr-find`: a learning-rate range test on the run's own model, data and settings, with a suggested rate."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel


@opt.every_knob_as_flag
@funnel
def lr_find_command(
    config: opt.ConfigArg = None,
    preset: opt.PresetOpt = None,
    set_: opt.SetOpt = None,
    start_lr: Annotated[float, typer.Option("--start-lr", metavar="RATE", help="The sweep's first rate.")] = 1e-7,
    end_lr: Annotated[float, typer.Option("--end-lr", metavar="RATE", help="The sweep's last rate (it stops "
                                          "earlier when the loss diverges).")] = 10.0,
    steps: Annotated[int, typer.Option("--steps", metavar="N", help="Optimizer steps in the sweep, each at a "
                                       "higher rate.")] = 100,
    plot: Annotated[Path, typer.Option("--plot", metavar="PNG", help="Where to save the plot (replaced only when "
                                       "lr-find wrote it).")] = Path("lr_find.png"),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Save no PNG.")] = False,
    write: Annotated[Path | None, typer.Option("--write", metavar="CONFIG", help="Put the suggested rate into "
                                               "CONFIG: its learning_rate line changed (nothing else), or a new "
                                               "config of the settings given here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the curve and the suggestions as one JSON "
                                          "object.")] = False,
    backend: Annotated[str, typer.Option("--backend", metavar="auto|hf|unsloth", help="Training backend, as for "
                                         "train.")] = "auto",
    plain: Annotated[bool, typer.Option("--plain", help="Plain text: no colour, no live progress.")] = False,
    config_file: opt.ConfigFileOpt = None,
    **knobs: Any,
) -> None:
    """Find a learning rate: train a short sweep with the rate rising exponentially, and read the curve.

    Takes the same model, data, config and flags as train, and plans the same batch, accumulation,
    sequence length, rank and precision for this machine; then trains --steps optimizer steps from a
    freshly initialised adapter, the rate multiplied up each step from --start-lr to --end-lr, and
    stops early when the smoothed loss passes 4 times its best (fastai's lr_find). Nothing is saved
    into any run. The suggestion is the valley rule (fastai's default): halfway along the longest
    stretch where the smoothed loss keeps falling; the steepest-descent and minimum/10 rates are
    shown too. Prints the curve here and saves it as a PNG; --write puts the rate into a config.

    \b
    Examples:
      lorawiz lr-find --model builtin:tiny --data builtin:triage
      lorawiz lr-find lorawiz.yaml --write lorawiz.yaml
      lorawiz lr-find --model Qwen/Qwen2.5-7B-Instruct --data train.jsonl --load-in-4bit --json
    """
    from lorawiz.config.resolve import resolve_config
    from lorawiz.console import get_console, is_plain, say, set_plain
    from lorawiz.train.lr_find import (
        LrFindRequest,
        check_outputs,
        check_sweep,
        find_learning_rate,
        save_plot,
        write_rate,
    )

    if plain:
        set_plain(True)
    check_sweep(start_lr, end_lr, steps)
    check_outputs(None if no_plot else plot, write)
    resolved = resolve_config(opt.config_path(config, config_file), preset=preset, set_items=set_ or (),
                              flags=opt.typed_flags(locals()), flag_names=opt.flag_spellings())
    quiet = as_json or is_plain()
    with _progress(steps, quiet, to_stderr=as_json) as progress:
        result = find_learning_rate(LrFindRequest(
            resolved, start=start_lr, end=end_lr, steps=steps, backend=backend, plain=quiet,
            say=lambda text: say(text, stderr=as_json), progress=progress))
    done = []
    if not no_plot:
        save_plot(plot, result)
        done.append(f"plot: {plot}")
    if write is not None:
        done.append(f"wrote {write_rate(write, result, resolved)}")
    if as_json:
        import json

        print(json.dumps({**result.as_dict(), "plot": None if no_plot else str(plot),
                          "written": str(write) if write else None}, indent=2))
        return
    from lorawiz.views.lr_find import render_lr_find

    plain_out = is_plain()
    get_console().print(render_lr_find(result, plain_out), soft_wrap=True)
    for line in done:
        say(line)
    if result.suggested_rate is not None and write is None:
        import shlex
        import sys

        say("next: " + " ".join(shlex.quote(part) for part in _train_command(sys.argv[1:], result.suggested_rate)))


# lr-find's own options, and how many values each takes: what the train command after it leaves out
OWN_OPTIONS = {"--start-lr": 1, "--end-lr": 1, "--steps": 1, "--plot": 1, "--no-plot": 0, "--write": 1, "--json": 0,
               "--learning-rate": 1, "--learning_rate": 1}


def _train_command(argv: list[str], rate: float) -> list[str]:
    """The train command this sweep was for, with the rate it found: lr-find's command line, its own options out."""
    words, skip = ["lorawiz"], 0
    for word in argv:
        name = word.split("=", 1)[0]
        if skip:
            skip -= 1
        elif word == "lr-find":
            words.append("train")
        elif name in OWN_OPTIONS:
            skip = OWN_OPTIONS[name] if "=" not in word else 0
        else:
            words.append(word)
    return words + ["--learning-rate", f"{rate:.1e}"]


def _progress(steps: int, quiet: bool, to_stderr: bool) -> Any:
    """A live bar in a terminal; else a plain line every tenth of the sweep (on stderr beside --json)."""
    from lorawiz.console import get_console, say

    if quiet:
        every = max(1, steps // 10)

        def line(step: int, total: int, rate: float, smoothed: float) -> None:
            if step == 1 or step % every == 0 or step == total:
                say(f"lr-find step {step}/{total}: rate {rate:.2e}, smoothed loss {smoothed:.4g}", stderr=to_stderr)

        return contextlib.nullcontext(line)
    return _live_bar(get_console(stderr=True), steps)


@contextlib.contextmanager
def _live_bar(console: Any, steps: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("lr-find"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("", total=steps)

        def update(step: int, total: int, rate: float, smoothed: float) -> None:
            bar.update(task, completed=step, description=f"rate {rate:.1e}  smoothed loss {smoothed:.4g}")

        yield update
