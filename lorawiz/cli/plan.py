"""`lorawiz plan`: every training value with its reason and source, predicted memory and time, before any GPU time."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel

DOES_NOT_FIT = 3


@opt.every_knob_as_flag
@funnel
def plan_command(
    config: opt.ConfigArg = None,
    preset: opt.PresetOpt = None,
    set_: opt.SetOpt = None,
    hardware: Annotated[str | None, typer.Option(
        "--hardware", metavar="SPEC", help="Plan for another machine: a name (t4, a10g, l4, rtx3090, rtx4090, "
        "a100-40gb, a100-80gb, h100-80gb, h200, laptop-8gb, cpu), GPUs x a name (4xa100-80gb), machines x "
        "GPUs x a name (2x8xh100-80gb), or a `doctor --json` file [default: this machine].")] = None,
    as_json: opt.JsonOpt = False,
    model_name_or_path: opt.ModelOpt = None,
    train_file: opt.TrainFileOpt = None,
    validation_file: opt.ValidationFileOpt = None,
    task: opt.TaskOpt = None,
    output_dir: opt.OutputDirOpt = None,
    max_seq_length: opt.MaxSeqLengthOpt = None,
    lora_r: opt.LoraROpt = None,
    lora_alpha: opt.LoraAlphaOpt = None,
    lora_dropout: opt.LoraDropoutOpt = None,
    learning_rate: opt.LearningRateOpt = None,
    num_train_epochs: opt.EpochsOpt = None,
    max_steps: opt.MaxStepsOpt = None,
    per_device_train_batch_size: opt.BatchSizeOpt = None,
    gradient_accumulation_steps: opt.GradAccumOpt = None,
    warmup_ratio: opt.WarmupRatioOpt = None,
    warmup_steps: opt.WarmupStepsOpt = None,
    seed: opt.SeedOpt = None,
    early_stopping_patience: opt.PatienceOpt = None,
    load_in_4bit: opt.LoadIn4bitOpt = None,
    bf16: opt.Bf16Opt = None,
    fp16: opt.Fp16Opt = None,
    gradient_checkpointing: opt.GradCkptOpt = None,
    packing: opt.PackingOpt = None,
    cache_dir: opt.CacheDirOpt = None,
    config_file: opt.ConfigFileOpt = None,
    **knobs: Any,
) -> None:
    """Plan a run: every value with its reason and source, the memory it needs, and how long it takes.

    The hardware is probed (or given with --hardware), the model's architecture comes from the built-in
    catalog or its config.json, and the data is measured as `lorawiz inspect` does. Precedence, lowest
    first: built-in defaults < the recommender < --preset < CONFIG < --set < flags; the fit is checked
    with the values that win. The plan lists every value `lorawiz train` would pass to the trainer.
    Exit 0 when it fits, 3 when it does not.

    \b
    Examples:
      lorawiz plan --model meta-llama/Llama-3.1-8B --data train.jsonl
      lorawiz plan --model qwen2.5-7b --data train.jsonl --hardware t4 --preset memory
      lorawiz plan run.yaml --hardware 4xa100-80gb --json
      lorawiz plan --model llama3.1-405b --data train.jsonl --hardware 2x8xh100-80gb
    """
    from lorawiz.config.resolve import resolve_config
    from lorawiz.planning import fill_from_plan, gather, make_plan, plan_json

    resolved = resolve_config(opt.config_path(config, config_file), preset=preset, set_items=set_ or (),
                              flags=opt.typed_flags(locals()),
                              flag_names=opt.flag_spellings())
    from lorawiz.train.sources import with_sources

    resolved = with_sources(resolved)  # datasets: the mix the run trains on, made (or found) now
    inputs = gather(resolved, hardware)
    plan = make_plan(inputs)
    filled = fill_from_plan(resolved, plan)
    if as_json:
        import json

        typer.echo(json.dumps(plan_json(inputs, plan, filled), indent=2))
    else:
        from lorawiz.console import get_console, is_plain
        from lorawiz.views.plan import render_plan

        plain = is_plain()
        get_console().print(render_plan(inputs, plan, filled, plain), soft_wrap=plain)
    if plan.layout.machines > 1 and not as_json:
        import sys

        from lorawiz.train.launcher import machine_commands

        typer.echo(f"run on each of the {plan.layout.machines} machines (MACHINE0_ADDRESS: the address of "
                   "machine 0, reachable from the others; one shared output folder):")
        for rank, command in enumerate(machine_commands(sys.argv[1:], plan.layout.machines)):
            typer.echo(f"  machine {rank}: {command}")
    if not plan.fits:
        raise typer.Exit(DOES_NOT_FIT)
