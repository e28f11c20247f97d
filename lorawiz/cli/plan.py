"""`lorawiz plan`: every training value with its reason and source, predicted memory and time, before any GPU time."""

from __future__ import annotations

from typing import Annotated

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel

DOES_NOT_FIT = 3


@funnel
def plan_command(
    config: opt.ConfigArg = None,
    preset: opt.PresetOpt = None,
    set_: opt.SetOpt = None,
    hardware: Annotated[str | None, typer.Option(
        "--hardware", metavar="SPEC", help="Plan for another machine: a name (t4, a10g, l4, rtx3090, rtx4090, "
        "a100-40gb, a100-80gb, h100-80gb, h200, laptop-8gb, cpu), a count (4xa100-80gb), or a `doctor --json` "
        "file [default: this machine].")] = None,
    as_json: opt.JsonOpt = False,
    model_name_or_path: opt.ModelOpt = None,
    train_file: opt.TrainFileOpt = None,
    task: opt.TaskOpt = None,
    output_dir: opt.OutputDirOpt = None,
    max_seq_length: opt.MaxSeqLengthOpt = None,
    lora_r: opt.LoraROpt = None,
    lora_alpha: opt.LoraAlphaOpt = None,
    learning_rate: opt.LearningRateOpt = None,
    num_train_epochs: opt.EpochsOpt = None,
    per_device_train_batch_size: opt.BatchSizeOpt = None,
    gradient_accumulation_steps: opt.GradAccumOpt = None,
    load_in_4bit: opt.LoadIn4bitOpt = None,
    gradient_checkpointing: opt.GradCkptOpt = None,
) -> None:
    """Plan a run: every value with its reason and source, the memory it needs, and how long it takes.

    The hardware is probed (or given with --hardware), the model's architecture comes from the built-in
    catalog or its config.json, and the data is measured as `lorawiz inspect` does. Values you set (preset,
    file, --set, flags) win; the fit is then re-checked. Exit 0 when it fits, 3 when it does not.

    \b
    Examples:
      lorawiz plan --model meta-llama/Llama-3.1-8B --data train.jsonl
      lorawiz plan --model qwen2.5-7b --data train.jsonl --hardware t4 --preset memory
      lorawiz plan run.yaml --hardware 4xa100-80gb --json
    """
    from lorawiz.config import resolve_config
    from lorawiz.planning import gather, make_plan, plan_json, render_plan

    resolved = resolve_config(config, preset=preset, set_items=set_ or (), flags=opt.typed_flags(locals()),
                              flag_names=opt.flag_spellings())
    inputs = gather(resolved.flat(), resolved.sources, hardware)
    plan = make_plan(inputs)
    if as_json:
        import json

        typer.echo(json.dumps(plan_json(inputs, plan), indent=2))
    else:
        from lorawiz.console import get_console, is_plain

        plain = is_plain()
        get_console().print(render_plan(inputs, plan, plain), soft_wrap=plain)
    if not plan.fits:
        raise typer.Exit(DOES_NOT_FIT)
