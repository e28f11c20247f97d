"""`lorawiz init`: the guided wizard from "a GPU, a model name and a data file" to a config that fits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel

CANCELLED_EXIT = 130


@funnel
def init_command(
    model_name_or_path: opt.ModelOpt = None,
    train_file: opt.TrainFileOpt = None,
    validation_file: opt.ValidationFileOpt = None,
    task: opt.TaskOpt = None,
    preset: opt.PresetOpt = None,
    output_dir: opt.OutputDirOpt = None,
    hardware: Annotated[str | None, typer.Option("--hardware", metavar="SPEC", help="Plan for another machine "
                                                 "(see lorawiz plan --help).")] = None,
    config_out: Annotated[str | None, typer.Option("--config-out", metavar="FILE", help="Where to write the config "
                                                   "[default: lorawiz.yaml].")] = None,
    set_: opt.SetOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept every recommendation without asking.")] = False,
    no_input: Annotated[bool, typer.Option("--no-input", help="Never prompt; fail naming the missing flags.")
                        ] = False,
    train: Annotated[bool, typer.Option("--train", help="Start training with the written config.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files: converted data, and a "
                                            "config only if lorawiz init wrote it.")] = False,
) -> None:
    """Guided setup: hardware, model, data, task and scenario, then a plan you can adjust, then a config.

    Every question has a flag, and the wizard asks only what the flags left open; --yes takes every
    recommendation, --no-input never asks (as without a terminal). It ends with a commented YAML config
    that `lorawiz train` runs, and the equivalent non-interactive command.

    \b
    Examples:
      lorawiz init
      lorawiz init --model meta-llama/Llama-3.1-8B-Instruct --data tickets.csv --task classification
      lorawiz init --model qwen2.5-7b --data train.jsonl --preset memory --yes --config-out run.yaml
    """
    from lorawiz.console import get_console, is_plain, say
    from lorawiz.wizard.flow import InitOptions, run_wizard
    from lorawiz.wizard.prompter import Cancelled, Prompter

    opts = InitOptions(model=model_name_or_path, data=train_file, val_data=validation_file, task=task, preset=preset,
                       output_dir=output_dir, hardware=hardware, config_out=config_out, set_items=list(set_ or []),
                       overwrite=overwrite)
    prompter = Prompter.for_flags(yes=yes, no_input=no_input, say=say,
                                  show=lambda renderable: get_console().print(renderable, soft_wrap=is_plain()))
    try:
        result = run_wizard(opts, prompter)
    except Cancelled:
        say("cancelled: nothing was written")
        raise typer.Exit(CANCELLED_EXIT) from None
    say(f"wrote {result.config_path}")
    say(f"same setup without questions: {result.command}")
    say(f"train it: {result.train_command}")
    if train or (prompter.interactive and not yes and prompter.confirm("Start training now?", default=False)):
        _start_training(result.config_path, hardware)


def _start_training(config_path: Path, hardware: str | None) -> None:
    """Run `lorawiz train CONFIG` as its own process: the command shown is the one that runs, so its hints and its
    resume line are the train command's, and several GPUs relaunch as they do from the shell."""
    import shlex
    import subprocess
    import sys

    from lorawiz.console import is_plain, say

    argv = ["train", str(config_path), *(["--hardware", hardware] if hardware else []),
            *(["--plain"] if is_plain() else [])]
    say(f"running: lorawiz {shlex.join(argv)}")
    with subprocess.Popen([sys.executable, "-m", "lorawiz", *argv]) as child:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                continue  # the child got the same Ctrl-C: it saves a checkpoint and prints how to resume
    if code:
        raise typer.Exit(code)
