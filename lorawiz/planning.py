"""Gather what the recommender needs (config, hardware, model, data) and make a plan; used by `plan` and `train`.

This is the impure edge around lorawiz.recommend: it probes NVML, reads the model's config and measures the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.recommend import DataFacts, Plan, recommend

BAR_WIDTH = 40


@dataclass
class PlanInputs:
    hardware: Any  # HardwareProfile
    model: Any  # ModelFacts
    data: DataFacts | None
    data_stats: Any  # DataStats, when a data file was given
    task: str
    preset: dict[str, Any]
    user: dict[str, tuple[Any, str]]
    preset_name: str | None = None


def split_sources(values: dict[str, Any], sources: dict[str, str]
                  ) -> tuple[dict[str, Any], dict[str, tuple], str | None]:
    """The preset's values and name, and the user's values (file, --set, flags) with where each came from."""
    preset, user, preset_name = {}, {}, None
    for name, source in sources.items():
        if source.startswith("default"):
            continue
        if source.startswith("preset"):
            preset[name] = values[name]
            preset_name = source.removeprefix("preset").strip() or None
        else:
            user[name] = (values[name], source)
    return preset, user, preset_name


def gather(values: dict[str, Any], sources: dict[str, str], hardware_spec: str | None = None,
           hardware: Any = None) -> PlanInputs:
    """Read the hardware (given, probed, or --hardware), the model's facts and the data's statistics."""
    from lorawiz.builtin import resolve_names
    from lorawiz.catalog import load_model_facts
    from lorawiz.hardware import parse_hardware_spec, probe

    values = resolve_names(values)
    model_name = values.get("model_name_or_path")
    if not model_name:
        raise LorawizError("no model to plan for.", hint="Pass --model (a hub id such as meta-llama/Llama-3.1-8B, "
                                                         "a catalog alias, or a local folder).")
    if hardware is None:
        hardware = parse_hardware_spec(hardware_spec) if hardware_spec else probe(values.get("output_dir") or ".")
    model = load_model_facts(model_name)
    data, stats = None, None
    if values.get("train_file"):
        from lorawiz.data.stats import inspect_file

        tokenizer = _local_tokenizer(model_name)
        stats = inspect_file(values["train_file"], tokenizer, tokenizer_name=model_name if tokenizer else None,
                             model_limit=model.context_length)
        data = DataFacts.from_stats(stats)
    preset, user, preset_name = split_sources(values, sources)
    return PlanInputs(hardware, model, data, stats, values.get("task") or "chat", preset, user, preset_name)


def _local_tokenizer(model_name: str) -> Any:
    """The model's tokenizer when it is a local folder (exact token counts); None means estimate from characters.

    A hub id is not fetched here: planning must stay quick and work offline.
    """
    folder = Path(model_name).expanduser()
    if not (folder / "tokenizer.json").exists() and not (folder / "tokenizer_config.json").exists():
        return None
    from lorawiz.data.tokens import load_tokenizer

    return load_tokenizer(str(folder))


def make_plan(inputs: PlanInputs) -> Plan:
    return recommend(inputs.hardware, inputs.model, inputs.data, inputs.task, inputs.preset, inputs.user,
                     inputs.preset_name)


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
