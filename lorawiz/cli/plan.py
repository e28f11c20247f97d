"""`lorawiz plan`: every training value with its reason and source, predicted memory and time, before any GPU time."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel

DOES_NOT_FIT = 3
BAR_WIDTH = 40


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
    from lorawiz.planning import gather, make_plan

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


def plan_json(inputs: Any, plan: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "hardware": inputs.hardware.to_dict(),
        "model": {"name": inputs.model.name, "parameters": inputs.model.parameters()["total"],
                  "layers": inputs.model.layers, "context_length": inputs.model.context_length},
        "data": asdict(inputs.data) if inputs.data else None,
        "values": {name: {"value": c.value, "source": c.source, "reason": c.reason} for name, c in plan.values.items()},
        "memory": plan.memory.as_dict() if plan.memory else None,
        "budget_bytes": None if plan.budget_bytes == float("inf") else round(plan.budget_bytes),
        "fits": plan.fits,
        "warnings": plan.warnings,
        "alternative": plan.alternative,
        "time": asdict(plan.time) if plan.time else None,
    }


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min" if hours else f"about {minutes} min"


def render_plan(inputs: Any, plan: Any, plain: bool) -> Any:
    """A pure function of the plan: a Rich renderable (plain text when `plain`)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from lorawiz.config import format_value
    from lorawiz.hardware import describe
    from lorawiz.memory import GIB

    parts: list[Any] = [Text("hardware: " + "; ".join(describe(inputs.hardware)))]
    model = inputs.model
    parts.append(Text(f"model: {model.name}: {model.parameters()['total'] / 1e9:.2f}B parameters, "
                      f"{model.layers} layers, context {model.context_length:,}"))
    if inputs.data_stats is not None:
        s = inputs.data_stats
        parts.append(Text(f"data: {s.file}: {s.rows:,} rows, {s.length.unit} p50 {s.length.p50:,}, "
                          f"p95 {s.length.p95:,}, p99 {s.length.p99:,}"))
    else:
        parts.append(Text("data: none given (--data): sizes from defaults"))

    if plain:
        parts.append(Text("settings (name = value  [from]  why):"))
        for name, choice in plan.values.items():
            parts.append(Text(f"  {name} = {format_value(choice.value)}  [{choice.source}]  {choice.reason}"))
    else:
        table = Table(title="settings", title_justify="left", header_style="bold", show_edge=False, pad_edge=False)
        for column in ("setting", "value", "from", "why"):
            table.add_column(column, overflow="fold")
        for name, choice in plan.values.items():
            table.add_row(name, format_value(choice.value), choice.source, choice.reason)
        parts.append(table)

    memory, budget = plan.memory, plan.budget_bytes
    known = budget != float("inf")
    free = "free memory" if not inputs.hardware.is_cpu_only else "RAM"
    head = Text(f"\npredicted peak memory per {'GPU' if not inputs.hardware.is_cpu_only else 'process'}: "
                f"{memory.total / GIB:.1f} GiB" + (f" of {budget / GIB:.1f} GiB usable (90% of {free}) " if known
                                                   else " "))
    if known:
        used = min(BAR_WIDTH, round(BAR_WIDTH * memory.total / budget))
        head.append(("#" if plain else "█") * used, style="green" if plan.fits else "red")
        head.append(("." if plain else "░") * (BAR_WIDTH - used), style="dim")
    parts.append(head)
    for term in memory.terms:
        line = Text(f"  {term.name:<20} {term.bytes / GIB:6.2f} GiB ")
        line.append(("#" if plain else "█") * round(BAR_WIDTH * term.bytes / memory.total), style="cyan")
        parts.append(line)
    if plan.time:
        parts.append(Text(f"\ntime: {_duration(plan.time.seconds)} for {plan.time.steps:,} steps, "
                          f"{plan.time.tokens:,} tokens ({plan.time.assumption})"))
    for warning in plan.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    if plan.fits:
        parts.append(Text("fits: yes", style="bold green"))
    else:
        parts.append(Text(f"fits: no. Cheapest change: {plan.alternative}", style="bold red"))
    return Group(*parts)
