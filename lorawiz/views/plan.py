"""The plan as a table: every value the run uses, its source and why, the memory bar and the time; pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BAR_WIDTH = 40


@dataclass(frozen=True)
class PlanRow:
    name: str
    value: Any
    source: str
    kind: str
    reason: str


def plan_rows(plan: Any, resolved: Any) -> list[PlanRow]:
    """Every value the run uses (None = unused, left out), in the plan's order and then the schema's, with the
    source the run takes it from and why. Built-in defaults nobody changed come last."""
    from lorawiz.config.schema import KNOBS

    values = resolved.flat()
    order = [name for name in plan.values if name in KNOBS] + [name for name in KNOBS if name not in plan.values]
    rows, defaults = [], []
    for name in order:
        value = values[name]
        if value is None:
            continue
        source = resolved.source(name)
        choice = plan.values.get(name)
        reason = source.reason or (choice.reason if choice is not None else "") or _why_set(source)
        if choice is not None and choice.alternative is not None and source.kind == "preset":
            from lorawiz.config.schema import format_value

            other, why = choice.alternative
            reason += f"; the recommender would take {format_value(other)} ({why})"
        label = "default" if source.kind == "derived" else source.label  # the why is in its own column
        row = PlanRow(name, value, label, source.kind, reason)
        (defaults if source.kind == "default" and choice is None else rows).append(row)
    return rows + defaults


def _int(resolved: Any, name: str) -> int:
    return int(resolved.value(name) or 1)


def early_stopping_line(resolved: Any, plan: Any) -> str | None:
    """What early_stopping_patience means for this run: evaluations, and the steps or epochs they span."""
    patience = resolved.value("early_stopping_patience")
    strategy = resolved.value("eval_strategy")
    if not patience or strategy == "no":
        return None
    threshold = resolved.value("early_stopping_threshold")
    better = f"by more than {threshold * 100:.3g}%" if threshold else "at all"
    if strategy == "epoch":
        span = f"{patience} epoch{'s' if patience > 1 else ''}"
    else:
        every = _int(resolved, "eval_steps")
        span = f"{patience * every:,} steps, evaluating every {every:,}"
        if plan.steps_per_epoch:
            span += f"; {patience * every / plan.steps_per_epoch:.2g} epochs"
    return (f"early stopping: after {patience} evaluation{'s' if patience > 1 else ''} in a row that do not improve "
            f"{resolved.value('metric_for_best_model')} {better} ({span})")


def _why_set(source: Any) -> str:
    if source.kind == "preset":
        return f"set by the {source.label}"
    return "your value" if source.is_user else "built-in default"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min" if hours else f"about {minutes} min"


def render_plan(inputs: Any, plan: Any, resolved: Any, plain: bool, notes: list[str] | None = None) -> Any:
    """A Rich renderable (plain lines when `plain`). `notes` are the changes lorawiz made to run here."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from lorawiz.config.schema import format_value
    from lorawiz.hardware import describe
    from lorawiz.memory import GIB

    parts: list[Any] = [Text("hardware: " + "; ".join(describe(inputs.hardware)))]
    model = inputs.model
    counts = model.parameters()
    experts = (f" ({counts['active'] / 1e9:.2f}B active: {model.active_experts} of {model.experts} experts a token"
               + (f", shipped in {model.shipped_quantization.upper()}, trained dequantized to 16-bit"
                  if model.shipped_quantization else "") + ")") if model.is_moe else ""
    parts.append(Text(f"model: {model.name}: {counts['total'] / 1e9:.2f}B parameters{experts}, "
                      f"{model.layers} layers, context {model.context_length:,}"))
    if inputs.data_stats is not None:
        s = inputs.data_stats
        held = s.rows - plan.train_rows if plan.train_rows else 0
        parts.append(Text(f"data: {s.file}: {s.rows:,} rows" + (f" ({held:,} held out for validation)" if held
                                                                  else "")
                          + f", {s.length.unit} p50 {s.length.p50:,}, p95 {s.length.p95:,}, p99 {s.length.p99:,}"))
        if inputs.data_note:
            parts.append(Text(inputs.data_note))
    else:
        parts.append(Text("data: none given (--data): sizes from defaults"))

    rows = plan_rows(plan, resolved)
    main = [row for row in rows if row.kind != "default" or row.name in plan.values]
    defaults = [row for row in rows if row not in main]
    if plain:
        parts.append(Text("settings (name = value  [from]  why):"))
        for row in main:
            parts.append(Text(f"  {row.name} = {format_value(row.value)}  [{row.source}]  {row.reason}"))
    else:
        table = Table(title="settings", title_justify="left", header_style="bold", show_edge=False, pad_edge=False)
        for column in ("setting", "value", "from", "why"):
            table.add_column(column, overflow="fold")
        for row in main:
            style = "yellow" if row.kind == "adjusted" else None
            table.add_row(row.name, format_value(row.value), row.source, row.reason, style=style)
        parts.append(table)
    if defaults:
        parts.append(Text("built-in defaults: " + ", ".join(f"{row.name}={format_value(row.value)}"
                                                           for row in defaults), style="dim"))

    memory, budget = plan.memory, plan.budget_bytes
    known = budget != float("inf")
    processes = inputs.hardware.cpu_processes
    free = ("free memory" if not inputs.hardware.is_cpu_only else
            f"RAM / {processes} processes" if processes > 1 else "RAM")
    spare = budget - memory.total
    head = Text(f"\npredicted peak memory per {'GPU' if not inputs.hardware.is_cpu_only else 'process'}: "
                f"{memory.total / GIB:.1f} GiB" + (
                    f" of {budget / GIB:.1f} GiB usable (90% of {free}), "
                    + (f"{spare / GIB:.1f} GiB to spare " if spare >= 0 else f"{-spare / GIB:.1f} GiB over ")
                    if known else " "))
    if known:
        used = min(BAR_WIDTH, round(BAR_WIDTH * memory.total / budget))
        head.append(("#" if plain else "█") * used, style="green" if plan.fits else "red")
        head.append(("." if plain else "░") * (BAR_WIDTH - used), style="dim")
    parts.append(head)
    for term in memory.terms:
        line = Text(f"  {term.name:<20} {term.bytes / GIB:6.2f} GiB ")
        line.append(("#" if plain else "█") * round(BAR_WIDTH * term.bytes / memory.total), style="cyan")
        parts.append(line)
    if plan.steps:
        parts.append(Text(f"\nsteps: {plan.steps:,} optimizer steps ({plan.steps_per_epoch:,} an epoch, "
                          f"{plan.train_rows:,} training rows)"))
    if plan.effective_batch:
        one, many = ("GPU", "GPUs") if not inputs.hardware.is_cpu_only else ("process", "processes")
        micro, accum = _int(resolved, "per_device_train_batch_size"), _int(resolved, "gradient_accumulation_steps")
        parts.append(Text(f"batch: effective {micro * accum * plan.devices:,} rows a step = micro-batch {micro:,} x "
                          f"accumulation {accum:,} x {plan.devices} {many if plan.devices > 1 else one}"))
    stopping = early_stopping_line(resolved, plan)
    if stopping:
        parts.append(Text(stopping))
    for note in plan.notes:
        parts.append(Text(f"note: {note}"))
    if plan.time:
        parts.append(Text(f"time: {_duration(plan.time.seconds)} for {plan.time.steps:,} steps, "
                          f"{plan.time.tokens:,} tokens ({plan.time.assumption})"))
    for note in notes or ():
        parts.append(Text(f"changed to run here: {note}", style="yellow"))
    for warning in plan.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    if plan.fits:
        parts.append(Text("fits: yes", style="bold green"))
    else:
        parts.append(Text(f"fits: no. Cheapest change: {plan.alternative}", style="bold red"))
    return Group(*parts)
